"""Numba kernels. Each fills buffers it is given and allocates nothing.

Kernels are typed by use: float64 and float32 arrays each get their own
compiled specialisation, and constants are made with ``x.dtype.type(...)`` so
float32 never silently promotes to float64. Under ``NUMBA_DISABLE_JIT=1`` they
run as Python, the intrinsics (``simd``, ``fastexp``) through their plain
twins, which compiled give the same bits, and as Python the same numbers
(their fused multiply-adds round twice there: docs/numerics.md).
"""
