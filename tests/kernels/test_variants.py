"""Every SIMD variant this CPU can run trains a network to the same bits, in a fresh process each.

``FASTSCRATCH_SIMD`` is read once at import, so each variant runs in its own
interpreter: plain, each width the CPU has, auto, a portable ``generic`` CPU
target (whose fused multiply-adds are libm's ``fma``), and
``NUMBA_DISABLE_JIT=1`` (the plain twins as Python). Each trains the same
small float64 and float32 networks (widths that leave tails at every vector
width, a first layer past the prefetch threshold, two layers with more inputs
than a block) for two epochs; the weights and losses must be identical across the
compiled variants, close to them as Python (whose multiply-adds round twice)
and close to the reference's (which sums through BLAS, in another order).
"""
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from numba import config

from fastscratch.kernels import simd

pytestmark = pytest.mark.skipif(config.DISABLE_JIT, reason="runs its own variants, NUMBA_DISABLE_JIT among them")

CHILD = textwrap.dedent("""
    import json, warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        import numpy as np
        import fastscratch, fastscratch.reference as ref
        from fastscratch.kernels import simd
    rng = np.random.default_rng(7)
    X = rng.random((90, 100)) * (rng.random((90, 100)) > 0.7)
    Y = np.eye(10)[rng.integers(0, 10, 90)]
    labels = rng.integers(0, 10, 40)
    runs = {}
    for dtype in (np.float64, np.float32):
        result = {}
        for name, network_class in (("fastscratch", fastscratch.SimpleNetwork), ("reference", ref.SimpleNetwork)):
            np.random.seed(3)
            net = network_class(100, 10, [70, 20], dtype=dtype) if name == "fastscratch" else network_class(
                100, 10, [70, 20])
            losses, accuracies = net.train(X, Y, X[:40], labels, batch_size=30, num_epochs=2, verbose=False)
            result[name] = {"losses": [float(v) for v in losses], "accuracies": [float(v) for v in accuracies],
                            "weights": [layer.W.tobytes().hex() + layer.b.tobytes().hex() for layer in net.layers],
                            "W": [layer.W.astype(np.float64).tolist() for layer in net.layers]}
        runs[np.dtype(dtype).name] = result
    print(json.dumps({"bits": simd.VECTOR_BITS, "runs": runs,
                      "warnings": [[w.category.__name__, str(w.message)] for w in caught]}))
""")


def variants():
    """(name, environment) of every variant to run here."""
    widest = simd.widest_vector_bits(simd.cpu_target()[1])
    found = [("plain", {"FASTSCRATCH_SIMD": "plain"})]
    found += [(str(bits), {"FASTSCRATCH_SIMD": str(bits)}) for bits in simd.WIDTHS if bits <= widest]
    found += [("auto", {}), ("generic", {"NUMBA_CPU_NAME": "generic"}), ("python", {"NUMBA_DISABLE_JIT": "1"})]
    return found


def run(environment):
    env = {key: value for key, value in os.environ.items()
           if key not in ("FASTSCRATCH_SIMD", "NUMBA_DISABLE_JIT", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    result = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=600,
                            env={**env, **environment})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def results():
    names, environments = zip(*variants())
    with ThreadPoolExecutor(2) as pool:  # two at a time: each compiles its kernels the first time
        return dict(zip(names, pool.map(run, environments)))


def test_each_variant_uses_its_width(results):
    widest = simd.widest_vector_bits(simd.cpu_target()[1])
    expected = {"plain": 0, "python": 0, "auto": widest, "generic": 128, **{str(b): b for b in simd.WIDTHS}}
    for name, result in results.items():
        assert result["bits"] == expected[name], name
        # (A CacheWarning may come from where the suite runs, e.g. a group-writable checkout: not this test's.)
        assert [w for w in result["warnings"] if w[0] != "CacheWarning"] == [], (name, result["warnings"])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_compiled_variant_trains_to_the_same_bits(results, dtype):
    first_name, first = next(iter(results.items()))
    for name, result in results.items():
        if name == "python":
            continue
        got, expected = result["runs"][dtype]["fastscratch"], first["runs"][dtype]["fastscratch"]
        assert got["weights"] == expected["weights"], f"{name} differs from {first_name}"
        assert got["accuracies"] == expected["accuracies"], name
        assert got["losses"] == expected["losses"], name


#: Python against the compiled variants: float64 at the kernels' per-call tolerance (tests/kernels/oracle.RTOL),
#: float32 within what a multiply-add rounded twice in float32 moves two epochs of training.
PYTHON_RTOL = {"float64": 1e-12, "float32": 1e-5}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_python_trains_to_the_same_numbers(results, dtype):
    got, expected = results["python"]["runs"][dtype]["fastscratch"], results["auto"]["runs"][dtype]["fastscratch"]
    np.testing.assert_allclose(got["losses"], expected["losses"], rtol=PYTHON_RTOL[dtype])
    assert got["accuracies"] == expected["accuracies"]
    for got_W, expected_W in zip(got["W"], expected["W"]):
        np.testing.assert_allclose(got_W, expected_W, rtol=PYTHON_RTOL[dtype], atol=PYTHON_RTOL[dtype])


def test_training_matches_the_reference(results):
    runs = results["auto"]["runs"]["float64"]
    np.testing.assert_allclose(runs["fastscratch"]["losses"], runs["reference"]["losses"], rtol=1e-12)
    for got, expected in zip(runs["fastscratch"]["W"], runs["reference"]["W"]):
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-13)
    assert runs["fastscratch"]["accuracies"] == runs["reference"]["accuracies"]


SETTINGS = textwrap.dedent("""
    import json, warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        from fastscratch.kernels import simd
    print(json.dumps({"bits": simd.VECTOR_BITS, "warnings": [str(w.message) for w in caught]}))
""")


@pytest.mark.parametrize("environment, bits, warning", [
    ({"FASTSCRATCH_SIMD": "512", "NUMBA_CPU_NAME": "generic"}, 128, "no 512-bit vectors; using 128-bit"),
    ({"FASTSCRATCH_SIMD": "256", "NUMBA_CPU_NAME": "generic"}, 128, "no 256-bit vectors; using 128-bit"),
    ({"FASTSCRATCH_SIMD": "avx9"}, None, "FASTSCRATCH_SIMD='avx9' is not one of auto, plain, 128, 256, 512"),
    ({"FASTSCRATCH_SIMD": " Plain "}, 0, None),
    ({"NUMBA_CPU_NAME": "haswell", "NUMBA_CPU_FEATURES": "+avx,+avx2,+fma,+sse2"}, 256, None),
])
def test_settings_a_cpu_cannot_honour_warn_and_fall_back(environment, bits, warning):
    env = {key: value for key, value in os.environ.items() if key not in ("FASTSCRATCH_SIMD", "NUMBA_DISABLE_JIT")}
    result = subprocess.run([sys.executable, "-c", SETTINGS], capture_output=True, text=True, timeout=120,
                            env={**env, **environment})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    expected_bits = simd.widest_vector_bits(simd.cpu_target()[1]) if bits is None else bits
    assert report["bits"] == expected_bits
    simd_warnings = [message for message in report["warnings"] if "FASTSCRATCH_SIMD" in message]
    assert [warning in message for message in simd_warnings] == ([True] if warning else [])
