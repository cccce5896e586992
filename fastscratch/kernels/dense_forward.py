"""Forward pass of a dense layer: ``y = f(x @ W + b)``."""
from fastscratch.kernel_cache import jit
from fastscratch.kernels.activations import bias_activate_row
from fastscratch.kernels.simd import accumulate_rows, combine_rows


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


@jit
def chunked_forward(indptr, indices, values, begin, ends, W, b, code, y):
    """``dense_forward`` of a batch of a sparse input, walked chunk by chunk: the same bits.

    ends (chunks, n) says where each row's entries of each chunk of the
    batch's union of inputs end, counted from ``indptr[begin]``
    (``structure.batch_chunks``; no chunks: the batch is all zeros). Per
    chunk, every row adds its entries' rows of W to its sums in y
    (``simd.accumulate_rows``), so a chunk's rows of W are read from memory
    once per batch and then from the L1 cache, where the batch's rows of y
    stay too; each sum still runs over k ascending, term by term.
    Overwrites y (n, n_out).
    """
    n = y.shape[0]
    first = indptr[begin]
    num_chunks = ends.shape[0]
    for r in range(n):  # the first chunk sets the sums (to 0 when there is none)
        start = indptr[begin + r]
        combine_rows(y, r, W, indices, values, None, start, first + ends[0, r] if num_chunks else start)
    for q in range(1, num_chunks):
        for r in range(n):
            start, stop = first + ends[q - 1, r], first + ends[q, r]
            if stop > start:
                accumulate_rows(y, r, W, indices, values, None, start, stop)
    for r in range(n):
        bias_activate_row(y, r, b, code)
