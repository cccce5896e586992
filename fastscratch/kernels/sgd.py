"""The optimisation step: plain SGD."""
from fastscratch.kernel_cache import jit
from fastscratch.kernels.simd import update_row_pair, update_rows


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
def gradient_step(columns, values, dL_dz, W, b, learning_rate, g):
    """One SGD step of a layer given dL_dz (n, n_out) and the column structure of its input x (n, n_in).

    The weight gradient x.T @ dL_dz, each entry summed over the batch's rows in
    order (``simd.update_rows``: fused multiply-adds from +0), then ``sgd_step``'s
    update, without materialising dL_dW: ``W[k] -= learning_rate * sum_r x[r, k] *
    dL_dz[r]`` for the inputs k that are nonzero somewhere in the batch (the
    other rows have a zero gradient), and ``b -= learning_rate * sum_r dL_dz[r]``.
    columns is x's ``structure.Columns`` (one batch of
    ``structure.batch_columns``), whose entries are
    ``values.flat[positions]``; g (n_out,) is scratch for the bias gradient,
    overwritten.

    Returns whether every updated parameter is finite. The forward kernel
    skips zero inputs, which is exact only for finite weights, so the
    training loop stops as soon as a step overflows.
    """
    col_start, col_rows, positions = columns.starts, columns.rows, columns.positions
    finite = True
    # Each row's update leaves the registers straight into W (simd.update_rows), which also tests it.
    for k in range(W.shape[0]):
        c, end = col_start[k], col_start[k + 1]
        if c == end:
            continue
        finite = update_rows(W, k, dL_dz, col_rows, values, positions, c, end, -learning_rate) and finite
    return bias_step(dL_dz, b, learning_rate, g) and finite


@jit
def full_gradient_step(x, xT, dL_dz, W, b, learning_rate, g):
    """``gradient_step`` of a dense input x (n, n_in), every entry visited: the same bits, its values read in order.

    xT (n_in, n) is scratch, overwritten with x.T, so that the batch's values
    for each row of W are consecutive; two rows of W are updated per walk
    (``simd.update_row_pair``).
    """
    n, n_in = x.shape
    for r in range(n):
        for k in range(n_in):
            xT[k, r] = x[r, k]
    values = xT.reshape(xT.size)
    finite = True
    for k in range(0, n_in - 1, 2):  # two rows of W at a time, each row of dL_dz read once for both
        finite = update_row_pair(W, k, dL_dz, values, k * n, (k + 1) * n, n, -learning_rate) and finite
    if n_in % 2:
        k = n_in - 1
        finite = update_rows(W, k, dL_dz, None, values, None, k * n, (k + 1) * n, -learning_rate) and finite
    return bias_step(dL_dz, b, learning_rate, g) and finite


@jit
def bias_step(dL_dz, b, learning_rate, g):
    """``b -= learning_rate * sum_r dL_dz[r]``, the batch's rows summed in order; g (n_out,) scratch. Returns whether
    b is finite."""
    n, n_out = dL_dz.shape
    zero = b.dtype.type(0)
    for j in range(n_out):
        g[j] = dL_dz[0, j]
    for r in range(1, n):
        for j in range(n_out):
            g[j] += dL_dz[r, j]
    finite = True
    for j in range(n_out):
        b[j] -= learning_rate * g[j]
        finite = finite and b[j] - b[j] == zero
    return finite
