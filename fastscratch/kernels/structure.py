"""The structure of a layer's input (CSR by rows, CSC by batch) that the forward and SGD kernels walk.

MNIST images are ~81% zeros. Skipping a zero input is exact (``0 * w`` adds
nothing to a sum when w is finite), so the kernels visit only the listed
entries, in ascending order, and give the same bits as a dense loop would.
The training set's row and per-batch column structures are computed once
per ``train`` call; hidden layers, whose inputs are almost never 0, list
every entry (``full_structure``, ``full_columns``).
"""
import numpy as np

from fastscratch._config import jit


@jit
def fill_structure(X, indptr, indices, values):
    """Write the CSR structure of X (N, n): indptr (N + 1,), indices and values (nnz,), columns ascending.

    The values are stored, not read from X when needed: a forward pass then
    streams 10 bytes per nonzero instead of the scattered cache lines of X's
    rows, which made it memory bound.
    """
    zero = X.dtype.type(0)
    c = 0
    indptr[0] = 0
    for i in range(X.shape[0]):
        for k in range(X.shape[1]):
            if X[i, k] != zero:
                indices[c] = k
                values[c] = X[i, k]
                c += 1
        indptr[i + 1] = c


def index_dtype(width):
    """The dtype for indices below ``width``: 16 bits when they fit, to cut memory and its traffic."""
    return np.dtype(np.int16 if width <= 2 ** 15 else np.int64)


def nonzero_structure(X, indices_dtype=None):
    """Return ``(indptr, indices, values)``, the CSR structure of the 2-D array X."""
    nnz = np.count_nonzero(X)
    indptr = np.empty(X.shape[0] + 1, dtype=np.int64)
    indices = np.empty(nnz, dtype=indices_dtype or index_dtype(X.shape[1]))
    values = np.empty(nnz, dtype=X.dtype)
    fill_structure(X, indptr, indices, values)
    return indptr, indices, values


def row_dtype(rows):
    """The dtype for row offsets within ``rows`` rows: 8 bits for every batch size the kernels train (<= 127)."""
    return np.dtype(np.int8) if rows <= 2 ** 7 else index_dtype(rows)


@jit
def fill_batch_columns(indptr, indices, batch_size, starts, rows, positions):
    """The column structure (CSC) of every whole batch of a CSR structure, for the first layer's SGD step.

    The batches are the same every epoch, so this runs once per ``train``
    call. For batch b, rows ``begin = b * batch_size`` on: starts[b]
    (n_in + 1,) says where each column's entries start, counted from
    ``first = indptr[begin]``; rows and positions (nnz,), from first on, hold
    each entry's row offset from begin (ascending within a column) and where
    its value is in the CSR values, counted from first. A counting sort: two
    passes over each batch's entries.

    One kernel for all batches, no per-batch callee: a nested dispatcher
    would be compiled on its own and again inside this one, ~0.35 s of a
    cold start.
    """
    n_in = starts.shape[1] - 1
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
        for i in range(begin, begin + batch_size):
            for c in range(indptr[i], indptr[i + 1]):
                k = indices[c]
                at = first + start[k]
                rows[at] = i - begin
                positions[at] = c - first
                start[k] += 1
        # ...so shifting by one restores the starts.
        for k in range(n_in, 0, -1):
            start[k] = start[k - 1]
        start[0] = 0


def batch_columns(indptr, indices, n_in, batch_size, offsets_dtype=None):
    """Return ``(starts, rows, positions)`` of ``fill_batch_columns`` for a CSR structure of width n_in.

    Every offset is relative to its batch, so the narrowest dtypes do: for
    MNIST in batches of 30, 16-bit starts and positions and 8-bit rows, 30 MB
    instead of 49 MB with 64-bit starts and 16-bit rows. ``offsets_dtype``
    (starts and positions; default ``index_dtype(batch_size * n_in + 1)``)
    lets the hidden layers' ``full_columns`` share it, so that the SGD step
    compiles once for all layers.
    """
    num_batches = (indptr.shape[0] - 1) // batch_size
    nnz = indptr[num_batches * batch_size]
    offsets_dtype = offsets_dtype or index_dtype(batch_size * n_in + 1)
    starts = np.empty((num_batches, n_in + 1), dtype=offsets_dtype)
    rows = np.empty(nnz, dtype=row_dtype(batch_size))
    positions = np.empty(nnz, dtype=offsets_dtype)
    fill_batch_columns(indptr, indices, batch_size, starts, rows, positions)
    return starts, rows, positions


def full_structure(rows, width, indices_dtype):
    """``(indptr, indices)`` of a dense (rows, width) array, every entry listed; its values are the array itself.

    Hidden layers see sigmoid or tanh outputs, which are almost never 0, so
    listing every entry once beats finding the nonzero ones every batch; an
    exact zero listed anyway adds exactly nothing.
    """
    indptr = np.arange(0, (rows + 1) * width, width, dtype=np.int64)
    return indptr, np.tile(np.arange(width, dtype=indices_dtype), rows)


def full_columns(rows, width, offsets_dtype):
    """The column structure of a dense (rows, width) array, every entry listed; positions index it flat.

    Starts and positions have ``offsets_dtype``, which must hold ``rows * width``.
    """
    col_start = np.arange(0, (width + 1) * rows, rows, dtype=offsets_dtype)
    col_rows = np.tile(np.arange(rows, dtype=row_dtype(rows)), width)
    positions = (np.arange(rows, dtype=offsets_dtype)[np.newaxis, :] * width
                 + np.arange(width, dtype=offsets_dtype)[:, np.newaxis]).reshape(-1)
    return col_start, col_rows, positions
