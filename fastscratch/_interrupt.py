"""Defer Ctrl-C (and, where a program opts in, SIGTERM and SIGHUP) to a safe point of the training loop."""
import contextlib
import signal
import threading

from fastscratch.exceptions import TrainingInterrupted

#: Signals that a job scheduler, ``kill``, ``timeout``, systemd or Docker (SIGTERM), or a closed terminal (SIGHUP)
#: sends to end a process; absent on Windows.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class _Flag:
    requested = False

    def check(self, losses, accuracies, epoch, batch=0):
        """Raise ``TrainingInterrupted`` if Ctrl-C came; call it between batches and after the last one."""
        if self.requested:
            raise TrainingInterrupted(losses, accuracies, epoch, batch)


class StopSignals:
    """SIGTERM and SIGHUP as Ctrl-C, for a program that saves its work on Ctrl-C (``fastscratch train``).

    Within ``with StopSignals() as stop:`` each of them raises
    ``KeyboardInterrupt`` where SIGINT would; and inside ``deferred_sigint``
    (``train``, or a block that shields saving) it only sets the flag, as
    SIGINT does there. ``stop.received`` is the first signal that asked the
    program to stop (SIGINT included, once inside ``deferred_sigint``), or
    None. The library alone never installs this: a script that trains keeps
    the default SIGTERM, which ends it at once.

    A signal the process ignores (``nohup`` ignores SIGHUP) stays ignored, and
    outside the main thread nothing is installed.
    """

    def __init__(self):
        self.received = None
        self._previous = {}

    def note(self, signum):
        if self.received is None:
            self.received = signal.Signals(signum)

    def __call__(self, signum, frame):  # the handler outside deferred_sigint
        self.note(signum)
        raise KeyboardInterrupt

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
        return False


@contextlib.contextmanager
def deferred_sigint():
    """Within the block, SIGINT only sets ``flag.requested``; the loop polls it.

    The caller polls with ``flag.check(...)``, and once more after its last
    batch, so that a Ctrl-C that came late is not lost; a block that only
    shields some work (saving files) reads ``flag.requested`` afterwards.
    SIGTERM and SIGHUP are deferred the same way while a ``StopSignals`` block
    handles them.
    Outside the main thread Python cannot install handlers, and a SIGINT that
    the process ignores (``SIG_IGN``, as for background jobs) stays ignored:
    in both cases the flag stays unset and SIGINT behaves as it did before.
    """
    flag = _Flag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    routed = {signum: handler for signum in STOP_SIGNALS
              if isinstance(handler := signal.getsignal(signum), StopSignals)}
    deferred = [*routed, *([] if signal.getsignal(signal.SIGINT) is signal.SIG_IGN else [signal.SIGINT])]

    def handler(signum, frame):
        flag.requested = True
        for stop in routed.values():
            stop.note(signum)

    previous = {signum: signal.signal(signum, handler) for signum in deferred}
    try:
        yield flag
    finally:
        # None: a handler installed outside Python, which cannot be put back; the default is closest.
        for signum, before in previous.items():
            signal.signal(signum, signal.SIG_DFL if before is None else before)
