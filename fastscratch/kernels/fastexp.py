"""A vectorisable ``exp``, for float64 and float32.

Numba's ``math.exp`` is a libm call per element that LLVM cannot vectorise,
and the sigmoid's exponentials are a large share of an epoch. This is the
classic Cody-Waite reduction ``exp(x) = 2**n * exp(r)``, ``|r| <= ln2/2``, a
Taylor polynomial for ``exp(r)`` (degree 13 for float64, 7 for float32, so
the truncation error is below half an ulp) evaluated with fused multiply-adds
(``fma.multiply_add``: rounded twice when run as Python, within an ulp) and
``2**n`` built from its bits.
Only plain arithmetic and bit casts, so loops that call it vectorise; the
result is within a couple of ulps of NumPy's and bit-identical on every
machine. ``2**n`` is applied as two halves so that results near the overflow
and underflow limits round like ``exp`` (inf above ~709.78, gradual underflow
to 0 below ~-745); NaN propagates. The bit casts are intrinsics; the plain
twin (``bit_casts`` false: ``FASTSCRATCH_SIMD=plain``, and ``fast_exp``
called from Python) gets n by conversion and ``2**k`` as a power, the same
bits.
"""
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from fastscratch.kernel_cache import jit
from fastscratch.kernels import simd
from fastscratch.kernels.fma import multiply_add


@intrinsic
def float_bits(typingctx, x):
    """Reinterpret a float64/float32 as the int64/int32 with the same bits."""
    if not isinstance(x, types.Float):
        return None
    result = types.int64 if x.bitwidth == 64 else types.int32

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(x.bitwidth))
    return result(x), codegen


@intrinsic
def bits_float(typingctx, i):
    """Reinterpret an int64/int32 as the float64/float32 with the same bits."""
    if not isinstance(i, types.Integer) or i.bitwidth not in (32, 64):
        return None
    result = types.float64 if i.bitwidth == 64 else types.float32

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType() if i.bitwidth == 64 else ir.FloatType())
    return result(i), codegen


# 1/k! for the Taylor polynomial, highest degree first (Horner).
_INV_FACTORIALS_64 = tuple(1.0 / float(np.prod(np.arange(1, k + 1))) for k in range(13, -1, -1))
_INV_FACTORIALS_32 = tuple(np.float32(1.0 / float(np.prod(np.arange(1, k + 1)))) for k in range(7, -1, -1))

_LN2_HI_64, _LN2_LO_64 = 6.93145751953125e-1, 1.42860682030941723212e-6
_LN2_HI_32, _LN2_LO_32 = np.float32(0.693359375), np.float32(-2.12194440e-4)


@jit
def horner(r, coefficients):
    """The polynomial with ``coefficients`` (highest degree first) at r, each step one fused multiply-add."""
    p = coefficients[0]
    for i in range(1, len(coefficients)):
        p = multiply_add(p, r, coefficients[i])
    return p


@jit
def exp64(x, bit_casts):
    """exp of a float64 scalar; bit_casts false gives the same bits in plain code that does not vectorise."""
    if x > 710.0:
        x = 710.0
    if x < -746.0:
        x = -746.0
    # Adding 1.5 * 2**52 rounds x/ln2 to an integer kept in the low mantissa bits.
    shifted = multiply_add(x, 1.4426950408889634, 6755399441055744.0)
    n_float = shifted - 6755399441055744.0
    r = multiply_add(-n_float, _LN2_LO_64, x - n_float * _LN2_HI_64)  # n * LN2_HI is exact
    p = horner(r, _INV_FACTORIALS_64)
    # 2**n as two normal halves, each exact: either from its bits or as a power.
    if bit_casts:
        n = float_bits(shifted) - np.int64(0x4338000000000000)
        half = n >> 1
        return (p * bits_float((half + np.int64(1023)) << np.int64(52))) * \
            bits_float((n - half + np.int64(1023)) << np.int64(52))
    n = np.int64(n_float)
    half = n >> 1
    return (p * 2.0 ** half) * 2.0 ** (n - half)


@jit
def exp32(x, bit_casts):
    """exp of a float32 scalar; bit_casts as in ``exp64``."""
    if x > np.float32(89.0):
        x = np.float32(89.0)
    if x < np.float32(-104.0):
        x = np.float32(-104.0)
    shifted = multiply_add(x, np.float32(1.44269504), np.float32(12582912.0))
    n_float = shifted - np.float32(12582912.0)
    r = multiply_add(-n_float, _LN2_LO_32, x - n_float * _LN2_HI_32)
    p = horner(r, _INV_FACTORIALS_32)
    if bit_casts:
        n = float_bits(shifted) - np.int32(0x4B400000)
        # Numba widens int32 arithmetic to int64: narrow back before the bit casts.
        half = n >> 1
        return (p * bits_float(np.int32((half + 127) << 23))) * bits_float(np.int32((n - half + 127) << 23))
    n = np.int64(n_float)
    half = n >> 1
    return (p * np.float32(2.0 ** half)) * np.float32(2.0 ** (n - half))


#: Whether compiled kernels build 2**n from its bits (vectorises) or as a power (``FASTSCRATCH_SIMD=plain``).
BIT_CASTS = simd.VECTOR_BITS != 0


def fast_exp(x):
    """exp of a float32 or float64 scalar; in compiled code the vectorisable form, here the plain one."""
    return exp32(x, False) if isinstance(x, np.float32) else exp64(x, False)


@overload(fast_exp)
def _fast_exp(x):
    if x == types.float64:
        return lambda x: exp64(x, BIT_CASTS)
    if x == types.float32:
        return lambda x: exp32(x, BIT_CASTS)
    return None
