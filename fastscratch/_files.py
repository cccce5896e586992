"""Files that are either whole or absent: the one way fastscratch writes a file.

A file is written under a temporary name in its own directory, flushed and
fsynced, then renamed over the target (``os.replace`` is atomic on POSIX and
Windows), and the directory is fsynced so the rename survives a power cut. A
reader, a kill or a full disk can therefore never leave a truncated file at
the target: the old content stays until the new one is complete.

Otherwise a write is what opening the file for writing would be (``open(path,
"w")``, ``np.savez``), so that the rename is no way around what the file's
owner set: a symbolic link is written through, to its target; a file this
process may not write is refused with ``PermissionError``, as ``open`` refuses
it; a replaced file keeps its permission bits (a 0600 model stays 0600), set
before a byte is written; a new file gets 0666 less the umask (0644 with the
usual 022). A rename does make a new file: it belongs to the writer (user and
group), and other hard links to the old file keep the old content.
"""
import contextlib
import errno
import os
import secrets
import stat


@contextlib.contextmanager
def atomic_write(path, mode="wb", encoding=None):
    """Open a temporary file beside ``path``; on a clean exit, make it ``path`` atomically.

    ``mode`` is ``"wb"`` or ``"w"`` (text, with ``encoding``, UTF-8 by
    default). On an exception nothing is renamed and the temporary file is
    removed, so ``path`` keeps what it held before. The file's
    ``temporary_path`` lets the block check what it wrote (after a flush)
    before it takes the place of ``path``.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = os.path.realpath(os.fspath(path))  # a link's target is what open() would write
    directory = os.path.dirname(path)
    try:
        kept_mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        kept_mode = None
    if kept_mode is not None and not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    # os.open with 0o666 leaves a new file's permissions to the umask, as open() would (mkstemp forces 0o600).
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": encoding or "utf-8"})) as f:
            if kept_mode is not None:
                os.chmod(tmp, kept_mode)  # before the content: a private file's data is never in a readable one
            f.temporary_path = tmp
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(directory)


def fsync_directory(directory):
    """Make a rename or a new file in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as f:
        f.write(data)
