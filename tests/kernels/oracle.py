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


@numba.njit(cache=False)
def weight_gradient(x, dL_dz, dL_dW, dL_db):
    """Overwrite dL_dW (n_in, n_out) with x.T @ dL_dz and dL_db (n_out,) with its column sums, as the naive
    loop sums them: over the batch in order, one multiply and one add per term, zero inputs skipped (exact).
    The order ``sgd.gradient_step`` must reproduce bit for bit."""
    n, n_in = x.shape
    n_out = dL_dz.shape[1]
    zero = dL_dW.dtype.type(0)
    dL_dW[:, :] = zero
    dL_db[:] = zero
    for i in range(n):
        for j in range(n_out):
            dL_db[j] += dL_dz[i, j]
        for k in range(n_in):
            xv = x[i, k]
            if xv != zero:
                for j in range(n_out):
                    dL_dW[k, j] += xv * dL_dz[i, j]
