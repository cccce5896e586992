"""Where the command writes: stdout and stderr that a reader who is gone cannot make fail.

A closed terminal (which also sends SIGHUP) or a closed pipe (``fastscratch
train | head``) makes every later write fail, with EIO or EPIPE. The run must
still be saved and its exit code still returned, so a write that fails sends
that stream to ``os.devnull`` from then on (Python's final flush included).
"""
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


def stdout():
    """The current ``sys.stdout`` (tests redirect it), writing leniently."""
    return _Lenient(sys.stdout)


def stderr():
    """The current ``sys.stderr``, writing leniently."""
    return _Lenient(sys.stderr)
