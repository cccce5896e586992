"""Where the command writes: stdout and stderr that a reader who is gone, or was never there, cannot make fail.

A closed terminal (which also sends SIGHUP) or a closed pipe (``fastscratch
train | head``) makes every later write fail, with EIO or EPIPE. The run must
still be saved and its exit code still returned, so a write that fails sends
that stream to ``os.devnull`` from then on (Python's final flush included).

A command started with a standard stream closed (``fastscratch train >&-``,
as some job runners start it) gets ``os.devnull`` there: Python gives it no
``sys.stdout`` at all, and the first file it opened (the run directory's
marker) would take descriptor 1, where anything written to stdout would land.
"""
import contextlib
import os
import sys


class _Lenient:
    """``stream``, whose writes and flushes never raise OSError."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        try:
            return self.stream.write(text)
        except OSError:
            _to_devnull(self.stream)
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except OSError:
            _to_devnull(self.stream)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _to_devnull(stream):
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no descriptor (a StringIO): nothing is left to flush
        pass


@contextlib.contextmanager
def command_streams():
    """While the command runs: descriptors 0, 1 and 2 open (``os.devnull`` where one was closed), and
    ``sys.stdout`` and ``sys.stderr`` lenient, so that no write in the process (the command's, a download's
    progress, a warning) can fail it. Both are given back as they were."""
    for fd in (0, 1, 2):  # in order: os.open takes the lowest free descriptor, so a closed one is filled first
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull == fd:
                os.set_inheritable(fd, True)  # what a child process inherits as its own stdin, stdout, stderr
            else:
                os.dup2(devnull, fd)
                os.close(devnull)
    saved = sys.stdout, sys.stderr
    sys.stdout = _Lenient(sys.stdout if sys.stdout is not None else _devnull_stream(1))
    sys.stderr = _Lenient(sys.stderr if sys.stderr is not None else _devnull_stream(2))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _devnull_stream(fd):
    """A text stream on descriptor ``fd`` (``os.devnull`` by now), for a Python started without that stream."""
    return open(fd, "w", encoding="utf-8", errors="backslashreplace", closefd=False)


def stdout():
    """The current ``sys.stdout`` (tests redirect it), writing leniently."""
    return _Lenient(sys.stdout)


def stderr():
    """The current ``sys.stderr``, writing leniently."""
    return _Lenient(sys.stderr)
