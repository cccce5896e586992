"""A fused multiply-add ``a * b + c`` rounded once, for float64 and float32: the instruction, or exact arithmetic.

NumPy's SIMD loops (its tanh among them) round ``a * b + c`` once, with the
FMA instruction; a separate multiply and add round twice and differ in the
last bit. ``fma_intrinsic`` emits LLVM's ``llvm.fma`` (the instruction where
the CPU has it, a correctly rounded libm call where not), which loops can
vectorise. ``multiply_add`` is the kernels' sums' step: ``fma_intrinsic`` in
compiled code, ``a * b + c`` rounded twice when run as Python (under
``NUMBA_DISABLE_JIT``, where the sums are promised within a tolerance, not to
the bit: docs/numerics.md). Its plain twins ``exact_fma64`` and ``exact_fma32`` get the same
bits from plain arithmetic, for ``FASTSCRATCH_SIMD=plain`` and
``NUMBA_DISABLE_JIT``: the float64 product split exactly into two doubles
(Dekker), the sum of three doubles rounded to odd and then to nearest (Boldo
and Melquiond, "Emulation of FMA and correctly-rounded sums: proved
algorithms using rounding to odd", IEEE Trans. Computers 57(4), 2008); a
float32 product is exact in float64, and a float64 sum rounded to odd rounds
to float32 as the exact sum does. Exact for finite arguments whose float64
product neither overflows nor falls below about 1e-290; below, the product's
error is rounded to the subnormal grid, which can move a result that small
by an ulp.
"""
import math

import numpy as np
from numba import types
from numba.extending import intrinsic, overload

from fastscratch.kernel_cache import jit

#: 2**27 + 1: splits a double into two halves of 26 bits whose products are exact.
_SPLITTER = 134217729.0


@intrinsic
def fma_intrinsic(typingctx, a, b, c):
    """``a * b + c`` rounded once; a, b, c of one float type."""
    if not isinstance(a, types.Float) or not a == b == c:
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)
    return a(a, b, c), codegen


def multiply_add(a, b, c):
    """``a * b + c``: rounded once in compiled code (``fma_intrinsic``); here, as Python, rounded twice.

    Also over NumPy arrays, elementwise, as Python.
    """
    return a * b + c


@overload(multiply_add, inline="always")
def _multiply_add(a, b, c):
    if isinstance(a, types.Float) and a == b == c:
        return lambda a, b, c: fma_intrinsic(a, b, c)
    return None


@jit
def two_sum(a, b):
    """(s, e) with s = a + b rounded and s + e = a + b exactly (Knuth)."""
    s = a + b
    b_part = s - a
    return s, (a - (s - b_part)) + (b - b_part)


@jit
def two_product(a, b):
    """(p, e) with p = a * b rounded and p + e = a * b exactly, for float64 (Dekker, without FMA)."""
    p = a * b
    t = _SPLITTER * a
    a_high = t - (t - a)
    a_low = a - a_high
    t = _SPLITTER * b
    b_high = t - (t - b)
    b_low = b - b_high
    return p, ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low


@jit
def odd_sum(a, b):
    """a + b (float64) rounded to odd: truncated, then made odd if inexact, so that a later rounding is exact."""
    s, e = two_sum(a, b)
    if e != 0.0:
        mantissa, _ = math.frexp(s)
        if np.int64(abs(mantissa) * 9007199254740992.0) & 1 == 0:  # an even last bit: the odd neighbour toward e
            s = np.nextafter(s, math.copysign(math.inf, e))
    return s


@jit
def exact_fma64(a, b, c):
    """``a * b + c`` rounded once, for float64, in plain arithmetic."""
    product_high, product_low = two_product(a, b)
    sum_high, sum_low = two_sum(c, product_high)
    return sum_high + odd_sum(sum_low, product_low)


@jit
def exact_fma32(a, b, c):
    """``a * b + c`` rounded once, for float32, in plain arithmetic."""
    return np.float32(odd_sum(np.float64(a) * np.float64(b), np.float64(c)))
