"""Forward pass of a dense layer: ``y = f(x @ W + b)``, each row's inputs summed in blocks of ``simd.BLOCK``."""
from fastscratch.kernel_cache import jit
from fastscratch.kernels.activations import bias_activate_row
from fastscratch.kernels.simd import BLOCK, add_row_pair, add_rows, combine_row_pair, combine_rows
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
    array), two rows of x at a time (``simd.combine_row_pair``: each row of W read once for both): the same bits.
    Overwrites y (n, n_out); W (n_in, n_out), b (n_out,)."""
    n, n_in = x.shape
    values = x.reshape(x.size)
    for r in range(0, n - 1, 2):
        start = r * n_in
        combine_row_pair(y, r, W, values, start, start + min(n_in, BLOCK), n_in)
        for block in range(BLOCK, n_in, BLOCK):  # wider inputs: each later block's rows of W as a view from its first
            add_row_pair(y, r, W[block:], values, start + block, start + min(n_in, block + BLOCK), n_in)
    if n % 2:
        start = (n - 1) * n_in
        combine_rows(y, n - 1, W, None, values, None, start, start + min(n_in, BLOCK))
        for block in range(BLOCK, n_in, BLOCK):
            add_rows(y, n - 1, W[block:], None, values, None, start + block, start + min(n_in, block + BLOCK))
    for r in range(n):
        bias_activate_row(y, r, b, code)


@jit
def chunked_forward(first, rows, ends, indices, values, W, b, code, y):
    """``dense_forward`` of a batch of a sparse input, walked a block of inputs at a time for all its rows: same bits.

    The batch's entries come in the order of ``structure.BlockEntries``:
    rows and ends (segments,) are the batch's segments, indices and values
    the reordered entries, the batch's from ``first`` on. Each segment is
    one row's entries in one block of ``simd.BLOCK`` inputs, summed in
    registers and added to the row's sums in y (``simd.add_rows``): a
    block's rows of W are read from memory once per batch and then from the
    L1 cache, where the batch's rows of y stay too, and the entries stream
    in the order they are used. Overwrites y (n, n_out).
    """
    zero = y.dtype.type(0)
    for r in range(y.shape[0]):  # a sum from +0 plus a block's sum is that sum: the first block's bits
        for j in range(y.shape[1]):
            y[r, j] = zero
    start = first
    for segment in range(rows.shape[0]):
        stop = first + ends[segment]
        add_rows(y, rows[segment], W, indices, values, None, start, stop)
        start = stop
    for r in range(y.shape[0]):
        bias_activate_row(y, r, b, code)


@jit
def blocked_forward(x, W, b, code, y, group):
    """``full_forward`` of a dense input x (n, n_in), ``group`` rows at a time, each group walked a block of
    ``simd.BLOCK`` inputs at a time for all its rows: the same bits. Overwrites y (n, n_out); W (n_in, n_out), b
    (n_out,).

    A block's rows of W are read from memory once per group and then from the
    L1 cache for each pair of rows (``simd.add_row_pair``), where the group's
    sums in y stay too; y starts at +0, and a sum from +0 plus a block's sum is
    that block's sum, so the first block gives ``full_forward``'s bits.
    """
    n, n_in = x.shape
    values = x.reshape(x.size)
    zero = y.dtype.type(0)
    for first in range(0, n, group):
        last = min(n, first + group)
        for r in range(first, last):
            for j in range(y.shape[1]):
                y[r, j] = zero
        for block in range(0, n_in, BLOCK):
            stop = min(n_in, block + BLOCK)
            W_block = W[block:]
            for r in range(first, last - 1, 2):
                add_row_pair(y, r, W_block, values, r * n_in + block, r * n_in + stop, n_in)
            if (last - first) % 2:
                r = last - 1
                add_rows(y, r, W_block, None, values, None, r * n_in + block, r * n_in + stop)
        for r in range(first, last):
            bias_activate_row(y, r, b, code)
