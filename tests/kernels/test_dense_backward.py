import numpy as np
import pytest

from fastscratch.kernels.activations import times_derivative
from fastscratch.kernels.dense_backward import input_gradient, weight_gradients
from fastscratch.kernels.sgd import full_gradient_step, gradient_step, sgd_step
from fastscratch.kernels.structure import Columns, batch_structure, nonzero_structure
from oracle import ACTIVATIONS, assert_close, assert_fused, fused_sum, sparse_like, weight_gradient

SHAPES = [(1, 1, 1), (30, 784, 64), (7, 13, 5), (30, 64, 32), (1, 32, 10), (9, 5, 130)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, n_in, n_out", SHAPES)
def test_gradients_match_numpy(n, n_in, n_out, dtype, rng):
    x = sparse_like(rng, (n, n_in), dtype)
    W = rng.standard_normal((n_in, n_out)).astype(dtype)
    dz = rng.standard_normal((n, n_out)).astype(dtype)
    dW, db = weight_gradient(x, dz)  # the oracle of the step's sums (test_gradient_step_...), against NumPy
    x64, dz64 = x.astype(np.float64), dz.astype(np.float64)
    assert_close(dW, x64.T @ dz64, dtype, scale=np.sqrt(n))
    assert_close(db, np.ones(n) @ dz64, dtype, scale=np.sqrt(n))
    dx = np.full((n, n_in), np.nan, dtype=dtype)
    input_gradient(dz, W, np.empty((n_out, n_in), dtype=dtype), dx)
    assert_close(dx, dz64 @ W.astype(np.float64).T, dtype, scale=np.sqrt(n_out))
    # Each row of dx: the fused sum over the outputs in order.
    for i in range(n):
        assert_fused(dx[i], fused_sum(W.T.copy(), None, dz[i], None, 0, n_out, n_in), dtype,
                     fused_sum(np.abs(W.T), None, np.abs(dz[i]), None, 0, n_out, n_in))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("code", list(ACTIVATIONS), ids=[v[0] for v in ACTIVATIONS.values()])
def test_times_derivative_is_the_references_expression(code, dtype, rng):
    y = ACTIVATIONS[code][1](rng.standard_normal((6, 7))).astype(dtype)
    dL_dy = rng.standard_normal((6, 7)).astype(dtype)
    out = np.empty_like(y)
    times_derivative(dL_dy, y, code, out)
    np.testing.assert_array_equal(out, dL_dy * ACTIVATIONS[code][2](y))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sgd_step_is_the_references_update(dtype, rng):
    W, b = rng.standard_normal((5, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)
    dW, db = rng.standard_normal((5, 4)).astype(dtype), rng.standard_normal(4).astype(dtype)
    lr = dtype(1e-3)
    expected_W, expected_b = W - lr * dW, b - lr * db
    sgd_step(W, b, dW, db, lr)
    np.testing.assert_array_equal(W, expected_W)
    np.testing.assert_array_equal(b, expected_b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, n_in, n_out", SHAPES)
def test_gradient_step_equals_weight_gradient_then_sgd_step(n, n_in, n_out, dtype, rng):
    X = sparse_like(rng, (n + 4, n_in), dtype, zero_fraction=0.9)
    begin = 2
    dz = rng.standard_normal((n, n_out)).astype(dtype)
    W, b = rng.standard_normal((n_in, n_out)).astype(dtype), rng.standard_normal(n_out).astype(dtype)
    lr = dtype(0.01)
    dW, db = weight_gradient(X[begin:begin + n], dz)
    scale, _ = weight_gradient(np.abs(X[begin:begin + n]), np.abs(dz))
    expected_W, expected_b = W.copy(), b.copy()
    sgd_step(expected_W, expected_b, dW, db, lr)
    assert gradient_step(*columns_of(X, begin, n), dz, W, b, lr, scratch(n_out, dtype))
    assert_fused(W, expected_W, dtype, np.abs(expected_W) + lr * scale)
    np.testing.assert_array_equal(b, expected_b)


@pytest.mark.parametrize("poison", ["W", "b", "gradient"])
def test_gradient_step_reports_non_finite_parameters(poison, rng):
    X = sparse_like(rng, (4, 6), np.float64, zero_fraction=0.5)
    X[:, 2] = 1.0  # row 2 of W is updated for sure
    W, b, dz = rng.standard_normal((6, 3)), rng.standard_normal(3), rng.standard_normal((4, 3))
    if poison == "W":
        W[2, 1] = np.inf
    elif poison == "b":
        b[0] = np.nan
    else:
        dz[0, 0] = 1e308
    with np.errstate(all="ignore"):
        assert not gradient_step(*columns_of(X, 0, 4), dz, W, b, 1e10, scratch(3, np.float64))


def scratch(n_out, dtype):
    return np.empty(n_out, dtype)


def columns_of(X, begin, rows):
    """The column structure of X[begin:begin + rows] and the values its positions index (the batch's entries in
    block order, as the epoch keeps them)."""
    structure = batch_structure(*nonzero_structure(X[begin:begin + rows]), X.shape[1], rows)
    starts, col_rows, positions = structure.columns
    return Columns(starts[0], col_rows, positions), structure.entries.values


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, n_in, n_out", [(6, 9, 4), (30, 64, 32), (30, 32, 10), (1, 3, 130)])
def test_full_gradient_step_equals_the_step_over_nonzero_columns(n, n_in, n_out, dtype, rng):
    """The dense step (hidden layers: every entry, read from x transposed) changes no bit of the step over the
    nonzero entries' columns: a zero input adds exactly nothing to a sum from +0."""
    x = sparse_like(rng, (n, n_in), dtype, zero_fraction=0.5)
    dz = rng.standard_normal((n, n_out)).astype(dtype)
    W, b = rng.standard_normal((n_in, n_out)).astype(dtype), rng.standard_normal(n_out).astype(dtype)
    lr = dtype(0.1)
    W_full, b_full = W.copy(), b.copy()
    xT = np.full((n_in, n), np.nan, dtype=dtype)
    assert full_gradient_step(x, xT, dz, W_full, b_full, lr, scratch(n_out, dtype))
    np.testing.assert_array_equal(xT, x.T)
    assert gradient_step(*columns_of(x, 0, n), dz, W, b, lr, scratch(n_out, dtype))
    np.testing.assert_array_equal(W_full, W)
    np.testing.assert_array_equal(b_full, b)


def weight_gradients_of(x, dz):
    n, n_in = x.shape
    dW = np.full((n_in, dz.shape[1]), np.nan, dtype=dz.dtype)
    db = np.full(dz.shape[1], np.nan, dtype=dz.dtype)
    weight_gradients(x, dz, np.empty(n * n_in, np.int32), np.empty(n * n_in, np.int32), np.empty(n_in, np.int32),
                     dW, db)
    return dW, db


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n, n_in, n_out", SHAPES + [(128, 784, 64), (3, 200, 7)])
def test_weight_gradients_are_the_steps_sums(n, n_in, n_out, dtype, rng):
    """The per-call weight gradient: each weight's fused chain over the rows in order (the sums ``gradient_step``
    steps with, ``oracle.weight_gradient``), inputs that are zero in every row giving +0; the bias's plain sum."""
    x = sparse_like(rng, (n, n_in), dtype)
    x[:, n_in // 2] = 0
    dz = rng.standard_normal((n, n_out)).astype(dtype)
    dW, db = weight_gradients_of(x, dz)
    expected_dW, expected_db = weight_gradient(x, dz)
    x64, dz64 = x.astype(np.float64), dz.astype(np.float64)
    assert_fused(dW, expected_dW, dtype, np.abs(x64).T @ np.abs(dz64))
    np.testing.assert_array_equal(db, expected_db)
    assert_close(dW, x64.T @ dz64, dtype, scale=np.sqrt(n))
    assert not np.signbit(dW[n_in // 2]).any() and not dW[n_in // 2].any()


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
def test_weight_gradients_of_a_non_finite_dz_visit_every_input_as_blas(poison, rng):
    """A zero input times inf or NaN is NaN in BLAS's product: with a non-finite dL_dz no zero is skipped."""
    x = sparse_like(rng, (5, 9), np.float64)
    x[:, 3] = 0
    dz = rng.standard_normal((5, 4))
    dz[2, 1] = poison
    dW, db = weight_gradients_of(x, dz)
    with np.errstate(invalid="ignore"):
        expected = x.T @ dz
    np.testing.assert_array_equal(np.isnan(dW), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(dW), np.isinf(expected))
    finite = np.isfinite(expected)
    np.testing.assert_allclose(dW[finite], expected[finite], rtol=1e-12)
    assert np.isnan(dW[3, 1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_checks_count_and_find_non_finite_values_as_numpy(dtype, rng):
    from fastscratch.kernels.checks import all_finite, count_nonzero
    x = sparse_like(rng, (7, 13), dtype)
    x[1, 2] = -0.0
    assert count_nonzero(x) == np.count_nonzero(x) and all_finite(x)
    for poison in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[3, 4] = poison
        assert not all_finite(y) and not all_finite(y[3])
        assert count_nonzero(y) == np.count_nonzero(y)
