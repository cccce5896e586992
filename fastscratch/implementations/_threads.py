"""Pin the thread counts of Numba and every loaded BLAS/OpenMP pool for the length of a cell."""
import contextlib
import os
import sys


@contextlib.contextmanager
def pinned(threads):
    """Limit Numba and BLAS to ``threads``; yield a function returning the counts in effect.

    Numba cannot exceed the ``NUMBA_NUM_THREADS`` its process started with (the
    study sets it on its workers): asking for more is an error, not a silent cap.
    """
    import numba
    from threadpoolctl import threadpool_info, threadpool_limits
    if threads > numba.config.NUMBA_NUM_THREADS:
        raise RuntimeError(f"threads={threads} exceeds NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS} of "
                           f"this process; start the worker with NUMBA_NUM_THREADS>={threads}")
    with contextlib.suppress(ImportError):
        # Numba's np.dot calls SciPy's BLAS, which it loads on first use: load it now so the limit reaches it.
        import scipy.linalg.cython_blas  # noqa: F401
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            def counts():
                facts = {"numba": numba.get_num_threads(), "numba_max": numba.config.NUMBA_NUM_THREADS,
                         "blas": {os.path.basename(p["filepath"]): p["num_threads"] for p in threadpool_info()}}
                if sys.modules.get("torch") is not None:  # None: an import of torch blocked or failed before
                    facts["torch"] = sys.modules["torch"].get_num_threads()
                return facts
            yield counts
    finally:
        numba.set_num_threads(before)
