"""The fused multiply-add: the instruction and its plain twin, against exact rational arithmetic."""
from fractions import Fraction

import numpy as np
import pytest
from numba import config

from fastscratch.kernel_cache import jit
from fastscratch.kernels.fma import exact_fma32, exact_fma64, fma_intrinsic, multiply_add
import oracle

JIT = not config.DISABLE_JIT
EXACT = {np.float64: exact_fma64, np.float32: exact_fma32}


@jit
def both_ways64(a, b, c, instruction, plain):
    for i in range(a.shape[0]):
        instruction[i] = fma_intrinsic(a[i], b[i], c[i])
        plain[i] = exact_fma64(a[i], b[i], c[i])


@jit
def both_ways32(a, b, c, instruction, plain):
    for i in range(a.shape[0]):
        instruction[i] = fma_intrinsic(a[i], b[i], c[i])
        plain[i] = exact_fma32(a[i], b[i], c[i])


BOTH_WAYS = {np.float64: both_ways64, np.float32: both_ways32}


@jit
def multiply_add_all(a, b, c, out):
    for i in range(a.shape[0]):
        out[i] = multiply_add(a[i], b[i], c[i])


def triples(dtype, rng, n):
    """Products over many magnitudes, and c mostly near -a*b (where rounding twice and once differ most)."""
    decades = 30 if dtype is np.float64 else 8  # float32: products well inside its range
    a = rng.standard_normal(n) * 10.0 ** rng.integers(-decades, decades, n)
    b = rng.standard_normal(n) * 10.0 ** rng.integers(-decades, decades, n)
    a, b = a.astype(dtype), b.astype(dtype)
    near = -(a.astype(np.float64) * b) * (1 + rng.integers(-4, 5, n) * float(np.finfo(dtype).eps))
    c = np.where(rng.random(n) < 0.7, near, rng.standard_normal(n) * 10.0 ** rng.integers(-decades, decades, n))
    return a, b, c.astype(dtype)


def rounded_once(a, b, c, dtype):
    """a * b + c computed exactly, rounded once to dtype (float() rounds a Fraction to nearest, ties to even;
    from float64 to float32, a value already exact in float64 rounds once)."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    if dtype is np.float64:
        return float(exact)
    # float32: round the exact value to 24 bits by hand (a float64 in between could round twice).
    value = float(exact)
    candidates = np.array([np.float32(value), np.nextafter(np.float32(value), np.float32(np.inf)),
                           np.nextafter(np.float32(value), np.float32(-np.inf))])
    errors = [abs(Fraction(float(v)) - exact) for v in candidates]
    best = min(errors)
    ties = [v for v, e in zip(candidates, errors) if e == best]
    return min(ties, key=lambda v: int(np.float32(v).view(np.uint32)) & 1)  # ties to even


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_plain_twin_rounds_once(dtype, rng):
    a, b, c = triples(dtype, rng, 3000 if JIT else 500)
    for x, y, z in zip(a, b, c):
        assert EXACT[dtype](x, y, z) == rounded_once(x, y, z, dtype), (x, y, z)


@pytest.mark.skipif(not JIT, reason="the instruction is an intrinsic: compiled code only")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_instruction_and_plain_twin_give_the_same_bits(dtype, rng):
    a, b, c = triples(dtype, rng, 1_000_000)
    instruction, plain = np.empty_like(a), np.empty_like(a)
    BOTH_WAYS[dtype](a, b, c, instruction, plain)
    assert instruction.dtype == dtype
    np.testing.assert_array_equal(instruction.view(np.uint8), plain.view(np.uint8))
    # Where the two roundings of a separate multiply and add differ from one rounding, so does this.
    assert np.count_nonzero(instruction != (a * b + c)) > 1000


@pytest.mark.skipif(not JIT, reason="the instruction is an intrinsic: compiled code only")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_oracles_vectorised_fma_gives_the_instructions_bits(dtype, rng):
    """tests/kernels/oracle.fma, the exact fused multiply-add over arrays that the kernel tests hold the fused sums
    to, rounds as the instruction does."""
    a, b, c = triples(dtype, rng, 1_000_000)
    instruction, plain = np.empty_like(a), np.empty_like(a)
    BOTH_WAYS[dtype](a, b, c, instruction, plain)
    np.testing.assert_array_equal(oracle.fma(a, b, c).view(np.uint8), instruction.view(np.uint8))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_multiply_add_rounds_once_compiled_and_twice_as_python(dtype, rng):
    a, b, c = triples(dtype, rng, 2000)
    got = np.empty_like(a)
    multiply_add_all(a, b, c, got)
    if JIT:
        np.testing.assert_array_equal(got.view(np.uint8), oracle.fma(a, b, c).view(np.uint8))
    else:
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(got, a * b + c)
