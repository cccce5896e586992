"""The suite as ``nohup make test`` and a script's ``make test &`` run it: SIGHUP and SIGINT ignored, inherited.

The tests that signal a child (or this process) run here in a pytest of their
own, started with both ignored and stdin closed. Each must pass, and in
bounded time: a child that inherits the ignored signal trains on and then
blocks on a pipe nobody reads, and such a suite hung for 600 s per test.
"""
import contextlib
import os
import pathlib
import signal
import subprocess
import sys

import psutil
import pytest

ROOT = pathlib.Path(__file__).parent.parent
TIMEOUT = 240  # seconds: each test below takes a few; one that waits for a stop that never comes takes minutes
SIGNAL_TESTS = [
    "tests/test_interrupt.py::test_stop_signals_act_as_ctrl_c_and_say_which_came[SIGHUP]",
    "tests/test_interrupt.py::test_real_sigint_to_a_training_process[jit]",
    "tests/cli/test_train_faults.py::test_a_stop_signal_during_training_keeps_the_run[after an epoch-SIGHUP]",
    "tests/cli/test_train_faults.py::test_a_stop_signal_while_saving_finishes_the_files[SIGHUP]",
    "tests/cli/test_train_faults.py::test_an_ignored_sighup_stays_ignored",
]


def as_under_nohup_in_the_background():
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job of a shell without job control
    os.close(0)  # 0<&-


def test_the_signal_tests_pass_with_sighup_and_sigint_ignored_and_stdin_closed(mnist_dir, tmp_path):
    with open(tmp_path / "output", "w") as output:
        child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SIGNAL_TESTS],
                                 cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                 preexec_fn=as_under_nohup_in_the_background)
        try:
            code = child.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            if child.poll() is None:  # and the training processes it started
                for process in psutil.Process(child.pid).children(recursive=True):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        process.kill()
                child.kill()
            child.wait()
    report = (tmp_path / "output").read_text()
    assert code is not None, f"still running after {TIMEOUT} s:\n{report[-3000:]}"
    assert code == 0, report[-5000:]
    assert f"{len(SIGNAL_TESTS)} passed" in report, report[-3000:]
