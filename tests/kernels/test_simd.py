import numpy as np
import pytest

from fastscratch._config import jit
from fastscratch.kernels.simd import PREFETCH_ABOVE_BYTES, PREFETCH_DISTANCE, TILE_VECTORS, combine_rows, update_rows


@jit
def combine(out, o, M, rows, values, positions, start, stop):
    combine_rows(out, o, M, rows, values, positions, start, stop)


@jit
def update(out, o, M, rows, values, positions, start, stop, scale, seen):
    update_rows(out, o, M, rows, values, positions, start, stop, scale, seen)


def naive(M, rows, values, positions, start, stop, width):
    """The loop combine_rows replaces, term by term in order: its bits exactly."""
    total = np.zeros(width, dtype=M.dtype)
    for c in range(start, stop):
        v = values.flat[c if positions is None else positions[c]]
        total = total + v * M[c - start if rows is None else rows[c], :width]
    return total


# Every mix of whole tiles, smaller tiles and single columns, in both dtypes (4 or 8 lanes).
WIDTHS = sorted(set(range(1, 2 * TILE_VECTORS * 8 + 2)) | {200, 257})


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width", WIDTHS)
def test_combination_is_the_naive_loops_bits(width, dtype, rng):
    M = rng.standard_normal((11, width + 3)).astype(dtype)  # wider than out: only the first width columns count
    rows = rng.integers(0, 11, 40).astype(np.int16)
    values = rng.standard_normal((5, 8)).astype(dtype)  # read flat
    for positions in (None, rng.integers(0, 40, 40)):
        out = np.full((3, width), 7, dtype=dtype)
        combine(out, 1, M, rows, values, positions, 3, 31)
        np.testing.assert_array_equal(out[1], naive(M, rows, values, positions, 3, 31, width))
        assert (out[[0, 2]] == 7).all()  # other rows untouched


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width", [1, 5, 8, 13, 32, 64, 67])
def test_update_is_the_sgd_step_of_the_row(width, dtype, rng):
    M = rng.standard_normal((9, width)).astype(dtype)
    rows = rng.integers(0, 9, 12)
    values = rng.standard_normal(12).astype(dtype)
    W = rng.standard_normal((3, width)).astype(dtype)
    lr = dtype(0.01)
    expected = W.copy()
    expected[2] = W[2] - lr * naive(M, rows, values, None, 0, 12, width)
    seen = np.zeros(width, dtype=dtype)
    update(W, 2, M, rows, values, None, 0, 12, -lr, seen)
    np.testing.assert_array_equal(W, expected)
    np.testing.assert_array_equal(seen, np.zeros(width))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_update_marks_non_finite_results_in_seen(dtype):
    big = np.finfo(dtype).max
    M = np.ones((1, 11), dtype=dtype)
    W = np.zeros((1, 11), dtype=dtype)
    W[0, [3, 9]] = -big  # -big - big overflows to -inf
    seen = np.zeros(11, dtype=dtype)
    with np.errstate(over="ignore"):
        update(W, 0, M, np.zeros(1, np.int64), np.array([big], dtype=dtype), None, 0, 1, dtype(-1), seen)
    assert np.isneginf(W[0, [3, 9]]).all()
    assert np.isnan(seen[[3, 9]]).all() and (np.delete(seen, [3, 9]) == 0).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("width", [1, 7, 64, 77])
@pytest.mark.parametrize("terms", [1, PREFETCH_DISTANCE, 3 * PREFETCH_DISTANCE])
def test_prefetching_walk_over_a_large_M_gives_the_same_bits(terms, width, dtype, rng):
    """Past PREFETCH_ABOVE_BYTES the walk also requests rows ahead; the lookahead stops at the range's end,
    which here is the end of ``rows``."""
    num_rows = PREFETCH_ABOVE_BYTES // (width * np.dtype(dtype).itemsize) + 1
    M = rng.standard_normal((num_rows, width)).astype(dtype)
    assert M.nbytes > PREFETCH_ABOVE_BYTES
    rows = np.sort(rng.integers(0, num_rows, terms + 5))
    values = rng.standard_normal(terms + 5).astype(dtype)
    out = np.empty((1, width), dtype=dtype)
    combine(out, 0, M, rows, values, None, 5, terms + 5)
    np.testing.assert_array_equal(out[0], naive(M, rows, values, None, 5, terms + 5, width))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_consecutive_rows_and_empty_range(dtype, rng):
    M = rng.standard_normal((6, 37)).astype(dtype)
    values = rng.standard_normal(20).astype(dtype)
    out = np.full((2, 37), np.nan, dtype=dtype)
    combine(out, 0, M, None, values, None, 10, 16)  # rows[c] = c - start: values[10:16] @ M
    np.testing.assert_array_equal(out[0], naive(M, None, values, None, 10, 16, 37))
    combine(out, 1, M, np.zeros(1, np.int64), values, None, 5, 5)
    assert (out[1] == 0).all()


def test_non_finite_terms_propagate_as_in_numpy(rng):
    M = rng.standard_normal((3, 9))
    M[1, 4] = np.inf
    values = np.array([1.0, 0.0, 2.0])
    out = np.empty((1, 9))
    combine(out, 0, M, np.arange(3), values, None, 0, 3)
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(out[0], naive(M, np.arange(3), values, None, 0, 3, 9))
    assert np.isnan(out[0, 4])  # 0 * inf


def test_refuses_non_contiguous_arrays():
    with pytest.raises(Exception, match="combine_rows|No implementation|Invalid use"):
        combine(np.empty((2, 8))[:, ::2], 0, np.ones((3, 4)), None, np.ones(3), None, 0, 3)
