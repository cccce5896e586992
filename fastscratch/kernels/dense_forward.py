"""Forward pass of a dense layer: ``y = f(x @ W + b)``."""
from fastscratch._config import jit
from fastscratch.kernels.activations import bias_activate_row
from fastscratch.kernels.simd import combine_rows


@jit
def dense_forward(indptr, indices, values, begin, W, b, code, y):
    """Overwrite y (n, n_out) with f(x @ W + b) for the rows begin .. begin + n - 1 of x; W (n_in, n_out), b (n_out,).

    x is given by its CSR structure (``structure.nonzero_structure``, or
    ``structure.full_structure`` with values the dense array itself): only
    its listed entries are visited. Row by row, ``y[r] = sum_k x[i, k] * W[k]``
    with k ascending, as a dense loop would, the sums kept in vector
    registers (``simd.combine_rows``).
    """
    for r in range(y.shape[0]):
        i = begin + r
        combine_rows(y, r, W, indices, values, None, indptr[i], indptr[i + 1])
        bias_activate_row(y, r, b, code)
