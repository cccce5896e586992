"""The input structures the kernels walk: exact, and the same whatever the split over threads."""
import threading

import numba
import numpy as np
import pytest

from fastscratch import config
from fastscratch.kernels import structure
from fastscratch.kernels.structure import batch_columns, batch_entries, batch_structure, in_parts, nonzero_structure
from oracle import sparse_like

THREADS = [1, 2, 3, 7]


@pytest.fixture
def split_small(monkeypatch):
    """Split even tiny inputs, so that every thread count below is exercised."""
    monkeypatch.setattr(config, "MIN_ROWS_PER_THREAD", 1)


def csr_oracle(X):
    rows, cols = np.nonzero(X)
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(X)))]), cols, X[rows, cols]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(23, 7), (5, 784), (2, 3), (1, 1), (0, 4)])
def test_nonzero_structure_is_the_csr_of_x(shape, dtype, threads, rng, split_small):
    X = sparse_like(rng, shape, dtype, zero_fraction=0.6)
    if len(X) > 2:
        X[1] = 0  # an empty row, and one of negative values
        X[2] = -X[2]
    indptr, indices, values = nonzero_structure(X, threads=threads)
    expected = csr_oracle(X)
    for got, want in zip((indptr, indices, values), expected):
        np.testing.assert_array_equal(got, want)
    assert values.dtype == dtype and indices.dtype == np.int16


@pytest.mark.parametrize("threads", THREADS)
def test_nonzero_structure_of_all_zeros_is_empty(threads, split_small):
    indptr, indices, values = nonzero_structure(np.zeros((9, 4)), threads=threads)
    np.testing.assert_array_equal(indptr, np.zeros(10))
    assert indices.size == values.size == 0


def test_negative_zero_is_a_zero():
    indptr, indices, values = nonzero_structure(np.array([[-0.0, 1.0, 0.0]]))
    np.testing.assert_array_equal(indices, [1])


