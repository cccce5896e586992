import numpy as np
import pytest

from fastscratch.kernels.losses import loss_and_gradient
from oracle import LOSSES, RTOL


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("code", list(LOSSES), ids=[v[0] for v in LOSSES.values()])
@pytest.mark.parametrize("n, m", [(1, 1), (30, 10), (7, 3)])
def test_loss_and_gradient_match_the_tutorials_functions(code, n, m, dtype, rng):
    pred = rng.uniform(0.01, 0.99, (n, m)).astype(dtype)
    target = np.eye(m, dtype=dtype)[rng.integers(0, m, n)]
    grad = np.empty_like(pred)
    loss = loss_and_gradient(pred, target, code, grad)
    _, loss_function, derivative = LOSSES[code]
    np.testing.assert_allclose(loss, loss_function(pred.astype(np.float64), target), rtol=RTOL[dtype])
    np.testing.assert_allclose(grad, derivative(pred, target), rtol=RTOL[dtype])


def test_non_finite_loss_is_reported_not_hidden():
    grad = np.empty((1, 2))
    assert np.isnan(loss_and_gradient(np.array([[np.nan, 0.5]]), np.array([[0.0, 1.0]]), 0, grad))
