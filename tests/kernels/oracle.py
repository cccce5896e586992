"""Plain NumPy versions of what the kernels compute, from the tutorial's functions."""
import numba
import numpy as np

from fastscratch.dispatch import KERNEL_CODES
from fastscratch.functions import BUILTINS
from fastscratch.kernels import activations

#: code -> (name, function, derivative), from the package's one table (plus the kernels' identity).
ACTIVATIONS = {**{KERNEL_CODES[b.kind, b.name]: (b.name, b.function, b.derivative) for b in BUILTINS
                  if b.kind == "activation"},
               activations.IDENTITY: ("identity", lambda z: z, lambda y: np.ones_like(y))}
LOSSES = {KERNEL_CODES[b.kind, b.name]: (b.name, b.function, b.derivative) for b in BUILTINS if b.kind == "loss"}

#: Tolerances against a float64 oracle. float32: a sum of n products has a
#: relative error up to about n * 6e-8 of sum|terms| in the worst case (5e-5
#: for n = 784) and about sqrt(n) * 6e-8 (2e-6) typically; 2e-5 covers the
#: typical case with margin and would still catch any indexing or order bug,
#: whose errors are O(1).
RTOL = {np.float64: 1e-12, np.float32: 2e-5}


def sparse_like(rng, shape, dtype, zero_fraction=0.8):
    """Random values in [0, 1) with about ``zero_fraction`` exact zeros, like MNIST pixels."""
    x = rng.random(shape)
    x[rng.random(shape) < zero_fraction] = 0.0
    return x.astype(dtype)


def dense_forward(x, W, b, code):
    return ACTIVATIONS[code][1](np.dot(x.astype(np.float64), W.astype(np.float64)) + b)


def assert_close(got, expected, dtype, scale=1.0):
    np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale)


#: 2**27 + 1: splits a float64 into two halves of 26 bits whose products are exact (Dekker).
_SPLITTER = 134217729.0


def _two_sum(a, b):
    s = a + b
    b_part = s - a
    return s, (a - (s - b_part)) + (b - b_part)


def _odd_sum(a, b):
    """a + b (float64 arrays) rounded to odd: where inexact, the neighbour with an odd last bit toward the error."""
    s, e = _two_sum(a, b)
    even = (s.view(np.int64) & 1) == 0
    return np.where((e != 0) & even, np.nextafter(s, np.copysign(np.inf, e)), s)


def fma(a, b, c):
    """``a * b + c`` rounded once, elementwise over NumPy arrays (broadcast) of one float dtype, in plain
    arithmetic: Dekker's exact product and a sum rounded to odd, then to nearest (Boldo and Melquiond, as
    ``kernels/fma.py``; a float32 product is exact in float64). Exact for finite values whose products neither
    overflow nor fall below about 1e-290: the test oracle of the kernels' fused sums."""
    a, b, c = np.broadcast_arrays(*(np.asarray(v) for v in (a, b, c)))
    dtype = a.dtype
    assert b.dtype == c.dtype == dtype and dtype in (np.float64, np.float32), (a.dtype, b.dtype, c.dtype)
    with np.errstate(all="ignore"):
        if dtype == np.float32:
            return _odd_sum(a.astype(np.float64) * b.astype(np.float64), c.astype(np.float64)).astype(np.float32)
        product = a * b
        t = _SPLITTER * a
        a_high = t - (t - a)
        a_low = a - a_high
        t = _SPLITTER * b
        b_high = t - (t - b)
        b_low = b - b_high
        product_low = ((a_high * b_high - product) + a_high * b_low + a_low * b_high) + a_low * b_low
        high, low = _two_sum(c, product)
        return high + _odd_sum(low, product_low)


def fused_sum(M, rows, values, positions, start, stop, width):
    """``sum_c v_c * M[rows[c], :width]`` as the kernels sum it (``simd.combine_rows``): from +0, term by term in
    ascending c, each added with one rounding."""
    total = np.zeros(width, dtype=M.dtype)
    for c in range(start, stop):
        v = values.flat[c if positions is None else positions[c]]
        total = fma(v, M[c - start if rows is None else rows[c], :width], total)
    return total


def blocked_product(x, W, block):
    """x @ W as the forward kernels sum it: per row, each block of ``block`` inputs a ``fused_sum`` of its nonzero
    entries, the blocks' sums added in order (the first one as it is); 0 for a row without nonzero entries."""
    y = np.zeros((x.shape[0], W.shape[1]), dtype=W.dtype)
    for i in range(x.shape[0]):
        nonzero = np.flatnonzero(x[i])
        blocks = nonzero // block
        first = True
        for q in np.unique(blocks):
            in_block = nonzero[blocks == q]
            total = fused_sum(W, in_block, x[i], in_block, 0, len(in_block), W.shape[1])
            y[i] = total if first else y[i] + total
            first = False
    return y


def weight_gradient(x, dL_dz):
    """(x.T @ dL_dz, its column sums) as the SGD step sums them: per weight, over the batch's rows in order, from
    +0, one rounding per term (zero inputs skipped: exact); the bias's gradient a plain sum over the rows."""
    n, n_in = x.shape
    dL_dW = np.zeros((n_in, dL_dz.shape[1]), dtype=dL_dz.dtype)
    dL_db = np.zeros(dL_dz.shape[1], dtype=dL_dz.dtype)
    for i in range(n):
        dL_db = dL_db + dL_dz[i] if i else dL_dz[i].copy()
        nonzero = np.flatnonzero(x[i])
        dL_dW[nonzero] = fma(x[i, nonzero][:, np.newaxis], dL_dz[i][np.newaxis, :], dL_dW[nonzero])
    return dL_dW, dL_db


def assert_fused(got, expected, dtype, scale):
    """Compiled kernels: ``expected``'s bits. As Python (``NUMBA_DISABLE_JIT``), whose multiply-adds round twice:
    within ``RTOL`` relative of ``expected``, and of ``scale`` (the sums' magnitude: the sum of the terms'
    absolute values)."""
    if numba.config.DISABLE_JIT:
        np.testing.assert_allclose(got, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * np.max(scale, initial=0.0))
    else:
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8))
