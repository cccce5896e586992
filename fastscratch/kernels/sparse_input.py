"""The first layer on a sparse input: forward and SGD step over the nonzero pixels only.

MNIST images are ~81% zeros. Skipping a zero input is exact (``0 * w`` adds
nothing to a sum when w is finite) and sums keep the order of the dense
kernels (inputs ascending, batch rows ascending), so these kernels give the
same bits as ``dense_forward`` / ``weight_gradient`` + ``sgd_step``.

The input's nonzero structure is computed once per array (CSR: ``indptr``,
``indices``), since the training set is visited once per epoch for hundreds
of epochs.
"""
import numpy as np

from fastscratch._config import jit
from fastscratch.kernels.activations import bias_activate_row


@jit
def fill_structure(X, indptr, indices):
    """Write the CSR structure of X (N, n) into indptr (N + 1,) and indices (nnz,), columns ascending."""
    zero = X.dtype.type(0)
    c = 0
    indptr[0] = 0
    for i in range(X.shape[0]):
        for k in range(X.shape[1]):
            if X[i, k] != zero:
                indices[c] = k
                c += 1
        indptr[i + 1] = c


def nonzero_structure(X):
    """Return ``(indptr, indices)``, the CSR structure of the 2-D array X (16-bit indices when they fit)."""
    indptr = np.empty(X.shape[0] + 1, dtype=np.int64)
    indices = np.empty(np.count_nonzero(X), dtype=np.int16 if X.shape[1] <= 2 ** 15 else np.int64)
    fill_structure(X, indptr, indices)
    return indptr, indices


@jit
def sparse_forward(X, indptr, indices, begin, W, b, code, y):
    """Overwrite y (n, n_out) with f(X[begin:begin + n] @ W + b), visiting the nonzero columns only.

    Four inputs are added per pass over a row of y, in their order, so the
    row is loaded and stored a quarter as often as one input at a time.
    """
    n, n_out = y.shape
    zero = y.dtype.type(0)
    for r in range(n):
        i = begin + r
        for j in range(n_out):
            y[r, j] = zero
        c, end = indptr[i], indptr[i + 1]
        while c + 4 <= end:
            k0, k1, k2, k3 = indices[c], indices[c + 1], indices[c + 2], indices[c + 3]
            v0, v1, v2, v3 = X[i, k0], X[i, k1], X[i, k2], X[i, k3]
            for j in range(n_out):
                y[r, j] = (((y[r, j] + v0 * W[k0, j]) + v1 * W[k1, j]) + v2 * W[k2, j]) + v3 * W[k3, j]
            c += 4
        while c < end:
            k = indices[c]
            v = X[i, k]
            for j in range(n_out):
                y[r, j] += v * W[k, j]
            c += 1
        bias_activate_row(y, r, b, code)


@jit
def sparse_sgd_step(X, indptr, indices, begin, dL_dz, W, b, learning_rate, scratch):
    """One SGD step of the first layer for the batch X[begin:begin + n], given dL_dz (n, n_out).

    ``W[k] -= learning_rate * sum_r X[begin + r, k] * dL_dz[r]`` for the columns
    k that are nonzero somewhere in the batch (the others have a zero
    gradient), and ``b -= learning_rate * sum_r dL_dz[r]``. scratch =
    (col_start (n_in + 1,), cursor (n_in,), col_rows (n * n_in,) int64 arrays,
    g (n_out,)), all overwritten.
    """
    col_start, cursor, col_rows, g = scratch
    n, n_out = dL_dz.shape
    n_in = W.shape[0]
    # The batch's (row, column) pairs sorted by column by counting sort, rows ascending.
    for k in range(n_in + 1):
        col_start[k] = 0
    for r in range(n):
        for c in range(indptr[begin + r], indptr[begin + r + 1]):
            col_start[indices[c] + 1] += 1
    for k in range(n_in):
        col_start[k + 1] += col_start[k]
        cursor[k] = col_start[k]
    for r in range(n):
        for c in range(indptr[begin + r], indptr[begin + r + 1]):
            k = indices[c]
            col_rows[cursor[k]] = r
            cursor[k] += 1
    for k in range(n_in):
        c, end = col_start[k], col_start[k + 1]
        if c == end:
            continue
        r = col_rows[c]
        v = X[begin + r, k]
        for j in range(n_out):
            g[j] = v * dL_dz[r, j]
        c += 1
        while c + 4 <= end:
            r0, r1, r2, r3 = col_rows[c], col_rows[c + 1], col_rows[c + 2], col_rows[c + 3]
            v0, v1, v2, v3 = X[begin + r0, k], X[begin + r1, k], X[begin + r2, k], X[begin + r3, k]
            for j in range(n_out):
                g[j] = (((g[j] + v0 * dL_dz[r0, j]) + v1 * dL_dz[r1, j]) + v2 * dL_dz[r2, j]) + v3 * dL_dz[r3, j]
            c += 4
        while c < end:
            r = col_rows[c]
            v = X[begin + r, k]
            for j in range(n_out):
                g[j] += v * dL_dz[r, j]
            c += 1
        for j in range(n_out):
            W[k, j] -= learning_rate * g[j]
    for j in range(n_out):
        g[j] = dL_dz[0, j]
    for r in range(1, n):
        for j in range(n_out):
            g[j] += dL_dz[r, j]
    for j in range(n_out):
        b[j] -= learning_rate * g[j]