def entries_oracle(X, batch_size, block):
    """Per whole batch, its segments as (row, [(input, value), ...]): block by block (those holding an entry of the
    batch), row by row within a block, inputs ascending."""
    batches = []
    for batch in range(len(X) // batch_size):
        rows = X[batch * batch_size:(batch + 1) * batch_size]
        segments = []
        for q in np.unique(np.flatnonzero(rows.any(axis=0)) // block):
            for r in range(batch_size):
                inputs = [k for k in np.flatnonzero(rows[r]) if k // block == q]
                if inputs:
                    segments.append((r, [(k, rows[r, k]) for k in inputs]))
        batches.append(segments)
    return batches


def segments_of(entries, indptr, batch, batch_size):
    """The batch's segments of a ``BlockEntries`` as ``entries_oracle`` lists them."""
    first = indptr[batch * batch_size]
    got, start = [], first
    for s in range(entries.starts[batch], entries.starts[batch + 1]):
        stop = first + entries.ends[s]
        got.append((entries.rows[s], list(zip(entries.indices[start:stop], entries.values[start:stop]))))
        start = stop
    assert start == indptr[(batch + 1) * batch_size]  # every entry of the batch, in the batch's range
    return got


def example(rng):
    X = sparse_like(rng, (23, 7), np.float32, zero_fraction=0.7)
    X[5:10] = 0  # a batch without a nonzero input: no segments
    X[10:15] = 0
    X[11, 3] = X[13, 6] = 1.0  # a union of two inputs
    X[15:20, 2:5] = 0  # a union with a gap
    X[6] = 0
    return X


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("block", [1, 2, 3, 7, 100])
def test_batch_entries_list_each_batch_block_by_block_then_row_by_row(block, threads, rng, split_small, monkeypatch):
    monkeypatch.setattr(structure, "BLOCK", block)
    X = example(rng)
    indptr, indices, values = nonzero_structure(X)
    entries = batch_entries(indptr, indices, values, 7, 5, threads=threads)
    assert entries.starts.shape == (5,)  # the last 3 rows make no whole batch
    assert (entries.rows.dtype, entries.ends.dtype) == (np.int8, np.int16)
    expected = entries_oracle(X, 5, block)
    assert [len(e) for e in expected][1:3] == [0, 2]  # two rows, one entry each
    for batch in range(4):
        assert segments_of(entries, indptr, batch, 5) == expected[batch], batch


@pytest.mark.parametrize("threads", THREADS)
def test_batch_columns_are_each_batchs_transposed_structure(threads, rng, split_small):
    """Each column's entries in row order, pointing at their values in the batch's reordered entries."""
    X = example(rng)
    indptr, indices, values = nonzero_structure(X)
    entries = batch_entries(indptr, indices, values, 7, 5)
    starts, rows, positions = batch_columns(indptr, entries, 7, 5, threads=threads)
    assert starts.shape == (4, 8)  # the last 3 rows make no whole batch
    assert (starts.dtype, rows.dtype, positions.dtype) == (np.int16, np.int8, np.int16)  # offsets within a batch
    for batch in range(4):
        first, block = indptr[5 * batch], X[5 * batch:5 * batch + 5]
        assert starts[batch][0] == 0 and starts[batch][7] == np.count_nonzero(block)
        for k in range(7):
            column = slice(first + starts[batch][k], first + starts[batch][k + 1])
            np.testing.assert_array_equal(rows[column], np.flatnonzero(block[:, k]))
            np.testing.assert_array_equal(entries.values[first + positions[column]], block[:, k][block[:, k] != 0])
            np.testing.assert_array_equal(entries.indices[first + positions[column]], k)


def test_batch_structure_holds_both_structures(rng):
    X = sparse_like(rng, (40, 9), np.float64)
    indptr, indices, values = nonzero_structure(X)
    both = batch_structure(indptr, indices, values, 9, 10, np.int64)
    entries = batch_entries(indptr, indices, values, 9, 10, np.int64)
    for got, want in zip(both.entries, entries):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(both.columns, batch_columns(indptr, entries, 9, 10, np.int64)):
        np.testing.assert_array_equal(got, want)
    assert both.entries.ends.dtype == both.columns.positions.dtype == np.int64


def test_structures_of_mnist_do_not_depend_on_the_split(mnist_prepared):
    X = mnist_prepared[0][:12000]
    one = nonzero_structure(X, threads=1)
    entries = batch_entries(*one, 784, 30, threads=1)
    for batch, expected in enumerate(entries_oracle(X[:300], 30, structure.BLOCK)):
        assert segments_of(entries, one[0], batch, 30) == expected
    columns = batch_columns(one[0], entries, 784, 30, threads=1)
    for threads in (2, 3):
        for got, want in zip(nonzero_structure(X, threads=threads), one):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(batch_entries(*one, 784, 30, threads=threads), entries):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(batch_columns(one[0], entries, 784, 30, threads=threads), columns):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n, min_size, threads, parts", [
    (10, 1, 3, 3), (10, 4, 3, 2), (3, 1, 8, 3), (5, 10, 4, 1), (0, 1, 2, 1)])
def test_in_parts_covers_every_item_once_in_consecutive_parts(n, min_size, threads, parts):
    calls = []
    lock = threading.Lock()
    all_started = threading.Barrier(parts, timeout=30)  # broken unless the parts run at the same time

    def run(start, stop):
        with lock:
            calls.append((start, stop, threading.get_ident()))
        all_started.wait()

    in_parts(run, n, min_size, threads)
    calls.sort()
    assert len(calls) == parts
    assert [c[0] for c in calls] == [0] + [c[1] for c in calls[:-1]] and calls[-1][1] == n
    assert max(stop - start for start, stop, _ in calls) - min(stop - start for start, stop, _ in calls) <= 1
    assert calls[0][2] == threading.get_ident()  # the first part runs in the caller


def test_in_parts_raises_what_a_part_raised():
    def run(start, stop):
        if start > 0:
            raise ValueError(f"part {start}")

    with pytest.raises(ValueError, match="part 5"):
        in_parts(run, 10, 1, 2)


def test_in_parts_defaults_to_numbas_thread_count(monkeypatch):
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 3)
    calls = []
    in_parts(lambda start, stop: calls.append(start), 9, 1)
    assert sorted(calls) == [0, 3, 6]


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_structure_matches_only_the_array_it_was_built_from(dtype, threads, rng, split_small):
    X = sparse_like(rng, (40, 9), dtype, zero_fraction=0.6)
    X[5] = 0
    indptr, indices, values = nonzero_structure(X)
    assert structure.structure_matches(X, indptr, indices, values, threads=threads)
    assert structure.structure_matches(X.copy(), indptr, indices, values, threads=threads)
    nonzero, zero = np.argwhere(X != 0), np.argwhere(X == 0)
    changes = {"value": (tuple(nonzero[len(nonzero) // 2]), 0.5), "zeroed": (tuple(nonzero[-1]), 0.0),
               "filled": (tuple(zero[len(zero) // 3]), 0.25), "empty row filled": ((5, 8), 1.0),
               "last entry": ((39, 8), X[39, 8] + 1.0)}
    for name, (at, value) in changes.items():
        changed = X.copy()
        changed[at] = value
        assert not structure.structure_matches(changed, indptr, indices, values, threads=threads), name
    assert not structure.structure_matches(X[:-1], indptr, indices, values, threads=threads)
    assert not structure.structure_matches(X.astype(np.float16), indptr, indices, values, threads=threads)


@pytest.mark.parametrize("threads", THREADS)
def test_structure_matches_reads_float64_data_as_the_float32_it_narrows_to(threads, rng, split_small):
    """One pass compares and narrows: X in float64 matches the structure of X.astype(float32) exactly when each
    value narrows to the listed float32 (no copy of X); float32 data widens to a float64 structure's values."""
    X = sparse_like(rng, (40, 9), np.float64, zero_fraction=0.6)
    narrow = X.astype(np.float32)
    indptr, indices, values = nonzero_structure(narrow)
    assert structure.structure_matches(X, indptr, indices, values, threads=threads)
    at, zero_at = tuple(np.argwhere(X != 0)[3]), tuple(np.argwhere(X == 0)[3])
    same = {"next float64": (at, np.nextafter(X[at], 2.0)), "below float32's subnormals": (zero_at, 1e-50)}
    other = {"next float32": (at, np.float64(np.nextafter(narrow[at], np.float32(2.0)))),
             "too large for float32": (at, 1e300), "nan": (at, np.nan), "a new nonzero": (zero_at, 1e-30)}
    for changes, matches in ((same, True), (other, False)):
        for name, (where, value) in changes.items():
            changed = X.copy()
            changed[where] = value
            assert structure.structure_matches(changed, indptr, indices, values, threads=threads) is matches, name
    wide = nonzero_structure(X)
    assert structure.structure_matches(narrow, *wide, threads=threads) is False  # X's float64 values are not narrow's
    assert structure.structure_matches(narrow, *nonzero_structure(narrow.astype(np.float64)), threads=threads)


def test_nonzero_fraction_counts_the_values_as_converted(rng):
    X = sparse_like(rng, (50, 8), np.float64, zero_fraction=0.5)
    X[X != 0] = 1e-50  # nonzero in float64, zero in float32
    assert structure.nonzero_fraction(X) > 0.3 and structure.nonzero_fraction(X, np.float32) == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_nonzero_structure_of_data_converted_entry_by_entry(threads, rng, split_small):
    """Indexing float64 data as float32 gives the structure of its float32 copy, without making one: values that
    narrow to zero are not listed, values too large list inf; float32 data indexes as float64 exactly."""
    X = sparse_like(rng, (30, 9), np.float64, zero_fraction=0.6)
    X[2, 3], X[4, 5] = 1e-50, 1e300
    with np.errstate(over="ignore"):
        narrow = X.astype(np.float32)
    for got, want in zip(nonzero_structure(X, dtype=np.float32, threads=threads), nonzero_structure(narrow)):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    for got, want in zip(nonzero_structure(narrow, dtype=np.float64, threads=threads),
                         nonzero_structure(narrow.astype(np.float64))):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
