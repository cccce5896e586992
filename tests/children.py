"""Child processes that a test signals: started with the dispositions the test needs, whatever the suite inherited.

``nohup make test`` starts the suite with SIGHUP ignored, a script's ``make
test &`` with SIGINT ignored, and every child inherits that; fastscratch
rightly leaves an ignored stop signal ignored, so a test that sends one would
wait for a stop that never comes while the child, training on, fills a pipe
that nobody reads. A test that is about an ignored signal ignores it in its
child explicitly.
"""
import signal
import subprocess

STOP_SIGNALS = (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)


def signalled(*ignoring):
    """``Popen`` keywords for a child that the test will signal.

    SIGHUP, SIGINT and SIGTERM start at their defaults, as from a terminal,
    except those in ``ignoring``, which start ignored (as ``nohup`` or a
    shell's background job leaves them); stdin is /dev/null, whatever the
    suite's is (closed, a terminal).
    """
    def dispositions():
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN if signum in ignoring else signal.SIG_DFL)
    return {"preexec_fn": dispositions, "stdin": subprocess.DEVNULL}
