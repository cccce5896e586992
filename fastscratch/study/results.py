"""``DIR/results.jsonl``: one JSON line per finished cell-repeat, appended and fsynced by the client alone.

Each cell-repeat has a content-addressed key: a digest of its configuration,
the data's identity, the library versions that run it and
``METHODOLOGY_VERSION``, so a changed library or method starts a new series
instead of mixing with the old one, and running the same study again skips what
is done. A line is written with one ``write`` on an ``O_APPEND`` descriptor and
fsynced before the next; a line cut short by a crash (the only possible damage)
is dropped when the file is next opened.
"""
import hashlib
import json
import os

from fastscratch import environment

try:
    import fcntl
except ImportError:  # not POSIX: no lock, one writer is the user's to ensure
    fcntl = None

#: Bump when what a cell measures or how changes (warm-up, what an epoch's seconds include, the checks).
#: 2: the jit warm-up trains a whole epoch on the cell's data, so its index is kept before the timing.
#: 3: cells have a device and a dataset; GPU timings synchronise before each clock read; lines say their isolation.
METHODOLOGY_VERSION = 3
FILENAME = "results.jsonl"
#: implementation -> distributions whose versions are part of its cells' keys
DISTRIBUTIONS = {"reference": ("fastscratch", "numpy"), "jit": ("fastscratch", "numpy", "numba"),
                 "torch": ("fastscratch", "numpy", "torch"), "torch-graph": ("fastscratch", "numpy", "torch"),
                 "jax": ("fastscratch", "numpy", "jax", "jaxlib")}


def versions(implementation):
    """{distribution: version} of what runs ``implementation``, plus Python's (None where not installed)."""
    return environment.versions(*DISTRIBUTIONS[implementation])


def cell_key(config, data, repeat, versions_):
    """The content-addressed key of one cell-repeat (hex, 20 characters)."""
    identity = {"config": config.asdict(), "data": data.identity(), "repeat": repeat, "versions": versions_,
                "methodology": METHODOLOGY_VERSION}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def read(directory, skipped=None):
    """Every complete, well-formed record of ``directory``'s results, in file order.

    A cut-off last line is left out (a crash between write and newline: that
    cell was not finished). A complete line that is not a record this code can
    use (not UTF-8 JSON, not an object, a field missing or of the wrong type)
    is skipped too, and described as ``"PATH:LINE: why"`` in the list
    ``skipped`` when one is given: its cell counts as not run, so the next
    ``study run`` runs it again.
    """
    path = os.path.join(directory, FILENAME)
    if not os.path.exists(path):
        return []
    records = []
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.endswith(b"\n"):
                break
            try:
                record = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError:
                problem = "not UTF-8 text"
            except ValueError as err:
                problem = f"not a JSON line ({err})"
            else:
                problem = _problem(record)
            if problem is None:
                records.append(record)
            elif skipped is not None:
                skipped.append(f"{path}:{number}: {problem}")
    return records


_NUMBER = (int, float)
#: field -> its type(s), for every record; then those of ``ok`` and of ``failed`` records of this methodology
_ALWAYS = {"key": str, "status": str}
_CELL = {"implementation": str, "dtype": str, "hidden": list, "batch_size": int, "activation": str, "loss": str,
         "learning_rate": _NUMBER, "epochs": int, "seed": int, "threads": int, "device": str, "dataset": str,
         "repeat": int}
_OK = {**_CELL, "seconds_per_epoch": list, "losses": list, "accuracies": list, "versions": dict, "machine": dict}
_FAILED = {**_CELL, "error": str}
_OPTIONAL = {"loadavg_1min": _NUMBER, "exclusive": bool, "max_rel_diff_vs_reference": _NUMBER,
             "equivalence_steps": int, "environ": dict, "versions": dict, "machine": dict, "study": str,
             "isolation": str, "device_facts": dict, "cpus": list}


