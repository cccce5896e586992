"""The ported tanh against np.tanh bit for bit, over the whole float range; its plain twin, and libm's fallback."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import config

from fastscratch.kernel_cache import jit
from fastscratch.kernels import activations
from fastscratch.kernels.fasttanh import NUMPY_TANH_IS_SIMD, numpy_tanh, tanh32, tanh64

JIT = not config.DISABLE_JIT
TANH = {np.float64: tanh64, np.float32: tanh32}
numpy_simd = pytest.mark.skipif(not NUMPY_TANH_IS_SIMD, reason="NumPy calls libm's tanh on this CPU")


@jit
def tanh_all(x, out):
    for i in range(x.shape[0]):
        out[i] = numpy_tanh(x[i])


@jit
def tanh64_plain(x, out):
    for i in range(x.shape[0]):
        out[i] = tanh64(x[i], False)


@jit
def tanh32_plain(x, out):
    for i in range(x.shape[0]):
        out[i] = tanh32(x[i], False)


PLAIN = {np.float64: tanh64_plain, np.float32: tanh32_plain}


def inputs(dtype, rng, size):
    """Evenly over [-30, 30] (every interval, both saturations), log-spaced magnitudes down to subnormals,
    each interval's ends and their neighbours, and the special values."""
    finfo = np.finfo(dtype)
    smallest, largest = np.log10(float(finfo.smallest_subnormal)), np.log10(float(finfo.max)) - 1e-3
    magnitudes = np.logspace(smallest, largest, size // 4)
    ends = np.array([0.0546875, 0.125, 0.1875, 10.0, 24.0] + [2.0 ** (k / 4) for k in range(-20, 20)])
    ends = ends.astype(dtype)
    ends = np.concatenate([ends, np.nextafter(ends, dtype(0)), np.nextafter(ends, dtype(99))])
    values = np.concatenate([np.linspace(-30, 30, size), rng.standard_normal(size // 4) * 4, magnitudes, ends])
    values = np.concatenate([values, -values]).astype(dtype)
    return np.concatenate([values, np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=dtype)])


def assert_same_bits(got, expected):
    """Every bit, NaNs' sign and payload included (and -0.0 is not 0.0)."""
    assert got.dtype == expected.dtype
    unsigned = np.uint64 if got.dtype == np.float64 else np.uint32
    np.testing.assert_array_equal(got.view(unsigned), expected.view(unsigned))


#: NaNs of both signs, quiet and signalling, with and without a payload, as bit patterns.
NAN_BITS = {np.float64: [0x7ff8000000000000, 0xfff8000000000000, 0x7ff8000000000123, 0xfff80000deadbeef,
                         0x7ff0000000000001, 0xfff0000000000456, 0x7ff4000000000000, 0xfff7ffffffffffff],
            np.float32: [0x7fc00000, 0xffc00000, 0x7fc00123, 0xffc0beef, 0x7f800001, 0xff800456, 0x7fa00000,
                         0xffbfffff]}


def nans(dtype):
    """``NAN_BITS`` as floats, among finite values so that vector lanes mix both, at a length that leaves a
    tail at every vector width."""
    unsigned = np.uint64 if dtype == np.float64 else np.uint32
    values = np.array(NAN_BITS[dtype], dtype=unsigned).view(dtype)
    return np.insert(np.linspace(-3, 3, 59).astype(dtype), np.arange(0, 59, 7)[:values.size], values)


@numpy_simd
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_equals_numpy_bit_for_bit(dtype, rng):
    x = inputs(dtype, rng, 400_001 if JIT else 4_001)
    got = np.empty_like(x)
    tanh_all(x, got)
    assert_same_bits(got, np.tanh(x))


@numpy_simd
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_nan_gives_numpys_nan(dtype):
    """np.tanh gives the default quiet NaN for every NaN, whatever its sign and payload, quiet or signalling:
    so do the compiled kernel (this process's vector width; every width in test_every_width_gives_numpys_nan),
    its plain twin compiled, and the plain twin as Python."""
    x = nans(dtype)
    expected = np.tanh(x)
    got = np.empty_like(x)
    tanh_all(x, got)
    assert_same_bits(got, expected)
    plain = np.empty_like(x)
    PLAIN[dtype](x, plain)
    assert_same_bits(plain, expected)
    python = np.array([getattr(TANH[dtype], "py_func", TANH[dtype])(v, False) for v in x], dtype=dtype)
    assert_same_bits(python, expected)


WIDTH_CHILD = """
import json
import numpy as np
from fastscratch.kernels import activations, simd
from test_fasttanh import nans
same = {}
for dtype in (np.float64, np.float32):
    z = np.stack([nans(dtype), nans(dtype)[::-1]])
    y = z.copy()
    for i in range(len(y)):
        activations.bias_activate_row(y, i, np.zeros(z.shape[1], dtype), activations.TANH)
    same[np.dtype(dtype).name] = y.tobytes() == np.tanh(z).tobytes()
print(json.dumps({"bits": simd.VECTOR_BITS, "same": same}))
"""


@numpy_simd
@pytest.mark.skipif(not JIT, reason="runs its own variants, NUMBA_DISABLE_JIT among them")
def test_every_width_gives_numpys_nan():
    """The activation kernel, in a fresh process per vector width (``FASTSCRATCH_SIMD`` is read at import),
    plain and as Python: np.tanh's bits for every kind of NaN."""
    from fastscratch.kernels import simd

    widest = simd.widest_vector_bits(simd.cpu_target()[1])
    variants = {"plain": {"FASTSCRATCH_SIMD": "plain"}, "python": {"NUMBA_DISABLE_JIT": "1"},
                **{str(bits): {"FASTSCRATCH_SIMD": str(bits)} for bits in simd.WIDTHS if bits <= widest}}
    base = {key: value for key, value in os.environ.items() if key not in ("FASTSCRATCH_SIMD", "NUMBA_DISABLE_JIT")}
    for name, environment in variants.items():
        run = subprocess.run([sys.executable, "-c", WIDTH_CHILD], capture_output=True, text=True, timeout=300,
                             env={**base, **environment}, cwd=os.path.dirname(__file__), stdin=subprocess.DEVNULL)
        assert run.returncode == 0, run.stderr[-3000:]
        report = json.loads(run.stdout.splitlines()[-1])
        assert report["bits"] == (0 if name in ("plain", "python") else int(name)), name
        assert report["same"] == {"float64": True, "float32": True}, name


@numpy_simd
def test_libm_would_not(rng):
    """Why the port: libm's tanh (what the kernels called before) differs from np.tanh here in the last bit."""
    x = rng.standard_normal(10_000) * 3
    assert np.count_nonzero(np.tanh(x) != [math.tanh(v) for v in x]) > 1000


@numpy_simd
@pytest.mark.skipif(not JIT, reason="the intrinsics run only compiled; under NUMBA_DISABLE_JIT the plain twin is all")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_plain_twin_gives_the_same_bits(dtype, rng):
    """frexp and the exact FMA, compiled or run as Python: the intrinsics' bits."""
    x = inputs(dtype, rng, 400_001)
    plain = np.empty_like(x)
    PLAIN[dtype](x, plain)
    assert_same_bits(plain, np.tanh(x))
    sample = np.concatenate([x[rng.integers(0, x.size, 3000)], x[-5:]])
    python = np.array([TANH[dtype].py_func(v, False) for v in sample])
    assert_same_bits(python, np.tanh(sample))


@numpy_simd
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("code", [activations.TANH_NUMPY_SIMD, activations.TANH_LIBM], ids=["numpy_simd", "libm"])
def test_each_tanh_code_is_what_its_name_says(code, dtype, rng):
    """The activation kernel with each tanh code: NumPy's SIMD tanh (the built-in's code here), and libm's
    (NumPy's choice on CPUs without its SIMD loop), as Numba's math.tanh gives it."""
    assert activations.TANH == activations.TANH_NUMPY_SIMD
    z = (rng.standard_normal((5, 300)) * 3).astype(dtype)
    b = (rng.standard_normal(300) * 0.1).astype(dtype)
    y = z.copy()
    for i in range(len(y)):
        activations.bias_activate_row(y, i, b, code)
    assert_same_bits(y, np.tanh(z + b) if code == activations.TANH_NUMPY_SIMD else libm_tanh(z + b))


@jit
def libm_tanh(z):
    out = np.empty_like(z)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = math.tanh(z[i, j])
    return out


LIBM_CHILD = """
import json
import numpy as np
from fastscratch.kernels import activations, fasttanh
from test_fasttanh import nans
rng = np.random.default_rng(0)
same = {}
for dtype in (np.float64, np.float32):
    z = np.concatenate([(rng.standard_normal((4, 5000)) * 3).astype(dtype), np.resize(nans(dtype), (1, 5000))])
    b = np.zeros(5000, dtype)
    y = z.copy()
    for i in range(len(y)):
        activations.bias_activate_row(y, i, b, activations.TANH)
    same[np.dtype(dtype).name] = y.tobytes() == np.tanh(z).tobytes()
print(json.dumps({"simd": fasttanh.NUMPY_TANH_IS_SIMD, "libm_code": activations.TANH == activations.TANH_LIBM,
                  "same": same}))
"""


@pytest.mark.skipif(not JIT, reason="the choice is between compiled kernels")
def test_where_numpy_calls_libm_so_do_the_kernels():
    """NumPy with its dispatched SIMD loops switched off (``NPY_DISABLE_CPU_FEATURES``) calls libm's tanh: the
    built-in tanh's code is then libm's, and the kernel gives np.tanh's bits there too, NaNs' included (libm
    keeps their sign and payload, quietened)."""
    from numpy._core._multiarray_umath import __cpu_dispatch__
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(__cpu_dispatch__)}
    run = subprocess.run([sys.executable, "-c", LIBM_CHILD], capture_output=True,
                         text=True, env=env, timeout=300, cwd=os.path.dirname(__file__), stdin=subprocess.DEVNULL)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.splitlines()[-1]) == {"simd": False, "libm_code": True,
                                                        "same": {"float64": True, "float32": True}}
