"""The run directory of ``fastscratch train``: claimed for one process by a locked marker.

The claim comes before any data is loaded, so a directory in use fails at once.
"""
import contextlib
import datetime
import errno
import os

try:
    import fcntl
except ImportError:  # not POSIX: a run directory's marker cannot be locked
    fcntl = None

from fastscratch.cli.text import reason

CLAIM = ".fastscratch-run"  # exclusive marker of a run directory in use; removed when the run ends
RUNS = "runs"  # parent of the default run directories


class RunDirectoryError(ValueError):
    """The run directory cannot be claimed (in use, not empty, not creatable)."""


class RunDirectory:
    """A run directory claimed by this process: it holds ``CLAIM``, locked by this process while it runs.

    ``release`` ends the claim. A directory that never received a run
    (``holds_run`` false: the data failed to load, Ctrl-C before training) is given
    back as it was found: removed if this process created it, else emptied of
    the marker; so the same ``--out`` can be used again. ``took_over`` is the
    text of a marker that a run which is gone left behind, and that this claim
    replaced (None when there was none).
    """

    def __init__(self, path, created, fd, took_over=None):
        self.path, self.created, self.holds_run = path, created, False
        self.fd, self.took_over = fd, took_over

    def release(self):
        """End the claim; return None, or why the marker could not be removed (a directory turned read-only).

        A marker left behind is not held by any process (its lock ends with
        the descriptor), so a later claim of an otherwise empty directory
        takes it over.
        """
        problem = None
        try:
            os.unlink(os.path.join(self.path, CLAIM))
        except FileNotFoundError:
            pass
        except OSError as err:
            problem = reason(err)
        os.close(self.fd)
        if self.created and not self.holds_run:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)
        return problem


def claim_run_directory(out, now=None):
    """Claim ``out``, or a new ``runs/<timestamp>`` when ``out`` is None, for this process.

    ``out`` may be missing (it is created, with its parents) or an empty
    directory. The claim is an exclusive create (``mkdir``, then ``CLAIM``
    with ``O_EXCL``, held by a lock), so of two processes claiming the same
    directory exactly one succeeds, and two default runs in the same second
    get different names (``<timestamp>``, ``<timestamp>-2``, ...). Raises
    ``RunDirectoryError``, and then leaves the directory as it found it.
    """
    if out is None:
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        _make_parents(RUNS, RUNS)
        n = 1
        while True:
            path = os.path.join(RUNS, stamp if n == 1 else f"{stamp}-{n}")
            n += 1
            try:
                os.mkdir(path)
            except FileExistsError:
                continue
            except OSError as err:
                raise RunDirectoryError(f"cannot create {path}: {reason(err)}") from None
            try:
                return _lock(path, created=True)
            except _InUse:  # another run took it with --out at once: next name
                continue
    if not out:
        raise RunDirectoryError("must not be empty")
    _make_parents(os.path.dirname(os.path.abspath(out)), out)
    try:
        os.mkdir(out)
        created = True
    except FileExistsError:
        if not os.path.isdir(out):
            raise RunDirectoryError(f"{out} already exists and is not an empty directory; "
                                    f"choose another one") from None
        created = False
    except OSError as err:
        raise RunDirectoryError(f"cannot create {out}: {reason(err)}") from None
    return _lock(out, created)


def claim_run_to_resume(path):
    """Claim the existing run directory ``path`` for this process, to continue its run.

    The same marker and lock as a new run's: of two processes resuming (or a
    run still going and a resume) exactly one holds the directory. Raises
    ``RunDirectoryError`` naming the process that holds it.
    """
    if not os.path.isdir(path):
        raise RunDirectoryError(f"{path} is not a directory" if os.path.exists(path) else f"no such directory: {path}")
    return _lock(path, created=False, empty=False,
                 remedy="resume it once that run has stopped (Ctrl-C or kill stops it and keeps it)")


def _make_parents(parent, out):
    try:
        os.makedirs(parent, exist_ok=True)
    except FileExistsError:  # makedirs' word for a file in the way
        blocker = parent
        while not os.path.exists(blocker):
            blocker = os.path.dirname(blocker)
        raise RunDirectoryError(f"cannot create {out}: {blocker} is not a directory") from None
    except OSError as err:
        raise RunDirectoryError(f"cannot create {out}: {reason(err)}") from None


class _InUse(RunDirectoryError):
    """Another process holds the directory's marker, or has filled the directory."""


def _lock(path, created, empty=True, remedy="choose another directory"):
    """Create and lock ``path``'s marker, write this process's id into it; a failure leaves nothing behind.

    The marker is locked (``flock``) for as long as this process holds the
    descriptor, so the kernel itself ends the claim of a killed process. An
    existing marker that no process holds is one that a killed run left
    behind: it is taken over (``took_over``). Where locks are not available
    (no ``fcntl``, a file system without them) an existing marker counts as
    held, so the user removes it. ``empty``: the directory must hold nothing
    else (a new run's); ``remedy`` ends the message of a directory in use.
    """
    marker = os.path.join(path, CLAIM)
    if empty and not created:
        _check_empty(path)
    while True:
        try:
            fd, left_behind = os.open(marker, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), None
        except FileExistsError:
            try:
                fd = os.open(marker, os.O_RDWR)
            except FileNotFoundError:  # its run ended at this moment: claim again
                continue
            except OSError as err:
                raise RunDirectoryError(f"cannot write to {path}: {reason(err)}") from None
            left_behind = _read_marker(fd)
        except OSError as err:
            raise _given_back(path, created, f"cannot write to {path}: {reason(err)}") from None
        locked = _try_lock(fd)
        if locked is None and left_behind is None:
            break  # no locks here: a marker this process created is its claim
        if not locked:
            os.close(fd)
            pid = f" (process {left_behind.strip()})" if left_behind and left_behind.strip().isdigit() else ""
            raise _InUse(f"{path} is in use by another fastscratch run{pid}" + (
                "" if locked is False else
                f", or holds the {CLAIM} marker of a killed one, which you may remove") + f"; {remedy}")
        if _same_file(fd, marker):
            break
        os.close(fd)  # locked a marker that its run removed as it ended: claim again
    try:
        if empty:
            _check_empty(path)  # another run may have filled it between the first look and the lock
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)  # past what was read of a marker taken over
        data = f"{os.getpid()}\n".encode()
        if os.write(fd, data) != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        os.fsync(fd)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(marker)  # never a claim that no process holds
        os.close(fd)
        if isinstance(err, OSError):  # a full disk
            raise _given_back(path, created, f"cannot write to {path}: {reason(err)}") from None
        raise
    return RunDirectory(path, created, fd, took_over=left_behind)


def _check_empty(path):
    try:
        entries = os.listdir(path)
    except OSError as err:
        raise RunDirectoryError(f"cannot read {path}: {reason(err)}") from None
    if [entry for entry in entries if entry != CLAIM]:
        raise _InUse(f"{path} already exists and is not an empty directory; choose another one")


def _given_back(path, created, message):
    """A RunDirectoryError, after removing ``path`` if this claim created it."""
    if created:
        with contextlib.suppress(OSError):
            os.rmdir(path)
    return RunDirectoryError(message)


def _read_marker(fd):
    try:
        return os.read(fd, 64).decode("ascii", "replace")
    except OSError:
        return ""


def _try_lock(fd):
    """True: locked; False: another process holds the lock; None: this system or file system has no locks."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK, EOPNOTSUPP: some network file systems
        return None
    return True


def _same_file(fd, path):
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
