"""Twin networks for the tests: a reference and a drop-in network with the same weights, trained alike."""
import warnings

import numpy as np

import fastscratch
from fastscratch import reference

FLAVOURS = {"reference": reference, "jit": fastscratch}


def pair(hidden=(6,), num_inputs=12, num_outputs=4, seed=3, **kwargs):
    """A reference and a JIT network with the same weights."""
    nets = []
    for module in (reference, fastscratch):
        np.random.seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastscratch.FallbackWarning)
            nets.append(module.SimpleNetwork(num_inputs, num_outputs, list(hidden), **kwargs))
    return nets


def problem(rng, n, num_inputs=12, num_outputs=4):
    """X about 75% zeros: sparse enough for compiled epochs past 127 rows (``config.KERNEL_SPARSE_INPUT``)."""
    X = rng.random((n, num_inputs)) * (rng.random((n, num_inputs)) > 0.75)
    return X, np.eye(num_outputs)[rng.integers(0, num_outputs, n)]


def train_both(nets, *args, callback_of=None, **kwargs):
    """Train each network alike; ``callback_of(net)`` builds each one's callback."""
    results = []
    for net in nets:
        callback = callback_of(net) if callback_of else None
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", fastscratch.FallbackWarning)
            results.append(net.train(*args, verbose=False, callback=callback, **kwargs))
    return results


def assert_same(nets, results, rtol=1e-10):
    (ref, jit), (expected, got) = nets, results
    np.testing.assert_allclose(got[0], expected[0], rtol=rtol)
    assert got[1] == expected[1]
    for r, j in zip(ref.layers, jit.layers):
        np.testing.assert_allclose(j.W, r.W, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(j.b, r.b, rtol=rtol, atol=rtol)
