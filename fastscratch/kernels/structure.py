"""The structure of a layer's input (CSR by rows, CSC by batch) that the forward and SGD kernels walk.

MNIST images are ~81% zeros. Skipping a zero input is exact (``0 * w`` adds
nothing to a sum when w is finite), so the kernels visit only the listed
entries, in ascending order, and give the same bits as a dense loop would.
The training set's row and per-batch column structures are computed once
and kept across ``train`` calls while X still equals them
(``structure_matches``, see ``fastscratch.inputs``); hidden layers, whose
inputs are almost never 0, list every entry (``full_structure``), or are
walked as the dense arrays they are (``dense_forward.full_forward``,
``sgd.full_gradient_step``).

Computing them is split by rows (or batches) over up to
``NUMBA_NUM_THREADS`` threads: each part writes its own entries, so the
result does not depend on the split. On MNIST with two threads the CSR
structures take ~100 ms instead of ~140 ms and the batch columns ~30 ms
instead of 50-80 ms; the parts need no synchronisation, unlike a split of
the training loop itself.
"""
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numba

from fastscratch import config
from fastscratch.kernel_cache import jit
from fastscratch.kernels.simd import BLOCK

#: Each layer's input by rows, as the forward kernels walk it: per-layer tuples of CSR ``indptrs`` and
#: ``indices`` (the first layer's from ``nonzero_structure``, the others' from ``full_structure``) and
#: the first layer's CSR ``values`` (the hidden layers' values are their input arrays themselves).
Structure = namedtuple("Structure", ["indptrs", "indices", "values"])
#: A column (CSC) structure for the SGD step (``sgd.gradient_step``): where each column starts, each
#: entry's row and where its value is.
Columns = namedtuple("Columns", ["starts", "rows", "positions"])
#: Every batch's first-layer input in the order its forward pass walks it (``batch_entries``): per block of
#: ``simd.BLOCK`` inputs that holds one of the batch's entries, ascending, per row with entries in the block, in
#: row order, those entries (a segment), so that the pass streams them. Batch b's segments are ``starts[b] ..
#: starts[b + 1] - 1``; segment s is row ``rows[s]``'s entries ``first + ends[s - 1] .. first + ends[s] - 1``
#: (from ``first`` for the batch's first segment) of ``indices`` and ``values``, where ``first = indptr[b *
#: batch_size]``: the batch's entries fill the same range as in the CSR structure, reordered.
BlockEntries = namedtuple("BlockEntries", ["starts", "rows", "ends", "indices", "values"])
#: What the compiled epoch keeps of each batch's first-layer input: ``Columns`` for the SGD step and
#: ``BlockEntries`` for the forward pass (``batch_structure``).
BatchStructure = namedtuple("BatchStructure", ["columns", "entries"])


