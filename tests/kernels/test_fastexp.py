"""The vectorisable exp against NumPy's, over the whole float range."""
import numpy as np
import pytest

from fastscratch._config import jit
from fastscratch.kernels.fastexp import fast_exp


@jit
def exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = fast_exp(x[i])


@pytest.mark.parametrize("dtype, limit, max_ulp", [(np.float64, 760.0, 1), (np.float32, 110.0, 4)])
def test_matches_numpy_within_ulps(dtype, limit, max_ulp, rng):
    x = np.concatenate([np.linspace(-limit, limit, 400_001), rng.standard_normal(100_000) * 10,
                        [0.0, -0.0, 1e-300, -1e-300]]).astype(dtype)
    got = np.empty_like(x)
    exp_all(x, got)
    with np.errstate(over="ignore", under="ignore"):
        expected = np.exp(x)
    assert got.dtype == dtype
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    normal = np.isfinite(expected) & (expected >= np.finfo(dtype).tiny)
    ulps = np.abs(got[normal] - expected[normal]) / np.spacing(expected[normal])
    assert ulps.max() <= max_ulp
    # Gradual underflow: subnormal results within a couple of the smallest steps, then exactly 0.
    small = np.isfinite(expected) & ~normal
    assert np.all(np.abs(got[small] - expected[small]) <= 2 * np.spacing(dtype(0)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0], dtype=dtype)
    got = np.empty_like(x)
    exp_all(x, got)
    assert np.isnan(got[0])
    assert got[1] == np.inf and got[2] == 0.0 and got[3] == 1.0
