"""The pinned worker's preload binds every thread of its process to the worker's CPUs."""
import contextlib
import os
import sys
import threading

import pytest

from fastscratch.study import _pin

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="binds threads through /proc")


def test_every_thread_is_bound_and_one_that_ended_meanwhile_is_skipped(monkeypatch):
    before = os.sched_getaffinity(0)
    target = {min(before)}
    monkeypatch.setenv(_pin.VARIABLE, str(min(before)))
    with open("/proc/sys/kernel/pid_max") as f:
        gone = str(int(f.read()) + 1)  # no thread has this id: one listed, then ended before it was bound
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path: [*real_listdir(path), gone] if path == "/proc/self/task"
                        else real_listdir(path))
    idle = threading.Event()
    other = threading.Thread(target=idle.wait)
    other.start()
    try:
        _pin.dask_setup()
        threads = [int(t) for t in real_listdir("/proc/self/task")]
        assert other.native_id in threads
        assert all(os.sched_getaffinity(t) == target for t in threads)
    finally:
        idle.set()
        other.join()
        for thread in real_listdir("/proc/self/task"):
            with contextlib.suppress(ProcessLookupError):
                os.sched_setaffinity(int(thread), before)
