"""Backward pass of a dense layer: the gradients w.r.t. W, b and the input.

Rows are indexed in place, never sliced: a slice is a reference-counted
view, costly in an inner loop.
"""
from fastscratch.kernel_cache import jit
from fastscratch.kernels.checks import all_finite
from fastscratch.kernels.simd import combine_row_pair, combine_rows


@jit
def input_gradient(dL_dz, W, WT, dL_dx):
    """Overwrite dL_dx (n, n_in) with dL_dz @ W.T; W (n_in, n_out), dL_dz (n, n_out).

    WT (n_out, n_in) is scratch: W is transposed into it so that each row of
    dL_dx is a combination of rows of WT, summed over the outputs in order,
    two rows at a time (``simd.combine_row_pair``).
    """
    n_in, n_out = W.shape
    n = dL_dz.shape[0]
    for j in range(n_out):
        for k in range(n_in):
            WT[j, k] = W[k, j]
    for i in range(0, n - 1, 2):
        combine_row_pair(dL_dx, i, WT, dL_dz, i * n_out, (i + 1) * n_out, n_out)
    if n % 2:
        combine_rows(dL_dx, n - 1, WT, None, dL_dz, None, (n - 1) * n_out, n * n_out)


@jit
def weight_gradients(x, dL_dz, rows, positions, counts, dL_dW, dL_db):
    """Overwrite dL_dW (n_in, n_out) with x.T @ dL_dz and dL_db (n_out,) with the sum of dL_dz's rows; x (n, n_in)
    dense, dL_dz (n, n_out).

    Each ``dL_dW[k]`` is one chain of fused multiply-adds over the batch's rows
    in order, from +0 (``simd.combine_rows``): the sum ``sgd.gradient_step``
    steps with, and its rows of dL_dz are read from the L1 cache. Where dL_dz
    is finite only the rows where ``x[r, k]`` is nonzero are visited (a zero
    term leaves a finite sum as it is); where it holds NaN or inf, every row, so
    that ``0 * inf`` gives NaN as in BLAS. rows and positions (n * n_in,) and
    counts (n_in,) are scratch: the visited rows of each input and their
    positions in x. dL_db sums the rows in order, as ``sgd.bias_step`` does.
    """
    n, n_in = x.shape
    zero = x.dtype.type(0)
    every = not all_finite(dL_dz)
    for k in range(n_in):
        counts[k] = 0
    for r in range(n):
        for k in range(n_in):
            if every or x[r, k] != zero:
                c = k * n + counts[k]
                rows[c] = r
                positions[c] = r * n_in + k
                counts[k] += 1
    for k in range(n_in):
        combine_rows(dL_dW, k, dL_dz, rows, x, positions, k * n, k * n + counts[k])
    column_sums(dL_dz, dL_db)


@jit
def column_sums(M, out):
    """Overwrite out (m,) with the sum of M's (n, m) rows, in order from the first."""
    for j in range(M.shape[1]):
        out[j] = M[0, j]
    for r in range(1, M.shape[0]):
        for j in range(M.shape[1]):
            out[j] += M[r, j]