def _problem(record):
    """Why ``record`` is not one this code can read, or None."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not a record"
    for name, kind in _ALWAYS.items():
        if not _is(record.get(name), kind):
            return f"no {name!r} field" if name not in record else f"{name!r} is {record[name]!r}, not a string"
    if record["status"] not in ("ok", "failed"):
        return f"status {record['status']!r} is neither 'ok' nor 'failed'"
    fields = {}
    if record.get("methodology") == METHODOLOGY_VERSION:  # older methodologies are counted, never read further
        fields.update(_OK if record.get("status") == "ok" else _FAILED)
    for name, kind in fields.items():
        if name not in record:
            return f"no {name!r} field"
        if not _is(record[name], kind):
            return f"{name!r} is {record[name]!r}, not {_kind_name(kind)}"
    for name, kind in _OPTIONAL.items():
        if record.get(name) is not None and not _is(record[name], kind):
            return f"{name!r} is {record[name]!r}, not {_kind_name(kind)}"
    if "hidden" in fields and not all(_is(h, int) for h in record["hidden"]):
        return f"'hidden' is {record['hidden']!r}, not a list of integers"
    if record["status"] == "ok" and "seconds_per_epoch" in fields:
        for name in ("seconds_per_epoch", "losses", "accuracies"):
            if not all(_is(x, _NUMBER) for x in record[name]):
                return f"{name!r} holds something other than numbers"
        if not record["seconds_per_epoch"] or len(record["losses"]) != len(record["seconds_per_epoch"]):
            return "'seconds_per_epoch' is empty or its length differs from 'losses'"
    return None


def _is(value, kind):
    return isinstance(value, kind) and not isinstance(value, bool) if kind is not bool else isinstance(value, bool)


def _kind_name(kind):
    return {str: "a string", int: "an integer", list: "a list", dict: "an object", bool: "true or false",
            _NUMBER: "a number"}[kind]


def latest(records):
    """One record per key, the last one written (a failed cell re-run with --retry-failed supersedes)."""
    return list({r["key"]: r for r in records}.values())


class BusyError(RuntimeError):
    """Another ``fastscratch study run`` is writing the same results directory."""


class Writer:
    """The appending end of ``DIR/results.jsonl``; ``finished`` holds the keys already there.

    The file is locked while a writer holds it: two runs into one directory
    would each run the cells the other is running and record them twice. A
    writer that wrote nothing gives the directory back as it found it when it
    closes: the file and the directories it created are removed, so a study
    refused (or stopped) before its first result leaves nothing behind.
    """

    def __init__(self, directory, skipped=None):
        self.created_dirs = _missing_dirs(directory)  # deepest first
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError:
            _remove_dirs(self.created_dirs)
            raise
        self.path = os.path.join(directory, FILENAME)
        try:
            self.fd, self.created_file = _open_locked(self.path)
        except OSError:
            _remove_dirs(self.created_dirs)
            raise
        try:
            self._drop_partial_line()
            self.records = read(directory, skipped)
        except BaseException:  # an unreadable file: the caller gets the error, not a held lock
            os.close(self.fd)
            raise

    def _drop_partial_line(self):
        size = os.fstat(self.fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as f:
            content = f.read()
        end = content.rfind(b"\n") + 1
        if end != size:
            os.ftruncate(self.fd, end)
            os.fsync(self.fd)

    def finished(self, *, retry_failed=False):
        """Keys not to run again: every recorded key, or only the ``ok`` ones with ``retry_failed``."""
        return {r["key"] for r in latest(self.records) if not retry_failed or r["status"] == "ok"}

    def append(self, record):
        line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode()
        written = os.write(self.fd, line)
        if written != len(line):  # a full disk: leave no partial line behind for the next reader
            os.ftruncate(self.fd, os.fstat(self.fd).st_size - written)
            raise OSError(f"{self.path}: short write ({written} of {len(line)} bytes)")
        os.fsync(self.fd)
        self.records.append(record)

    def close(self):
        try:
            # Unlinked while still locked: a run that opened the file meanwhile was refused (BusyError), or
            # gets the lock after this close and finds the path no longer names its file (_open_locked).
            if self.created_file and os.fstat(self.fd).st_size == 0:
                os.unlink(self.path)
                _remove_dirs(self.created_dirs)
        except OSError:  # what cannot be removed stays, empty; the run's own outcome is what the caller reports
            pass
        finally:
            os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _open_locked(path):
    """``(fd, created)``: ``path`` opened for appending (created if absent) and locked, or BusyError."""
    while True:
        try:
            fd, created = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o666), True
        except FileExistsError:
            try:
                fd, created = os.open(path, os.O_RDWR | os.O_APPEND), False
            except FileNotFoundError:  # removed between the two opens
                continue
        if fcntl is None:
            return fd, created
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise BusyError(f"another `fastscratch study run` is writing {path}; wait for it to "
                            f"finish (or stop it), or choose another --out") from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd, created
        except FileNotFoundError:
            pass
        os.close(fd)  # the run that held the lock removed the file it had created empty: open the path again


def _missing_dirs(directory):
    """The directories ``os.makedirs(directory)`` would create, deepest first."""
    missing, path = [], os.path.abspath(directory)
    while not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


def _remove_dirs(paths):
    """Remove the empty directories ``paths``, deepest first (skipping those never made), up to the first that
    is not empty."""
    for path in paths:
        try:
            os.rmdir(path)
        except OSError:
            if os.path.lexists(path):
                return
