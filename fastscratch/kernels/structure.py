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
def fill_structure(X, indptr, indices):
    """Write the CSR structure of X (N, n) into indptr (N + 1,) and indices (nnz,), columns ascending."""
    zero = X.dtype.type(0)
    c = 0
    indptr[0] = 0
    for i in range(X.shape[0]):
        for k in range(X.shape[1]):
            if X[i, k] != zero:
                indices[c] = k
                c += 1
        indptr[i + 1] = c


def index_dtype(width):
    """The dtype for indices below ``width``: 16 bits when they fit, to cut memory and its traffic."""
    return np.dtype(np.int16 if width <= 2 ** 15 else np.int64)


def nonzero_structure(X, indices_dtype=None):
    """Return ``(indptr, indices)``, the CSR structure of the 2-D array X."""
    indptr = np.empty(X.shape[0] + 1, dtype=np.int64)
    indices = np.empty(np.count_nonzero(X), dtype=indices_dtype or index_dtype(X.shape[1]))
    fill_structure(X, indptr, indices)
    return indptr, indices


@jit
def fill_columns(X, indptr, indices, begin, rows, columns):
    """Write the column structure (CSC) of X[begin:begin + rows], given X's CSR structure.

    columns = (col_start (n_in + 1,), col_rows, col_values): where each
    column's entries start; the row offsets (from ``begin``) holding a
    nonzero in that column, ascending; and those values, gathered here from
    X's rows (in order, so cache-friendly) for the column-wise SGD step.
    A counting sort: two passes over the rows' entries.
    """
    col_start, col_rows, col_values = columns
    n_in = col_start.shape[0] - 1
    for k in range(n_in + 1):
        col_start[k] = 0
    for i in range(begin, begin + rows):
        for c in range(indptr[i], indptr[i + 1]):
            col_start[indices[c] + 1] += 1
    for k in range(n_in):
        col_start[k + 1] += col_start[k]
    # Fill each column at its cursor, kept in col_start[k], which ends at the next column's start...
    for i in range(begin, begin + rows):
        for c in range(indptr[i], indptr[i + 1]):
            k = indices[c]
            col_rows[col_start[k]] = i - begin
            col_values[col_start[k]] = X[i, k]
            col_start[k] += 1
    # ...so shifting by one restores the starts.
    for k in range(n_in, 0, -1):
        col_start[k] = col_start[k - 1]
    col_start[0] = 0


@jit
def fill_batch_columns(X, indptr, indices, batch_size, starts, rows, values):
    """The column structure of every whole batch of X, for the first layer's SGD step.

    The batches are the same every epoch, so this runs once per ``train``
    call. starts (num_batches, n_in + 1): ``fill_columns``'s col_start per
    batch; rows, values (nnz,): each batch's col_rows and col_values, stored
    from ``indptr[batch * batch_size]`` on.
    """
    for batch in range(starts.shape[0]):
        begin = batch * batch_size
        first, last = indptr[begin], indptr[begin + batch_size]
        fill_columns(X, indptr, indices, begin, batch_size,
                     (starts[batch], rows[first:last], values[first:last]))


def batch_columns(X, indptr, indices, batch_size):
    """Return ``(starts, rows, values)`` of ``fill_batch_columns`` for X and its CSR structure."""
    num_batches = X.shape[0] // batch_size
    nnz = indptr[num_batches * batch_size]
    starts = np.empty((num_batches, X.shape[1] + 1), dtype=np.int64)
    rows, values = np.empty(nnz, dtype=index_dtype(batch_size)), np.empty(nnz, dtype=X.dtype)
    fill_batch_columns(X, indptr, indices, batch_size, starts, rows, values)
    return starts, rows, values


def full_structure(rows, width, indices_dtype):
    """The CSR structure of a dense (rows, width) array: every entry listed.

    Hidden layers see sigmoid or tanh outputs, which are almost never 0, so
    listing every entry once beats finding the nonzero ones every batch; an
    exact zero listed anyway adds exactly nothing.
    """
    indptr = np.arange(0, (rows + 1) * width, width, dtype=np.int64)
    return indptr, np.tile(np.arange(width, dtype=indices_dtype), rows)


def full_columns(rows, width, dtype):
    """Column buffers for a dense (rows, width) array, with every entry listed; see ``fill_column_values``."""
    col_start = np.arange(0, (width + 1) * rows, rows, dtype=np.int64)
    return col_start, np.tile(np.arange(rows, dtype=index_dtype(rows)), width), np.empty(rows * width, dtype=dtype)


@jit
def fill_column_values(x, columns):
    """Write x (rows, width) column by column into the values of ``full_columns`` buffers."""
    col_values = columns[2]
    rows, width = x.shape
    for k in range(width):
        for r in range(rows):
            col_values[k * rows + r] = x[r, k]
