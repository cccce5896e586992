"""Defer Ctrl-C to a safe point of the training loop."""
import contextlib
import signal
import threading

from fastscratch.exceptions import TrainingInterrupted


class _Flag:
    requested = False

    def check(self, losses, accuracies, epoch, batch=0):
        """Raise ``TrainingInterrupted`` if Ctrl-C came; call it between batches and after the last one."""
        if self.requested:
            raise TrainingInterrupted(losses, accuracies, epoch, batch)


@contextlib.contextmanager
def deferred_sigint():
    """Within the block, SIGINT only sets ``flag.requested``; the loop polls it.

    The caller polls with ``flag.check(...)``, and once more after its last
    batch, so that a Ctrl-C that came late is not lost; a block that only
    shields some work (saving files) reads ``flag.requested`` afterwards.
    Outside the main thread Python cannot install handlers, and a SIGINT that
    the process ignores (``SIG_IGN``, as for background jobs) stays ignored:
    in both cases the flag stays unset and SIGINT behaves as it did before.
    """
    flag = _Flag()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield flag
        return

    def handler(signum, frame):
        flag.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        # None: a handler installed outside Python, which cannot be put back; the default is closest.
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
