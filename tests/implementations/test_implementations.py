"""Every implementation against the reference: same start, same batches, same losses and accuracies."""
import subprocess
import sys

import numpy as np
import pytest

from fastscratch import implementations
from fastscratch.implementations import Config

RTOL = {"float64": 1e-9, "float32": 1e-4}  # float32: the peers sum in other orders
#: (implementation, device); the GPU ones are skipped where this machine has no GPU, never imitated
PEERS = [("jit", "cpu"), ("torch", "cpu"), ("jax", "cpu"), ("torch", "cuda"), ("torch-graph", "cuda"), ("jax", "cuda")]


@pytest.fixture(scope="module")
def mnist_subsets(mnist_raw):
    """``subset(dtype)`` -> 600 training and 200 test rows of real MNIST in that dtype."""
    from fastscratch.datasets import prepare
    cache = {}

    def get(dtype):
        if dtype not in cache:
            X, Y, Xt, yt = prepare(*mnist_raw, dtype=np.dtype(dtype).type)
            cache[dtype] = (X[:600], Y[:600], Xt[:200], yt[:200])
        return cache[dtype]
    return get


def available(name, device="cpu"):
    """Skip unless ``name`` is installed and this machine has ``device``."""
    try:
        runner = implementations.get(name)
    except ImportError as err:
        pytest.skip(str(err))
    try:
        runner.device_facts(Config(name, device=device))
    except RuntimeError as err:
        pytest.skip(f"no {device} here: {err}")


