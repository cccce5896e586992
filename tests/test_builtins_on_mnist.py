"""Every built-in activation and loss trains real MNIST to the reference's numbers, on every SIMD variant.

Per built-in (sigmoid, relu and tanh with the L2 loss; cross-entropy with sigmoid) and dtype: three epochs of
1,500 MNIST rows through 784-64-32-10 at batch 30, in a fresh process per variant (plain and each vector width
the CPU has: ``FASTSCRATCH_SIMD`` is read at import). Every variant gives the same bits; against the
reference, float64 losses and weights agree within 1e-9 (accuracies equal), float32 losses within 1e-5 and weights
within 5e-5 (the kernels sum in another order than BLAS: float32 weights part in their last bits).

Each built-in trains at a learning rate where the reference's own trajectory is stable: moving one weight by
one ulp moves its losses by less than 1e-12 (float64). At the tutorial's 1e-3 a tanh network is not: that
one ulp moves the reference's third-epoch loss by ~1e-4, so no two correct implementations whose sums are
rounded in a different order can agree there (docs/numerics.md); and a ReLU network dies (loss exactly 1.0
from the second epoch), which any implementation matches. The tanh kernel's agreement with ``np.tanh`` bit
for bit is tested on its own (tests/kernels/test_fasttanh.py).
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

from fastscratch import functions, reference
from fastscratch.kernels import simd

pytestmark = pytest.mark.skipif(config.DISABLE_JIT, reason="runs its own variants in fresh processes")

#: built-in -> (activation, loss, learning rate).
CASES = {"sigmoid": ("sigmoid", "l2", 1e-3), "relu": ("relu", "l2", 1e-7), "tanh": ("tanh", "l2", 3e-4),
         "cross_entropy": ("sigmoid", "cross_entropy", 1e-3)}
DTYPES = ["float64", "float32"]
ROWS, EPOCHS, BATCH = 1500, 3, 30
RTOL = {"float64": 1e-9, "float32": 1e-5}
#: Weights start standard normal: float32 ones part from the reference's by up to ~5e-6 (measured).
ATOL = {"float64": 1e-12, "float32": 5e-5}

TRAIN = textwrap.dedent("""
    import functools
    import numpy as np
    from fastscratch import functions
    from fastscratch.datasets import load_mnist, prepare

    @functools.cache
    def data(mnist_dir):
        X, y, X_test, y_test = load_mnist(mnist_dir)
        return prepare(X[:{rows}], y[:{rows}], X_test[:500], y_test[:500])

    def train(network_class, case, dtype, mnist_dir):
        activation, loss, learning_rate = case
        X, Y, X_test, y_test = data(mnist_dir)
        np.random.seed(1)
        net = network_class(784, 10, [64, 32], *functions.ACTIVATIONS[activation], *functions.LOSSES[loss],
                            dtype=dtype)
        losses, accuracies = net.train(X, Y, X_test, y_test, batch_size={batch}, num_epochs={epochs},
                                       learning_rate=learning_rate, verbose=False)
        return {{"losses": [float(v) for v in losses], "accuracies": accuracies,
                 "weights": [layer.W.tobytes().hex() + layer.b.tobytes().hex() for layer in net.layers],
                 "W": [layer.W.tobytes().hex() for layer in net.layers]}}
""").format(rows=ROWS, batch=BATCH, epochs=EPOCHS)

CHILD = TRAIN + textwrap.dedent("""
    import json, sys
    import fastscratch
    from fastscratch.kernels import simd
    cases, mnist_dir = json.loads(sys.argv[1]), sys.argv[2]
    print(json.dumps({"bits": simd.VECTOR_BITS,
                      "runs": {name + " " + dtype: train(fastscratch.SimpleNetwork, case, dtype, mnist_dir)
                               for name, case in cases.items() for dtype in %r}}))
""" % DTYPES)


def variants():
    """(name, environment): plain and each vector width this CPU has."""
    widest = simd.widest_vector_bits(simd.cpu_target()[1])
    return [("plain", {"FASTSCRATCH_SIMD": "plain"})] + [
        (str(bits), {"FASTSCRATCH_SIMD": str(bits)}) for bits in simd.WIDTHS if bits <= widest]


def run(environment, mnist_dir):
    env = {key: value for key, value in os.environ.items()
           if key not in ("FASTSCRATCH_SIMD", "NUMBA_DISABLE_JIT", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(CASES), mnist_dir], capture_output=True,
                            text=True, timeout=600, env={**env, **environment})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def drop_in(mnist_dir):
    names, environments = zip(*variants())
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(names, pool.map(lambda environment: run(environment, mnist_dir), environments)))


@pytest.fixture(scope="module")
def train():
    namespace = {}
    exec(TRAIN, namespace)  # the very function the children run
    return namespace["train"]


def weights(run, dtype):
    return [np.frombuffer(bytes.fromhex(W), dtype=dtype).astype(np.float64) for W in run["W"]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("builtin", list(CASES))
def test_matches_the_reference_on_every_variant(builtin, dtype, drop_in, train, mnist_dir):
    expected = train(reference.SimpleNetwork, CASES[builtin], dtype, mnist_dir)
    assert np.ptp(expected["losses"]) > 1e-3 * abs(expected["losses"][0])  # it trains: the loss moves
    first_name, first = next(iter(drop_in.items()))
    for name, result in drop_in.items():
        got = result["runs"][builtin + " " + dtype]
        assert got["weights"] == first["runs"][builtin + " " + dtype]["weights"], f"{name} differs from {first_name}"
        np.testing.assert_allclose(got["losses"], expected["losses"], rtol=RTOL[dtype])
        if dtype == "float64":
            assert got["accuracies"] == expected["accuracies"]
        for got_W, expected_W in zip(weights(got, dtype), weights(expected, dtype)):
            np.testing.assert_allclose(got_W, expected_W, rtol=RTOL[dtype], atol=ATOL[dtype])


def test_every_variant_ran_at_its_width(drop_in):
    assert {name: result["bits"] for name, result in drop_in.items()} == {
        name: 0 if name == "plain" else int(name) for name, _ in variants()}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_forward_is_the_references_bit_for_bit_where_the_products_are_exact(activation, dtype, mnist_raw):
    """Binarized MNIST through dyadic weights (8 bits): every sum is exact in any order, so the drop-in's outputs
    are the reference's bit for bit, activation included. (Sigmoid's exp is within an ulp of NumPy's: not here.)"""
    import fastscratch
    X = (mnist_raw[2][:1000].reshape(1000, -1) > 127).astype(dtype)
    rng = np.random.default_rng(0)
    W, b = (rng.integers(-256, 257, (784, 10)) / 256).astype(dtype), (rng.integers(-256, 257, 10) / 256).astype(dtype)
    outputs = []
    for network_class in (fastscratch.SimpleNetwork, reference.SimpleNetwork):
        net = network_class(784, 10, [], *functions.ACTIVATIONS[activation], dtype=dtype)
        net.layers[0].W, net.layers[0].b = W.copy(), b.copy()
        outputs.append(net.forward(X))
    assert outputs[0].tobytes() == outputs[1].tobytes()
