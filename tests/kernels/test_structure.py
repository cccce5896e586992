"""The input structures the kernels walk: exact, and the same whatever the split over threads."""
import threading

import numpy as np
import pytest

from fastscratch.kernels import structure
from fastscratch.kernels.structure import batch_chunks, batch_columns, batch_structure, in_parts, nonzero_structure
from oracle import sparse_like

THREADS = [1, 2, 3, 7]


@pytest.fixture
def split_small(monkeypatch):
    """Split even tiny inputs, so that every thread count below is exercised."""
    monkeypatch.setattr(structure, "MIN_ROWS_PER_THREAD", 1)


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


@pytest.mark.parametrize("threads", THREADS)
def test_batch_columns_are_each_batchs_transposed_structure(threads, rng, split_small):
    X = sparse_like(rng, (23, 7), np.float32, zero_fraction=0.6)
    X[6] = 0
    indptr, indices, values = nonzero_structure(X)
    starts, rows, positions = batch_columns(indptr, indices, 7, 5, threads=threads)
    assert starts.shape == (4, 8)  # the last 3 rows make no whole batch
    assert (starts.dtype, rows.dtype, positions.dtype) == (np.int16, np.int8, np.int16)  # offsets within a batch
    for batch in range(4):
        first, block = indptr[5 * batch], X[5 * batch:5 * batch + 5]
        assert starts[batch][0] == 0 and starts[batch][7] == np.count_nonzero(block)
        for k in range(7):
            entries = slice(first + starts[batch][k], first + starts[batch][k + 1])
            np.testing.assert_array_equal(rows[entries], np.flatnonzero(block[:, k]))
            np.testing.assert_array_equal(values[first + positions[entries]], block[:, k][block[:, k] != 0])


def chunks_oracle(X, batch_size, block):
    """Per whole batch, per block of ``block`` inputs holding an input of its union, the ends of each row's entries
    in it, counted from the batch's first entry."""
    indptr = np.concatenate([[0], np.cumsum(np.count_nonzero(X, axis=1))])
    batches = []
    for batch in range(len(X) // batch_size):
        rows = X[batch * batch_size:(batch + 1) * batch_size]
        union = np.flatnonzero(rows.any(axis=0))
        bounds = [min((q + 1) * block, X.shape[1]) for q in np.unique(union // block)]
        first = indptr[batch * batch_size]
        batches.append([[indptr[batch * batch_size + r] - first + np.count_nonzero(rows[r, :bound])
                         for r in range(batch_size)] for bound in bounds])
    return batches


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("block", [1, 2, 3, 7, 100])
def test_batch_chunks_cut_each_batchs_union_of_inputs_at_the_blocks(block, threads, rng, split_small, monkeypatch):
    monkeypatch.setattr(structure, "BLOCK", block)
    X = sparse_like(rng, (23, 7), np.float32, zero_fraction=0.7)
    X[5:10] = 0  # a batch without a nonzero input: no blocks
    X[10:15] = 0
    X[11, 3] = X[13, 6] = 1.0  # a union of two inputs
    X[15:20, 2:5] = 0  # a union with a gap
    indptr, indices, _ = nonzero_structure(X)
    starts, ends = batch_chunks(indptr, indices, 7, 5, threads=threads)
    assert ends.dtype == np.int16 and starts.shape == (5,)  # the last 3 rows make no whole batch
    expected = chunks_oracle(X, 5, block)
    assert [len(e) for e in expected][1:3] == [0, 1 if block > 3 else 2]
    for batch in range(4):
        np.testing.assert_array_equal(ends[starts[batch]:starts[batch + 1]].reshape(-1, 5),
                                      np.reshape(expected[batch], (-1, 5)))


def test_batch_structure_holds_both_structures(rng):
    X = sparse_like(rng, (40, 9), np.float64)
    indptr, indices, _ = nonzero_structure(X)
    both = batch_structure(indptr, indices, 9, 10, np.int64)
    for got, want in zip(both.columns, batch_columns(indptr, indices, 9, 10, np.int64)):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(both.chunks, batch_chunks(indptr, indices, 9, 10, offsets_dtype=np.int64)):
        np.testing.assert_array_equal(got, want)
    assert both.chunks.ends.dtype == np.int64


def test_structures_of_mnist_do_not_depend_on_the_split(mnist_prepared):
    X = mnist_prepared[0][:12000]
    one = nonzero_structure(X, threads=1)
    columns = batch_columns(one[0], one[1], 784, 30, threads=1)
    chunks = batch_chunks(one[0], one[1], 784, 30, threads=1)
    for batch, expected in enumerate(chunks_oracle(X[:600], 30, structure.BLOCK)):
        np.testing.assert_array_equal(chunks.ends[chunks.starts[batch]:chunks.starts[batch + 1]], expected)
    for threads in (2, 3):
        for got, want in zip(nonzero_structure(X, threads=threads), one):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(batch_columns(one[0], one[1], 784, 30, threads=threads), columns):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(batch_chunks(one[0], one[1], 784, 30, threads=threads), chunks):
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
    monkeypatch.setattr(structure.config, "NUMBA_NUM_THREADS", 3)
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