@pytest.mark.parametrize("name, device", PEERS)
@pytest.mark.parametrize("hidden, batch, activation, loss, dtype", [
    ((64, 32), 30, "sigmoid", "l2", "float64"),
    ((64, 32), 30, "sigmoid", "l2", "float32"),
    ((17,), 7, "tanh", "l2", "float32"),
    ((9, 5, 3), 40, "sigmoid", "cross_entropy", "float64"),
    ((33, 12), 1, "relu", "l2", "float64"),
])
def test_matches_reference(mnist_subsets, name, device, dtype, hidden, batch, activation, loss):
    available(name, device)
    data = mnist_subsets(dtype)
    if batch == 1:
        data = tuple(a[:150] for a in data)
    cell = dict(dtype=dtype, hidden=hidden, batch_size=batch, activation=activation, loss=loss,
                learning_rate=1e-3 if activation != "relu" else 1e-4, epochs=2, seed=7)
    ours = implementations.run(Config(name, device=device, **cell), data)
    ref = implementations.run(Config("reference", **cell), data)
    np.testing.assert_allclose(ours.losses, ref.losses, rtol=RTOL[dtype])
    np.testing.assert_allclose(ours.accuracies, ref.accuracies, atol=1 / len(data[2]) + 1e-12)
    assert ours.equivalence_steps == min(implementations.EQUIVALENCE_STEPS, len(data[0]) // batch)
    assert 0 <= ours.max_rel_diff_vs_reference <= RTOL[dtype]
    assert ref.max_rel_diff_vs_reference is None
    for result in (ours, ref):
        assert len(result.seconds_per_epoch) == 2 and all(s > 0 for s in result.seconds_per_epoch)
        assert result.warmup_seconds > 0
        assert result.threads["numba"] == 1 and set(result.threads["blas"].values()) == {1}


def test_equivalence_detects_a_different_computation(mnist_subsets, monkeypatch):
    """A runner that trains with another learning rate is caught by max_rel_diff_vs_reference."""
    runner = implementations.get("jit")
    original = runner.step_losses
    monkeypatch.setattr(runner, "step_losses", lambda config, *a: original(
        Config(**{**config.asdict(), "learning_rate": config.learning_rate * 1.01}), *a))
    result = implementations.run(Config("jit", hidden=(8,), epochs=1), mnist_subsets("float64"))
    assert result.max_rel_diff_vs_reference > 1e-6


@pytest.mark.parametrize("name", ["torch", "torch-graph", "jax"])
def test_a_gpu_cells_yardstick_is_the_reference_on_the_cpu(mnist_subsets, name):
    """The equivalence check of a cuda cell runs the reference (CPU only) with the cell's other settings: it
    used to ask for a reference cell on cuda, which Config refuses, so every GPU cell failed after training."""
    data = mnist_subsets("float64")
    on_cpu = Config("reference", hidden=(6,))
    expected = implementations.get("reference").step_losses(on_cpu, data, implementations.initial_weights(on_cpu), 3)
    assert implementations.reference_step_losses(Config(name, device="cuda", hidden=(6,)), data, 3) == expected


def test_same_start_for_every_implementation():
    cfg = Config("reference", hidden=(5, 4), seed=3)
    first = implementations.initial_weights(cfg)
    again = implementations.initial_weights(Config("torch", hidden=(5, 4), seed=3))
    other = implementations.initial_weights(Config("reference", hidden=(5, 4), seed=4))
    assert [w.shape for w, _ in first] == [(784, 5), (5, 4), (4, 10)]
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    assert not np.array_equal(first[0][0], other[0][0])


@pytest.mark.parametrize("field, value, words", [
    ("implementation", "numpy", "allowed: jax, jit, reference, torch, torch-graph"),
    ("device", "tpu", "unknown device 'tpu'; allowed: cpu, cuda"),
    ("dataset", "cifar", "allowed: fashion-mnist, mnist"),
    ("dtype", "float16", "allowed: float32, float64"),
    ("activation", "gelu", "allowed: relu, sigmoid, tanh"),
    ("loss", "hinge", "allowed: cross_entropy, l2"),
    ("batch_size", 0, "batch_size must be between 1 and 60000, got 0"),
    ("seed", 2**32, "seed must be between 0 and 4294967295"),
    ("epochs", 2.0, "epochs must be an integer"),
    ("hidden", (4, 0), r"hidden sizes must be between 1 and 65536, got \[4, 0\]"),
    ("learning_rate", float("nan"), "learning_rate must be finite"),
])
def test_bad_config(field, value, words):
    with pytest.raises(ValueError, match=words):
        Config(**{"implementation": "jit", field: value})


def test_bad_data(mnist_subsets):
    X, Y, Xt, yt = mnist_subsets("float64")
    with pytest.raises(TypeError, match="X_train must be float32"):
        implementations.run(Config("jit", dtype="float32"), (X, Y, Xt, yt))
    with pytest.raises(ValueError, match="batch_size 50 is larger than the 40 training rows"):
        implementations.run(Config("jit", batch_size=50), (X[:40], Y[:40], Xt, yt))


def test_threads_beyond_numba_limit_are_refused(mnist_subsets):
    import numba
    with pytest.raises(RuntimeError, match="exceeds NUMBA_NUM_THREADS"):
        implementations.run(Config("jit", threads=numba.config.NUMBA_NUM_THREADS + 1), mnist_subsets("float64"))


def test_missing_peer_names_the_extra():
    """With torch unimportable, get('torch') says which extra installs it (in a child: sys.modules stays clean)."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from fastscratch import implementations\n"
            "try:\n    implementations.get('torch')\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"implementation 'torch' needs torch, which is not installed: `{sys.executable} -m pip install torch`" in out
    assert "make peers" in out


def test_missing_says_what_is_absent_without_importing_it():
    assert implementations.missing("jit") == ()
    code = ("import sys; sys.modules['torch'] = None\nfrom fastscratch import implementations\n"
            "print(implementations.missing('torch'), 'torch' in sys.modules and sys.modules['torch'] is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == "('torch',)"


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown implementation 'tf'; allowed: jax, jit, reference, torch, "
                                         "torch-graph"):
        implementations.get("tf")


def test_jit_warmup_prepares_the_data_as_the_peers_do(mnist_subsets, monkeypatch):
    """After the jit run's warm-up, the timed call indexes nothing: the data's index is kept, as
    the torch and jax runs hold their tensors before the timing starts."""
    from fastscratch import inputs, kept_data
    config = Config("jit", hidden=(16,), epochs=1)
    data = mnist_subsets("float64")
    timed_run = implementations.get("jit").prepare(config, data, implementations.initial_weights(config))
    timed_run.warmup()
    indexed, index = [], inputs.nonzero_structure
    monkeypatch.setattr(inputs, "nonzero_structure", lambda X, *a: indexed.append(len(X)) or index(X, *a))
    monkeypatch.setattr(kept_data, "batch_structure", lambda *a: pytest.fail("batch structures rebuilt"))
    timed_run.train(lambda loss, accuracy: None)
    assert set(indexed) <= {1}  # single rows only: the last test row the evaluation leaves on the layers


@pytest.mark.parametrize("name, device, words", [
    ("jit", "cuda", "implementation 'jit' runs on cpu only, not on device 'cuda'"),
    ("reference", "cuda", "implementation 'reference' runs on cpu only"),
    ("torch-graph", "cpu", "implementation 'torch-graph' runs on cuda only, not on device 'cpu'"),
])
def test_devices_an_implementation_refuses(name, device, words):
    with pytest.raises(ValueError, match=words):
        Config(name, device=device)


@pytest.mark.parametrize("name", ["torch", "torch-graph", "jax"])
def test_a_gpu_cell_without_a_gpu_is_a_clear_error(mnist_subsets, name):
    try:
        runner = implementations.get(name)
    except ImportError as err:
        pytest.skip(str(err))
    config = Config(name, device="cuda", hidden=(6,))
    try:
        runner.device_facts(config)
    except RuntimeError:
        pass
    else:
        pytest.skip("this machine has a GPU")
    with pytest.raises(RuntimeError, match="device 'cuda': (PyTorch .* sees no CUDA GPU|JAX .* has no cuda backend)"):
        implementations.run(config, mnist_subsets("float64"))


def test_jax_on_cpu_stays_on_the_cpu(mnist_subsets):
    """The arrays of a `cpu` cell are committed to JAX's CPU device, whatever JAX's default device is."""
    available("jax")
    jax = implementations.get("jax")
    config = Config("jax", hidden=(6,))
    timed_run = jax.prepare(config, mnist_subsets("float64"), implementations.initial_weights(config))
    leaves = [a for layer in timed_run.args[0] for a in layer] + list(timed_run.args[1:])
    assert {d.platform for a in leaves for d in a.devices()} == {"cpu"}
    assert jax.device_facts(config)["device"] == "cpu"


def test_device_facts_of_the_cpu():
    for name in ("reference", "jit"):
        assert implementations.get(name).device_facts(Config(name)) == {"device": "cpu"}
