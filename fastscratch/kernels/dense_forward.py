"""Forward pass of a dense layer: ``y = f(x @ W + b)``, each row's inputs summed in blocks of ``simd.BLOCK``."""
from fastscratch._config import jit
from fastscratch.kernels.activations import bias_activate_row
from fastscratch.kernels.simd import BLOCK, add_rows, combine_rows
from fastscratch.kernels.structure import first_at_least


@jit
def block_end(indices, start, stop):
    """The first c in start .. stop - 1 whose input ``indices[c]`` is past the block of ``indices[start]`` (stop if
    none), indices ascending there; stop for an empty range."""
    if start >= stop:
        return stop
    return first_at_least(indices, start + 1, stop, (indices[start] // BLOCK + 1) * BLOCK)


@jit
def dense_forward(indptr, indices, values, begin, W, b, code, y):
    """Overwrite y (n, n_out) with f(x @ W + b) for the rows begin .. begin + n - 1 of x; W (n_in, n_out), b (n_out,).

    x is given by its CSR structure (``structure.nonzero_structure``, or
    ``structure.full_structure`` with values the dense array itself): only
    its listed entries are visited. Row by row, ``y[r] = sum_k x[i, k] *
    W[k]`` with k ascending, in blocks of ``simd.BLOCK`` inputs: each block's
    listed entries summed in vector registers from +0 (``simd.combine_rows``
    for the row's first block, ``simd.add_rows`` adding each later one). A
    zero input listed or skipped gives the same bits.
    """
    blocked = W.shape[0] > BLOCK
    for r in range(y.shape[0]):
        i = begin + r
        start, stop = indptr[i], indptr[i + 1]
        end = block_end(indices, start, stop) if blocked else stop
        combine_rows(y, r, W, indices, values, None, start, end)
        while end < stop:
            start, end = end, block_end(indices, end, stop)
            add_rows(y, r, W, indices, values, None, start, end)
        bias_activate_row(y, r, b, code)


@jit
def full_forward(x, W, b, code, y):
    """``dense_forward`` of a dense input x (n, n_in), every entry visited, its rows of W walked in order (no index
    array): the same bits. Overwrites y (n, n_out); W (n_in, n_out), b (n_out,)."""
    n_in = x.shape[1]
    values = x.reshape(x.size)
    for r in range(y.shape[0]):
        start = r * n_in
        combine_rows(y, r, W, None, values, None, start, start + min(n_in, BLOCK))
        for block in range(BLOCK, n_in, BLOCK):  # wider inputs: each later block's rows of W as a view from its first
            add_rows(y, r, W[block:], None, values, None, start + block, start + min(n_in, block + BLOCK))
        bias_activate_row(y, r, b, code)


@jit
def chunked_forward(indptr, indices, values, begin, ends, W, b, code, y):
    """``dense_forward`` of a batch of a sparse input, walked a block at a time for the whole batch: the same bits.

    ends (blocks, n) says where each row's entries of each block (of
    ``simd.BLOCK`` inputs) that holds an input of the batch's end, counted
    from ``indptr[begin]`` (``structure.batch_chunks``; none: the batch is
    all zeros). Per block, every row adds its entries' rows of W, summed in
    registers, to its sums in y (``simd.add_rows``), so a block's rows of W
    are read from memory once per batch and then from the L1 cache, where the
    batch's rows of y stay too. Overwrites y (n, n_out).
    """
    n = y.shape[0]
    first = indptr[begin]
    num_chunks = ends.shape[0]
    for r in range(n):  # the first block sets the sums (to 0 when there is none)
        start = indptr[begin + r]
        combine_rows(y, r, W, indices, values, None, start, first + ends[0, r] if num_chunks else start)
    for q in range(1, num_chunks):
        for r in range(n):
            start, stop = first + ends[q - 1, r], first + ends[q, r]
            if stop > start:
                add_rows(y, r, W, indices, values, None, start, stop)
    for r in range(n):
        bias_activate_row(y, r, b, code)
