"""Numba settings, in one place for every kernel.

- ``fastmath`` stays off: it would reorder sums and fold ``inf - inf``, and the
  JIT network must track the reference to ~1e-12. The kernels are written so
  that the vector dimension is never a reduction, which LLVM vectorises
  without it.
- ``error_model="numpy"``: division by zero gives inf/nan as in NumPy instead of
  raising inside a kernel.
- ``cache=True`` writes compiled kernels next to the package or under
  ``NUMBA_CACHE_DIR``; when neither is writable (a read-only install) Numba
  refuses caching at decoration time and the kernels compile per process.
"""
from numba import njit

JIT_OPTIONS = {"nogil": True, "error_model": "numpy", "boundscheck": False, "fastmath": False}


def jit(function):
    """``numba.njit`` with the project's options, caching where a cache location is writable."""
    try:
        return njit(cache=True, **JIT_OPTIONS)(function)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return njit(cache=False, **JIT_OPTIONS)(function)
