"""Defer Ctrl-C to a safe point of the training loop."""
import contextlib
import signal
import threading


class _Flag:
    requested = False


@contextlib.contextmanager
def deferred_sigint():
    """Within the block, SIGINT only sets ``flag.requested``; the loop polls it.

    Outside the main thread Python cannot install handlers; there the flag
    stays unset and KeyboardInterrupt behaves as usual.
    """
    flag = _Flag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
