"""Activations and their derivatives, selected by an integer code.

A Python callable passed into a kernel costs ~100x a direct call, so the
built-in activations are dispatched by code, outside the inner loops.
Derivatives are written in terms of the layer output ``y``, as the tutorial
does, and follow the reference's operation order so results match bit for
bit wherever the inputs do; tanh is ``np.tanh``'s own algorithm (``fasttanh``).
"""
import math

from fastscratch.kernel_cache import jit
from fastscratch.kernels.fastexp import fast_exp
from fastscratch.kernels.fasttanh import NUMPY_TANH_IS_SIMD, numpy_tanh

SIGMOID, RELU, IDENTITY = 0, 1, 3
#: tanh as NumPy's SIMD loop computes it, and as libm does (NumPy's choice where it has no SIMD tanh).
TANH_NUMPY_SIMD, TANH_LIBM = 2, 4
#: The code of the built-in tanh: whichever of the two ``np.tanh`` is on this CPU, decided at import and
#: passed to the kernels, so that a cached kernel never carries another machine's choice.
TANH = TANH_NUMPY_SIMD if NUMPY_TANH_IS_SIMD else TANH_LIBM


@jit
def bias_activate_row(y, i, b, code):
    """``y[i, j] = f(y[i, j] + b[j])`` in place, for row i of y (n, n_out); b (n_out,)."""
    one = y.dtype.type(1)
    zero = y.dtype.type(0)
    n = y.shape[1]
    if code == SIGMOID:
        for j in range(n):
            y[i, j] = one / (one + fast_exp(-(y[i, j] + b[j])))
    elif code == RELU:
        for j in range(n):
            z = y[i, j] + b[j]
            y[i, j] = zero if z < zero else z  # np.maximum(z, 0), NaN kept
    elif code == TANH_NUMPY_SIMD:
        for j in range(n):
            y[i, j] = numpy_tanh(y[i, j] + b[j])
    elif code == TANH_LIBM:
        for j in range(n):
            y[i, j] = math.tanh(y[i, j] + b[j])
    else:
        for j in range(n):
            y[i, j] = y[i, j] + b[j]


@jit
def times_derivative(dL_dy, y, code, dL_dz):
    """``dL_dz = dL_dy * f'(y)``; all of shape (n, m); dL_dz may be dL_dy."""
    one = y.dtype.type(1)
    zero = y.dtype.type(0)
    n, m = y.shape
    for i in range(n):
        if code == SIGMOID:
            for j in range(m):
                dL_dz[i, j] = dL_dy[i, j] * (y[i, j] * (one - y[i, j]))
        elif code == RELU:
            for j in range(m):
                dL_dz[i, j] = dL_dy[i, j] * (one if y[i, j] > zero else zero)
        elif code == TANH_NUMPY_SIMD or code == TANH_LIBM:
            for j in range(m):
                dL_dz[i, j] = dL_dy[i, j] * (one - y[i, j] * y[i, j])
        else:
            for j in range(m):
                dL_dz[i, j] = dL_dy[i, j]
