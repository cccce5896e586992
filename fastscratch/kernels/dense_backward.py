"""Backward pass of a dense layer: the gradients w.r.t. W, b and the input."""
from fastscratch._config import jit


@jit
def weight_gradient(x, dL_dz, dL_dW, dL_db):
    """Overwrite dL_dW (n_in, n_out) with x.T @ dL_dz and dL_db (n_out,) with its column sums.

    x (n, n_in), dL_dz (n, n_out). Sums run over the batch in order; zero
    inputs are skipped (exact, see dense_forward).
    """
    n, n_in = x.shape
    n_out = dL_dz.shape[1]
    zero = dL_dW.dtype.type(0)
    dL_dW[:, :] = zero
    dL_db[:] = zero
    for i in range(n):
        g = dL_dz[i]
        for j in range(n_out):
            dL_db[j] += g[j]
        for k in range(n_in):
            xv = x[i, k]
            if xv != zero:
                row = dL_dW[k]
                for j in range(n_out):
                    row[j] += xv * g[j]


@jit
def input_gradient(dL_dz, W, WT, dL_dx):
    """Overwrite dL_dx (n, n_in) with dL_dz @ W.T; W (n_in, n_out), dL_dz (n, n_out).

    WT (n_out, n_in) is scratch: W is transposed into it first so that the
    vector loop runs over the inputs, not over a reduction.
    """
    n_in, n_out = W.shape
    n = dL_dz.shape[0]
    zero = dL_dx.dtype.type(0)
    for k in range(n_in):
        for j in range(n_out):
            WT[j, k] = W[k, j]
    for i in range(n):
        row = dL_dx[i]
        for k in range(n_in):
            row[k] = zero
        for j in range(n_out):
            g = dL_dz[i, j]
            wt = WT[j]
            for k in range(n_in):
                row[k] += g * wt[k]
