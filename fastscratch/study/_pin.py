"""Worker preload of pinned timing workers: bind every thread of the worker process to its own CPUs.

The nanny starts the worker with ``FASTSCRATCH_CPUS`` (its CPU set) and the
thread variables set to that many threads; this runs in the new worker process
before it takes any task, so what the cells load (NumPy's BLAS, Numba, torch)
starts on those CPUs. Linux binds threads, not processes: every thread the
process already has is bound, and threads started later inherit the binding.
"""
import contextlib
import os

VARIABLE = "FASTSCRATCH_CPUS"


def dask_setup(worker=None):
    cpus = {int(c) for c in os.environ[VARIABLE].split(",")}
    for thread in os.listdir("/proc/self/task"):
        # A thread that ended since the listing has nothing left to bind; failing here would fail the worker.
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(thread), cpus)
