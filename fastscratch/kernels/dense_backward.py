"""Backward pass of a dense layer: the gradients w.r.t. W, b and the input.

Rows are indexed in place, never sliced (see ``dense_forward``).
"""
from fastscratch._config import jit


@jit
def weight_gradient(x, dL_dz, dL_dW, dL_db):
    """Overwrite dL_dW (n_in, n_out) with x.T @ dL_dz and dL_db (n_out,) with its column sums.

    x (n, n_in), dL_dz (n, n_out). Sums run over the batch in order; zero
    inputs are skipped (exact, see ``structure``).
    """
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


@jit
def input_gradient(dL_dz, W, WT, dL_dx):
    """Overwrite dL_dx (n, n_in) with dL_dz @ W.T; W (n_in, n_out), dL_dz (n, n_out).

    WT (n_out, n_in) is scratch: W is transposed into it first so that the
    vector loop runs over the inputs, not over a reduction; four outputs are
    added per pass over a row of dL_dx, in their order.
    """
    n_in, n_out = W.shape
    n = dL_dz.shape[0]
    zero = dL_dx.dtype.type(0)
    for k in range(n_in):
        for j in range(n_out):
            WT[j, k] = W[k, j]
    for i in range(n):
        for k in range(n_in):
            dL_dx[i, k] = zero
        j = 0
        while j + 4 <= n_out:
            g0, g1, g2, g3 = dL_dz[i, j], dL_dz[i, j + 1], dL_dz[i, j + 2], dL_dz[i, j + 3]
            for k in range(n_in):
                dL_dx[i, k] = (((dL_dx[i, k] + g0 * WT[j, k]) + g1 * WT[j + 1, k]) + g2 * WT[j + 2, k]) \
                    + g3 * WT[j + 3, k]
            j += 4
        while j < n_out:
            g = dL_dz[i, j]
            for k in range(n_in):
                dL_dx[i, k] += g * WT[j, k]
            j += 1
