"""The vectorisable exp against NumPy's over the whole float range, and its plain twin bit for bit."""
import numpy as np
import pytest
from numba import config

from fastscratch.kernel_cache import jit
from fastscratch.kernels.fastexp import exp32, exp64, fast_exp

JIT = not config.DISABLE_JIT
EXP = {np.float64: exp64, np.float32: exp32}


@jit
def exp_all(x, out):
    for i in range(x.shape[0]):
        out[i] = fast_exp(x[i])


@jit
def exp64_both_ways(x, bit_casts, plain):
    for i in range(x.shape[0]):
        bit_casts[i] = exp64(x[i], True)
        plain[i] = exp64(x[i], False)


@jit
def exp32_both_ways(x, bit_casts, plain):
    for i in range(x.shape[0]):
        bit_casts[i] = exp32(x[i], True)
        plain[i] = exp32(x[i], False)


BOTH_WAYS = {np.float64: exp64_both_ways, np.float32: exp32_both_ways}


def inputs(dtype, limit, rng, size):
    """Evenly over [-limit, limit] (past both ends of exp's range), random moderate values, and the edge cases."""
    return np.concatenate([np.linspace(-limit, limit, size), rng.standard_normal(size // 4) * 10,
                           [0.0, -0.0, 1e-300, -1e-300, np.nan, np.inf, -np.inf]]).astype(dtype)


LIMITS = [(np.float64, 760.0, 1), (np.float32, 110.0, 4)]


@pytest.mark.parametrize("dtype, limit, max_ulp", LIMITS)
def test_matches_numpy_within_ulps(dtype, limit, max_ulp, rng):
    x = inputs(dtype, limit, rng, 400_001 if JIT else 20_001)
    got = np.empty_like(x)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # the plain Python twin under DISABLE_JIT
        exp_all(x, got)
        expected = np.exp(x)
    assert got.dtype == dtype
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    normal = np.isfinite(expected) & (expected >= np.finfo(dtype).tiny)
    ulps = np.abs(got[normal] - expected[normal]) / np.spacing(expected[normal])
    assert ulps.max() <= max_ulp
    # Gradual underflow: subnormal results within a couple of the smallest steps, then exactly 0.
    small = np.isfinite(expected) & ~normal
    assert np.all(np.abs(got[small] - expected[small]) <= 2 * np.spacing(dtype(0)))


@pytest.mark.skipif(not JIT, reason="the bit casts are intrinsics: compiled code only")
@pytest.mark.parametrize("dtype, limit, max_ulp", LIMITS)
def test_plain_twin_gives_the_same_bits(dtype, limit, max_ulp, rng):
    """Bit casts or conversions and powers, compiled: one result, bit for bit. Run as Python, whose multiply-adds
    round twice (``fma.multiply_add``), the same values within an ulp (float32: two)."""
    x = inputs(dtype, limit, rng, 400_001)
    bit_casts, plain = np.empty_like(x), np.empty_like(x)
    BOTH_WAYS[dtype](x, bit_casts, plain)
    finite = ~np.isnan(x)
    assert bit_casts[finite].tobytes() == plain[finite].tobytes()
    assert np.isnan(bit_casts[~finite]).all() and np.isnan(plain[~finite]).all()
    sample = np.concatenate([x[rng.integers(0, x.size, 5000)], x[-7:]])
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        python = np.array([EXP[dtype].py_func(v, False) for v in sample])
    assert python.dtype == dtype
    expected = np.empty_like(sample)
    exp_all(sample, expected)
    np.testing.assert_array_equal(np.isnan(python), np.isnan(expected))
    np.testing.assert_array_equal(np.isinf(python), np.isinf(expected))
    normal = np.isfinite(expected) & (expected >= np.finfo(dtype).tiny)
    ulps = np.abs(python[normal] - expected[normal]) / np.spacing(expected[normal])
    assert ulps.max() <= (1 if dtype == np.float64 else 2)
    small = np.isfinite(expected) & ~normal
    assert np.all(np.abs(python[small] - expected[small]) <= 2 * np.spacing(dtype(0)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_special_values(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0], dtype=dtype)
    got = np.empty_like(x)
    with np.errstate(over="ignore", invalid="ignore"):
        exp_all(x, got)
    assert np.isnan(got[0])
    assert got[1] == np.inf and got[2] == 0.0 and got[3] == 1.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fast_exp_from_python_keeps_the_type(dtype):
    value = fast_exp(dtype(1.5))
    assert value == pytest.approx(np.exp(1.5), rel=1e-6)
    if not JIT:
        assert type(value) is dtype
