"""Backward pass of a dense layer: the gradients w.r.t. W, b and the input.

Rows are indexed in place, never sliced: a slice is a reference-counted
view, costly in an inner loop.
"""
from fastscratch.kernel_cache import jit
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
