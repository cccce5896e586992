import numpy as np
import pytest

from fastscratch.kernels import activations
from fastscratch.kernels.dense_forward import blocked_forward, chunked_forward, dense_forward, full_forward
from fastscratch.kernels.simd import BLOCK
from fastscratch.kernels.structure import batch_entries, full_structure, index_dtype, nonzero_structure
from oracle import ACTIVATIONS, assert_close, assert_fused, blocked_product, sparse_like
import oracle

SHAPES = [(1, 1, 1), (1, 784, 64), (30, 784, 64), (7, 13, 5), (30, 64, 32), (256, 32, 10), (3, 5, 130)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("code", list(ACTIVATIONS), ids=[v[0] for v in ACTIVATIONS.values()])
@pytest.mark.parametrize("n, n_in, n_out", SHAPES)
def test_forward_matches_numpy_and_does_not_depend_on_the_window(n, n_in, n_out, code, dtype, rng):
    x = sparse_like(rng, (n, n_in), dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    y = np.full((n, n_out), np.nan, dtype=dtype)
    dense_forward(*nonzero_structure(x), 0, W, b, code, y)
    assert_close(y, oracle.dense_forward(x, W, b, code), dtype, scale=np.sqrt(n_in))

    # The same rows as a window of a larger array give the very same bits.
    padded = np.concatenate([sparse_like(rng, (3, n_in), dtype), x, sparse_like(rng, (2, n_in), dtype)])
    window = np.full((n, n_out), np.nan, dtype=dtype)
    dense_forward(*nonzero_structure(padded, np.int64), 3, W, b, code, window)
    np.testing.assert_array_equal(window, y)
    # Listing every entry, zeros included (as for hidden layers): the same bits again.
    window[...] = np.nan
    dense_forward(*full_structure(n, n_in, index_dtype(n_in)), x, 0, W, b, code, window)
    np.testing.assert_array_equal(window, y)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, n_in, n_out", [(30, 784, 64), (7, 13, 5), (4, 200, 130), (1, 129, 3), (2, 64, 7)])
def test_each_block_of_inputs_is_summed_on_its_own(n, n_in, n_out, dtype, rng):
    """Each row's product: per block of BLOCK inputs, its nonzero entries' fused sum from +0, the blocks' sums added
    in order (``oracle.blocked_product``); listed zeros change nothing. Rows with one block, a row of zeros, a row
    whose first block is empty."""
    x = sparse_like(rng, (n, n_in), dtype)
    x[0] = 0
    if n > 1:
        x[1, :BLOCK] = 0
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = np.zeros(n_out, dtype=dtype)
    expected = blocked_product(x, W, BLOCK)
    scale = blocked_product(np.abs(x), np.abs(W), BLOCK)
    for structure in (nonzero_structure(x), (*full_structure(n, n_in, index_dtype(n_in)), x)):
        y = np.full((n, n_out), np.nan, dtype=dtype)
        dense_forward(*structure, 0, W, b, activations.IDENTITY, y)
        assert_fused(y, expected, dtype, scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("code", list(ACTIVATIONS), ids=[v[0] for v in ACTIVATIONS.values()])
@pytest.mark.parametrize("n, n_in, n_out", [(30, 784, 64), (7, 13, 5), (4, 200, 130), (1, 9, 3)])
def test_chunked_forward_gives_the_bits_of_the_walk_row_by_row(n, n_in, n_out, code, dtype, rng):
    """A batch walked a block at a time for all its rows gives ``dense_forward``'s bits, in every batch (an all-zero
    one, a one-input one among them); W wide enough to be prefetched in the 784-input case."""
    x = sparse_like(rng, (5 * n, n_in), dtype)
    x[n:2 * n] = 0
    x[2 * n:3 * n] = 0
    x[3 * n - 1, n_in // 2] = 0.5
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    indptr, indices, values = nonzero_structure(x)
    entries = batch_entries(indptr, indices, values, n_in, n)
    for batch in range(5):
        expected = np.full((n, n_out), np.nan, dtype=dtype)
        dense_forward(indptr, indices, values, batch * n, W, b, code, expected)
        y = np.full((n, n_out), np.nan, dtype=dtype)
        segments = slice(entries.starts[batch], entries.starts[batch + 1])
        chunked_forward(indptr[batch * n], entries.rows[segments], entries.ends[segments], entries.indices,
                        entries.values, W, b, code, y)
        assert y.tobytes() == expected.tobytes(), batch


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, n_in, n_out", [(30, 64, 32), (30, 32, 10), (4, 200, 130), (1, 65, 3), (2, 1, 1)])
def test_full_forward_gives_the_bits_of_the_walk_over_every_listed_entry(n, n_in, n_out, dtype, rng):
    """Hidden layers' dense input, its rows of W walked in order, blocks and all: ``dense_forward``'s bits."""
    x = sparse_like(rng, (n, n_in), dtype, zero_fraction=0.1)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    expected = np.full((n, n_out), np.nan, dtype=dtype)
    dense_forward(*full_structure(n, n_in, index_dtype(n_in)), x, 0, W, b, activations.SIGMOID, expected)
    y = np.full((n, n_out), np.nan, dtype=dtype)
    full_forward(x, W, b, activations.SIGMOID, y)
    assert y.tobytes() == expected.tobytes()


def forward(x, W, b, code):
    y = np.empty((x.shape[0], W.shape[1]), dtype=W.dtype)
    dense_forward(*nonzero_structure(x), 0, W, b, code, y)
    return y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_saturates_like_numpy(dtype):
    x = np.array([[1.0]], dtype=dtype)
    W = np.array([[-800.0, 800.0, -40.0, 40.0, 0.0]], dtype=dtype)
    b = np.zeros(5, dtype=dtype)
    y = forward(x, W, b, activations.SIGMOID)
    with np.errstate(over="ignore"):
        expected = 1 / (1 + np.exp(-(x @ W + b)))
    np.testing.assert_array_equal(y[0, [0, 1, 3, 4]], expected[0, [0, 1, 3, 4]])  # 0, 1, 1, 0.5 exactly
    np.testing.assert_allclose(y[0, 2], expected[0, 2], rtol=4 * np.finfo(dtype).eps)


def test_relu_keeps_nan_like_np_maximum():
    y = forward(np.array([[1.0]]), np.array([[np.nan, -1.0]]), np.zeros(2), activations.RELU)
    assert np.isnan(y[0, 0]) and y[0, 1] == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("code", list(ACTIVATIONS), ids=[v[0] for v in ACTIVATIONS.values()])
@pytest.mark.parametrize("n, n_in, n_out", [(30, 784, 64), (1, 784, 64), (7, 13, 5), (4, 200, 130), (3, 129, 3),
                                            (2, 1, 1), (31, 64, 32)])
def test_blocked_forward_gives_the_bits_of_the_walk_row_by_row(n, n_in, n_out, code, dtype, rng):
    """The per-call forward kernel, a block of inputs at a time for each group of rows (odd row counts and groups,
    rows of zeros, a first block of zeros among them): ``dense_forward``'s bits, zeros visited or skipped."""
    x = sparse_like(rng, (n, n_in), dtype)
    x[0] = 0
    if n > 2:
        x[2, :BLOCK] = 0
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype)
    expected = np.full((n, n_out), np.nan, dtype=dtype)
    dense_forward(*nonzero_structure(x), 0, W, b, code, expected)
    for group in (1, 2, 3, 32):
        y = np.full((n, n_out), np.nan, dtype=dtype)
        blocked_forward(x, W, b, code, y, group)
        assert y.tobytes() == expected.tobytes(), group
    assert_close(y, oracle.dense_forward(x, W, b, code), dtype, scale=np.sqrt(n_in))


def test_blocked_forward_visits_zero_inputs_behind_which_nan_weights_hide():
    """Every entry is visited, as BLAS does: a NaN weight times a zero input gives NaN, as in the reference."""
    x = np.array([[0.0, 1.0], [1.0, 1.0]])
    W = np.array([[np.nan, 1.0], [1.0, 1.0]])
    y = np.empty((2, 2))
    blocked_forward(x, W, np.zeros(2), activations.IDENTITY, y, 32)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(np.dot(x, W)))
