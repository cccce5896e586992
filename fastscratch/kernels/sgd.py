"""The optimisation step: plain SGD."""
from fastscratch._config import jit


@jit
def sgd_step(W, b, dL_dW, dL_db, learning_rate):
    """``W -= learning_rate * dL_dW`` and ``b -= learning_rate * dL_db``, in place.

    ``learning_rate`` must have the arrays' dtype (float32 networks step in float32).
    """
    n_in, n_out = W.shape
    for k in range(n_in):
        for j in range(n_out):
            W[k, j] -= learning_rate * dL_dW[k, j]
    for j in range(n_out):
        b[j] -= learning_rate * dL_db[j]


@jit
def gradient_step(columns, dL_dz, W, b, learning_rate, scratch):
    """One SGD step of a layer given dL_dz (n, n_out) and the column structure of its input x (n, n_in).

    The same step as ``weight_gradient`` then ``sgd_step``, bit for bit, without
    materialising dL_dW: ``W[k] -= learning_rate * sum_r x[r, k] * dL_dz[r]``
    for the inputs k that are nonzero somewhere in the batch (the other rows
    have a zero gradient), and ``b -= learning_rate * sum_r dL_dz[r]``.
    columns: x's column structure (``structure.fill_columns``). scratch =
    (g (n_out,), seen (n_out,)), overwritten.

    Returns whether every updated parameter is finite. The forward kernel
    skips zero inputs, which is exact only for finite weights, so the
    training loop stops as soon as a step overflows.
    """
    col_start, col_rows, col_values = columns
    g, seen = scratch
    n, n_out = dL_dz.shape
    zero = W.dtype.type(0)
    for j in range(n_out):
        seen[j] = zero  # turns NaN, for good, once w * 0 meets an inf or NaN weight
    for k in range(W.shape[0]):
        c, end = col_start[k], col_start[k + 1]
        if c == end:
            continue
        r = col_rows[c]
        v = col_values[c]
        for j in range(n_out):
            g[j] = v * dL_dz[r, j]
        c += 1
        # Four rows per pass over g, added in their order.
        while c + 4 <= end:
            r0, r1, r2, r3 = col_rows[c], col_rows[c + 1], col_rows[c + 2], col_rows[c + 3]
            v0, v1, v2, v3 = col_values[c], col_values[c + 1], col_values[c + 2], col_values[c + 3]
            for j in range(n_out):
                g[j] = (((g[j] + v0 * dL_dz[r0, j]) + v1 * dL_dz[r1, j]) + v2 * dL_dz[r2, j]) + v3 * dL_dz[r3, j]
            c += 4
        while c < end:
            r = col_rows[c]
            v = col_values[c]
            for j in range(n_out):
                g[j] += v * dL_dz[r, j]
            c += 1
        for j in range(n_out):
            w = W[k, j] - learning_rate * g[j]
            W[k, j] = w
            seen[j] += w * zero
    for j in range(n_out):
        g[j] = dL_dz[0, j]
    for r in range(1, n):
        for j in range(n_out):
            g[j] += dL_dz[r, j]
    finite = True
    for j in range(n_out):
        b[j] -= learning_rate * g[j]
        finite = finite and seen[j] == zero and b[j] - b[j] == zero
    return finite