def in_parts(run, n, min_size, threads=None):
    """Call ``run(start, stop)`` over consecutive parts of ``range(n)``, concurrently.

    ``threads`` parts (default ``NUMBA_NUM_THREADS``), fewer if a part would
    hold fewer than ``min_size`` items; ``run`` must release the GIL (Numba's
    ``nogil``) for the parts to overlap. The first part runs in the calling
    thread; an exception in any part is raised here once all are done.
    """
    parts = max(1, min(threads or numba.config.NUMBA_NUM_THREADS, n // max(min_size, 1)))
    bounds = [n * p // parts for p in range(parts + 1)]
    if parts == 1:
        run(0, n)
        return
    with ThreadPoolExecutor(parts - 1) as pool:
        futures = [pool.submit(run, start, stop) for start, stop in zip(bounds[1:-1], bounds[2:])]
        run(bounds[0], bounds[1])
        for future in futures:
            future.result()


@jit
def count_nonzero_rows(X, counts, like):
    """Overwrite counts (N,) with the number of nonzero entries in each row of X (N, n) converted to the dtype of
    ``like`` (an array; only its dtype is read)."""
    as_values = like.dtype.type
    zero = as_values(0)
    for i in range(X.shape[0]):
        c = 0
        for k in range(X.shape[1]):
            c += as_values(X[i, k]) != zero
        counts[i] = c


@jit
def fill_structure(X, indptr, indices, values):
    """Write the columns and values of X's nonzero entries (X (N, n), converted to the values' dtype), row i from
    indptr[i] on, ascending.

    indptr (N + 1,) is given (the counts' running sum, possibly not starting
    at 0: X may be a block of rows); indices and values are the whole
    structure's arrays. The values are stored, not read from X when needed:
    a forward pass then streams 10 bytes per nonzero instead of the
    scattered cache lines of X's rows, which made it memory bound.
    """
    as_values = values.dtype.type
    zero = as_values(0)
    for i in range(X.shape[0]):
        c = indptr[i]
        for k in range(X.shape[1]):
            value = as_values(X[i, k])
            if value != zero:
                indices[c] = k
                values[c] = value
                c += 1


@jit
def lists_exactly(X, indptr, indices, values):
    """Whether the CSR structure (``indptr`` for X's rows, ``indices``, ``values``) of nonzero finite ``values``
    at increasing ``indices`` within each row lists exactly the nonzero entries of X (N, n) converted to the
    values' dtype, with their values.

    Per row: count X's nonzero entries (a branch-free pass that vectorises), then compare each listed
    entry with X. Distinct listed positions holding their nonzero values, as many as X has, are all of
    X's nonzero entries. Stops at the first difference. A NaN or inf in X never matches a finite list.
    X of another float dtype is read as the values' dtype entry by entry (rounded to nearest, as NumPy's
    ``astype``; too large becomes inf, which matches nothing): one pass compares and converts, no copy.
    """
    as_values = values.dtype.type
    zero = as_values(0)
    for i in range(X.shape[0]):
        count = 0
        for k in range(X.shape[1]):
            count += as_values(X[i, k]) != zero
        start, end = indptr[i], indptr[i + 1]
        if count != end - start:
            return False
        for c in range(start, end):
            if as_values(X[i, indices[c]]) != values[c]:
                return False
    return True


#: The dtypes of X and of the values that ``structure_matches`` compares, either with the other.
COMPARED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def structure_matches(X, indptr, indices, values, threads=None):
    """Whether ``nonzero_structure(X.astype(values.dtype))`` would give (indptr, indices, values), a structure
    it gave for an array of X's shape; X may be float32 or float64 either way, read as the values' dtype
    without a copy; X of any other dtype does not match (``threads``: see ``in_parts``)."""
    if (indptr.shape[0] != X.shape[0] + 1 or X.dtype not in COMPARED_DTYPES or values.dtype not in COMPARED_DTYPES
            or indptr[-1] != indices.shape[0]):
        return False
    parts = {}

    def run(start, stop):
        parts[start] = lists_exactly(X[start:stop], indptr[start:stop + 1], indices, values)
    in_parts(run, X.shape[0], config.MIN_ROWS_PER_THREAD, threads)
    return all(parts.values())


def samples_match(X, indptr, indices, values, rows):
    """Whether ``rows`` of X's rows at its start, its middle and its end match the CSR structure (indptr, indices,
    values) of an array of X's shape, in this thread (``structure_matches``): a likely, not a proven, description
    of X, found at the cost of a few rows."""
    n = X.shape[0]
    for start in sorted({0, max(0, n // 2 - rows // 2), max(0, n - rows)}):
        stop = min(n, start + rows)
        first, last = indptr[start], indptr[stop]
        if not structure_matches(X[start:stop], indptr[start:stop + 1] - first, indices[first:last],
                                 values[first:last], threads=1):
            return False
    return True


def nonzero_fraction(X, dtype=None):
    """The fraction of X's entries that are nonzero (converted to ``dtype``, default X's), in about
    ``config.DENSITY_SAMPLE_ROWS`` of its rows taken evenly (``routing.past_crossover``)."""
    sample = X[::max(1, len(X) // config.DENSITY_SAMPLE_ROWS)]
    if dtype is not None and sample.dtype != dtype:
        with np.errstate(over="ignore"):
            sample = sample.astype(dtype)
    return np.count_nonzero(sample) / max(sample.size, 1)


def index_dtype(width):
    """The dtype for indices below ``width``: 16 bits when they fit, to cut memory and its traffic."""
    return np.dtype(np.int16 if width <= 2 ** 15 else np.int64)


def nonzero_structure(X, indices_dtype=None, dtype=None, threads=None):
    """Return ``(indptr, indices, values)``, the CSR structure of the 2-D array X converted to ``dtype`` (default
    X's; float32 or float64 either way, converted entry by entry, no copy of X) (``threads``: see ``in_parts``)."""
    values_dtype = np.dtype(dtype or X.dtype)
    like = np.empty(0, dtype=values_dtype)
    indptr = np.empty(X.shape[0] + 1, dtype=np.int64)
    indptr[0] = 0
    counts = indptr[1:]
    in_parts(lambda start, stop: count_nonzero_rows(X[start:stop], counts[start:stop], like), X.shape[0],
             config.MIN_ROWS_PER_THREAD, threads)
    np.cumsum(counts, out=counts)
    indices = np.empty(indptr[-1], dtype=indices_dtype or index_dtype(X.shape[1]))
    values = np.empty(indptr[-1], dtype=values_dtype)
    in_parts(lambda start, stop: fill_structure(X[start:stop], indptr[start:stop + 1], indices, values),
             X.shape[0], config.MIN_ROWS_PER_THREAD, threads)
    return indptr, indices, values


def row_dtype(rows):
    """The dtype for row offsets within ``rows`` rows: 8 bits up to 128 rows (the seed's batches), else 16 or 64."""
    return np.dtype(np.int8) if rows <= 2 ** 7 else index_dtype(rows)


@jit
def fill_batch_columns(indptr, entries, batch_size, starts, rows, positions):
    """The column structure (CSC) of every whole batch of a first-layer input, for its SGD step.

    The batches are the same every epoch, so this runs once per data set
    and batch size (``kept_data.batches_of``). indptr is the input's CSR
    indptr and entries its ``BlockEntries`` (of a block of whole batches:
    the entries of rows and positions stay where the whole structure has
    them). For batch b, rows ``begin = b * batch_size`` on: starts[b]
    (n_in + 1,) says where each column's entries start, counted from
    ``first = indptr[begin]``; rows and positions (nnz,), from first on, hold
    each entry's row offset from begin (ascending within a column: the
    entries' segments go row by row within each block, and a column lies in
    one block) and where its value is in ``entries.values``, counted from
    first. A counting sort: two passes over each batch's entries.

    One kernel for all batches, no per-batch callee: a nested dispatcher
    would be compiled on its own and again inside this one, ~0.35 s of a
    cold start.
    """
    n_in = starts.shape[1] - 1
    indices, segment_rows, ends = entries.indices, entries.rows, entries.ends
    for batch in range(starts.shape[0]):
        begin = batch * batch_size
        first, last = indptr[begin], indptr[begin + batch_size]
        start = starts[batch]
        for k in range(n_in + 1):
            start[k] = 0
        for c in range(first, last):
            start[indices[c] + 1] += 1
        for k in range(n_in):
            start[k + 1] += start[k]
        # Fill each column at its cursor, kept in start[k], which ends at the next column's start...
        previous = first
        for segment in range(entries.starts[batch], entries.starts[batch + 1]):
            r, stop = segment_rows[segment], first + ends[segment]
            for c in range(previous, stop):
                k = indices[c]
                at = first + start[k]
                rows[at] = r
                positions[at] = c - first
                start[k] += 1
            previous = stop
        # ...so shifting by one restores the starts.
        for k in range(n_in, 0, -1):
            start[k] = start[k - 1]
        start[0] = 0


def batch_columns(indptr, entries, n_in, batch_size, offsets_dtype=None, threads=None):
    """Return ``Columns(starts, rows, positions)`` of ``fill_batch_columns`` for an input of width n_in, given by its
    CSR indptr and its ``batch_entries``.

    Every offset is relative to its batch, so the narrowest dtypes do: for
    MNIST in batches of 30, 16-bit starts and positions and 8-bit rows, 30 MB
    instead of 49 MB with 64-bit starts and 16-bit rows. ``offsets_dtype``:
    starts and positions (default ``index_dtype(batch_size * n_in + 1)``).
    ``threads``: see ``in_parts``.
    """
    num_batches = (indptr.shape[0] - 1) // batch_size
    nnz = indptr[num_batches * batch_size]
    offsets_dtype = offsets_dtype or index_dtype(batch_size * n_in + 1)
    starts = np.empty((num_batches, n_in + 1), dtype=offsets_dtype)
    rows = np.empty(nnz, dtype=row_dtype(batch_size))
    positions = np.empty(nnz, dtype=offsets_dtype)

    def run(start, stop):
        part = entries._replace(starts=entries.starts[start:stop + 1])
        fill_batch_columns(indptr[start * batch_size:stop * batch_size + 1], part, batch_size, starts[start:stop],
                           rows, positions)
    in_parts(run, num_batches, -(-config.MIN_ROWS_PER_THREAD // batch_size), threads)
    return Columns(starts, rows, positions)


@jit
def first_at_least(indices, lo, hi, value):
    """The first c in lo .. hi - 1 with ``indices[c] >= value`` (hi if none), indices ascending there."""
    while lo < hi:
        middle = (lo + hi) // 2
        if indices[middle] < value:
            lo = middle + 1
        else:
            hi = middle
    return lo


@jit
def count_segments(indptr, indices, batch_size, block, counts):
    """Overwrite counts (num_batches,) with the number of segments of each whole batch of a CSR structure: its rows'
    runs of entries within one block of ``block`` consecutive inputs."""
    for batch in range(counts.shape[0]):
        segments = 0
        for i in range(batch * batch_size, (batch + 1) * batch_size):
            last = -1
            for c in range(indptr[i], indptr[i + 1]):
                if indices[c] // block != last:
                    last = indices[c] // block
                    segments += 1
        counts[batch] = segments


@jit
def fill_batch_entries(indptr, indices, values, n_in, batch_size, block, starts, cursors, rows, ends, block_indices,
                       block_values):
    """Write each whole batch's entries of a CSR structure of width n_in in the order of ``BlockEntries``: block by
    block, row by row within a block, ascending within a row.

    indptr may be that of a block of whole batches (the entries stay where
    the whole structure has them); batch b owns segments ``starts[b] ..
    starts[b + 1] - 1`` (``count_segments``' running sum; rows and ends are
    this block's part). cursors (batch_size,) is scratch: where each row has
    got to. Overwrites rows, ends and the batches' range of block_indices
    and block_values.
    """
    segment = 0
    for batch in range(starts.shape[0] - 1):
        begin = batch * batch_size
        first, last = indptr[begin], indptr[begin + batch_size]
        for r in range(batch_size):
            cursors[r] = indptr[begin + r]
        at = first
        while at < last:
            # The next block that holds an entry: the smallest block among the rows' next entries.
            lowest = n_in
            for r in range(batch_size):
                if cursors[r] < indptr[begin + r + 1] and indices[cursors[r]] < lowest:
                    lowest = indices[cursors[r]]
            bound = (lowest // block + 1) * block
            for r in range(batch_size):
                c, stop = cursors[r], indptr[begin + r + 1]
                while c < stop and indices[c] < bound:
                    block_indices[at] = indices[c]
                    block_values[at] = values[c]
                    at += 1
                    c += 1
                if c > cursors[r]:
                    rows[segment] = r
                    ends[segment] = at - first
                    segment += 1
                    cursors[r] = c


def batch_entries(indptr, indices, values, n_in, batch_size, offsets_dtype=None, threads=None):
    """Return the ``BlockEntries`` of every whole batch of ``batch_size`` rows of a CSR structure of width n_in (blocks
    of ``simd.BLOCK`` inputs), for forward passes a batch at a time (``dense_forward.chunked_forward``).

    ends has ``offsets_dtype`` (default ``index_dtype(batch_size * n_in + 1)``, as ``batch_columns``), rows
    ``row_dtype(batch_size)``; the reordered indices and values are as large as the CSR structure's (for MNIST's
    training set about 90 MB in float64, 54 MB in float32), the segments about 2 MB. ``threads``: see ``in_parts``.
    """
    num_batches = (indptr.shape[0] - 1) // batch_size
    starts = np.zeros(num_batches + 1, dtype=np.int64)
    in_parts(lambda start, stop: count_segments(indptr[start * batch_size:stop * batch_size + 1], indices, batch_size,
                                                BLOCK, starts[1 + start:1 + stop]),
             num_batches, -(-config.MIN_ROWS_PER_THREAD // batch_size), threads)
    np.cumsum(starts, out=starts)
    rows = np.empty(starts[-1], dtype=row_dtype(batch_size))
    ends = np.empty(starts[-1], dtype=offsets_dtype or index_dtype(batch_size * n_in + 1))
    nnz = indptr[num_batches * batch_size]  # the whole batches' entries
    block_indices, block_values = np.empty(nnz, dtype=indices.dtype), np.empty(nnz, dtype=values.dtype)
    in_parts(lambda start, stop: fill_batch_entries(indptr[start * batch_size:stop * batch_size + 1], indices, values,
                                                    n_in, batch_size, BLOCK, starts[start:stop + 1],
                                                    np.empty(batch_size, np.int64), rows[starts[start]:starts[stop]],
                                                    ends[starts[start]:starts[stop]], block_indices, block_values),
             num_batches, -(-config.MIN_ROWS_PER_THREAD // batch_size), threads)
    return BlockEntries(starts, rows, ends, block_indices, block_values)


def batch_structure(indptr, indices, values, n_in, batch_size, offsets_dtype=None, threads=None):
    """The first layer's ``BatchStructure`` of every whole batch of a CSR structure of width n_in: its
    ``batch_entries`` and ``batch_columns`` (``offsets_dtype``, ``threads``: see ``batch_columns``)."""
    entries = batch_entries(indptr, indices, values, n_in, batch_size, offsets_dtype, threads)
    return BatchStructure(batch_columns(indptr, entries, n_in, batch_size, offsets_dtype, threads), entries)


def full_structure(rows, width, indices_dtype):
    """``(indptr, indices)`` of a dense (rows, width) array, every entry listed; its values are the array itself.

    Hidden layers see sigmoid or tanh outputs, which are almost never 0, so
    listing every entry once beats finding the nonzero ones every batch; an
    exact zero listed anyway adds exactly nothing.
    """
    indptr = np.arange(0, (rows + 1) * width, width, dtype=np.int64)
    return indptr, np.tile(np.arange(width, dtype=indices_dtype), rows)
