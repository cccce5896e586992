"""Backward pass of a dense layer: the gradients w.r.t. W, b and the input.

Rows are indexed in place, never sliced: a slice is a reference-counted
view, costly in an inner loop.
"""
from fastscratch.kernel_cache import jit
from fastscratch.kernels.simd import combine_rows


@jit
def input_gradient(dL_dz, W, WT, dL_dx):
    """Overwrite dL_dx (n, n_in) with dL_dz @ W.T; W (n_in, n_out), dL_dz (n, n_out).

    WT (n_out, n_in) is scratch: W is transposed into it so that each row of
    dL_dx is a combination of rows of WT (``simd.combine_rows``), summed over
    the outputs in order.
    """
    n_in, n_out = W.shape
    for k in range(n_in):
        for j in range(n_out):
            WT[j, k] = W[k, j]
    for i in range(dL_dz.shape[0]):
        combine_rows(dL_dx, i, WT, None, dL_dz, None, i * n_out, (i + 1) * n_out)
