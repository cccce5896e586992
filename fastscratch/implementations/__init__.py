"""Implementations of the tutorial's job, by name: one runner per implementation, imported when used.

A runner trains one :class:`Config` (the tutorial's network with the cell's sizes,
activation, loss, dtype and batches) from the reference's starting weights for
the seed, on the same batches in the same order, and returns a :class:`Result`
with per-epoch losses, accuracies and seconds, its warm-up timed apart::

    from fastscratch import implementations
    result = implementations.run(Config(implementation="jit", ...), data)

``run`` pins the thread counts, draws the weights, runs, and (for anything but
the reference) adds ``max_rel_diff_vs_reference``: the largest relative
difference of the loss of each of the first ``EQUIVALENCE_STEPS`` SGD steps from
the reference's, on an untimed run from the same weights.

``reference`` and ``jit`` need only fastscratch; ``torch`` and ``jax`` need
PyTorch and JAX (``missing`` says which are absent, ``install_hint`` how to add them).
"""
import dataclasses
import importlib
import importlib.util
import sys
import time

import numpy as np

from fastscratch.functions import ACTIVATIONS, LOSSES

#: name -> (module under fastscratch.implementations, the packages it needs beyond fastscratch's own, the devices
#: it runs on)
IMPLEMENTATIONS = {
    "reference": ("reference", (), ("cpu",)),
    "jit": ("jit", (), ("cpu",)),
    "torch": ("torch", ("torch",), ("cpu", "cuda")),
    "torch-graph": ("torch_graph", ("torch",), ("cuda",)),
    "jax": ("jax", ("jax",), ("cpu", "cuda")),
}
DTYPES = ("float64", "float32")
DEVICES = ("cpu", "cuda")
#: the datasets of fastscratch.datasets a cell may train on (MNIST and its drop-in, same shapes)
DATASETS = ("mnist", "fashion-mnist")
NUM_INPUTS, NUM_OUTPUTS = 784, 10
#: SGD steps compared with the reference, from the cell's starting weights (fewer when an epoch has fewer).
EQUIVALENCE_STEPS = 50
#: field -> (smallest, largest) value a runner accepts: NumPy's seeds are 32-bit, and the others are bounds
#: past which a cell is a typo (60,000 rows a batch, 10,000 epochs, 1,024 threads, 65,536 units a layer).
RANGES = {"batch_size": (1, 60000), "epochs": (1, 10000), "seed": (0, 2**32 - 1), "threads": (1, 1024),
          "hidden": (1, 65536)}


@dataclasses.dataclass(frozen=True)
class Config:
    """One cell: the tutorial's job with these settings (``hidden`` from input to output)."""
    implementation: str
    dtype: str = "float64"
    hidden: tuple = (64, 32)
    batch_size: int = 30
    activation: str = "sigmoid"
    loss: str = "l2"
    learning_rate: float = 1e-3
    epochs: int = 1
    seed: int = 42
    threads: int = 1
    device: str = "cpu"
    dataset: str = "mnist"

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        _choice("implementation", self.implementation, IMPLEMENTATIONS)
        _choice("device", self.device, DEVICES)
        _choice("dataset", self.dataset, DATASETS)
        devices = IMPLEMENTATIONS[self.implementation][2]
        if self.device not in devices:
            raise ValueError(f"implementation {self.implementation!r} runs on {' or '.join(devices)} only, not on "
                             f"device {self.device!r}")
        _choice("dtype", self.dtype, DTYPES)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("loss", self.loss, LOSSES)
        for name, (low, high) in RANGES.items():
            for value in self.hidden if name == "hidden" else (getattr(self, name),):
                if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                    raise ValueError(f"{name} must be an integer, got {value!r}")
                if not low <= value <= high:
                    raise ValueError(f"{'hidden sizes' if name == 'hidden' else name} must be between {low} and "
                                     f"{high}, got {list(self.hidden) if name == 'hidden' else value}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be finite and > 0, got {self.learning_rate}")

    def asdict(self):
        return {**dataclasses.asdict(self), "hidden": list(self.hidden)}


@dataclasses.dataclass
class Result:
    """What a runner measured: one value per epoch (accuracy on the test rows after each epoch)."""
    losses: list
    accuracies: list
    seconds_per_epoch: list
    warmup_seconds: float
    threads: dict = dataclasses.field(default_factory=dict)
    max_rel_diff_vs_reference: float = None
    equivalence_steps: int = None


def _choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(sorted(allowed))}")


def get(name):
    """The runner module of implementation ``name``, imported now.

    A runner module has ``prepare(config, data, weights)``, returning a run
    (``NetworkRun``, ``TorchRun``, ``GraphRun``, ``JaxRun``) with ``warmup()`` (compile, load caches, touch the code paths, move the data
    to the device; on copies of the weights, finished when it returns) and
    ``train(callback)`` (all ``config.epochs`` epochs from ``weights``, calling
    ``callback(loss, accuracy)`` after each, evaluation included, with the
    device's work finished before each call), plus ``step_losses(config, data,
    weights, steps)``, ``version()``, ``device_facts(config)`` (what the
    framework says of the device a cell runs on) and ``NOTES``. A runner asked
    for a device this machine does not have raises a RuntimeError saying so.
    """
    _choice("implementation", name, IMPLEMENTATIONS)
    module, packages, _ = IMPLEMENTATIONS[name]
    try:
        return importlib.import_module(f"{__name__}.{module}")
    except ImportError as err:
        if not packages:
            raise
        raise ImportError(f"implementation {name!r} needs {err.name or 'a missing package'}, which is not "
                          f"installed: {install_hint(packages)}") from err


def missing(name):
    """The packages implementation ``name`` needs that this Python cannot find (without importing them)."""
    return tuple(p for p in IMPLEMENTATIONS[name][1] if importlib.util.find_spec(p) is None)


def install_hint(packages):
    """How to install ``packages`` into the Python running now, from wherever the user is."""
    return (f"`{sys.executable} -m pip install {' '.join(packages)}` (in a clone of fastscratch: `make peers`, "
            "which installs PyTorch's CPU build and JAX)")


def initial_weights(config):
    """[(W, b), ...] of the reference network for the seed, drawn as the tutorial does (image index first)."""
    from fastscratch.reference import SimpleNetwork
    np.random.seed(config.seed)
    np.random.randint(0, 10000)  # the tutorial's img_idx draw, made before the network
    net = SimpleNetwork(NUM_INPUTS, NUM_OUTPUTS, list(config.hidden), dtype=np.dtype(config.dtype).type)
    return [(layer.W.copy(), layer.b.copy()) for layer in net.layers]


def check_data(config, data):
    """``data`` = (X_train, Y_train one-hot, X_test, y_test) in the cell's dtype, with at least one batch."""
    X_train, Y_train, X_test, y_test = data
    dtype = np.dtype(config.dtype)
    for name, a in (("X_train", X_train), ("Y_train", Y_train), ("X_test", X_test)):
        if a.dtype != dtype:
            raise TypeError(f"{name} must be {dtype} for this cell, got {a.dtype}")
    if len(X_train) < config.batch_size:
        raise ValueError(f"batch_size {config.batch_size} is larger than the {len(X_train)} training rows")
    if X_train.shape[1] != NUM_INPUTS or Y_train.shape[1] != NUM_OUTPUTS or len(Y_train) != len(X_train):
        raise ValueError(f"expected (n, {NUM_INPUTS}) images and (n, {NUM_OUTPUTS}) one-hot targets, got "
                         f"{X_train.shape} and {Y_train.shape}")
    if len(X_test) != len(y_test) or len(X_test) == 0:
        raise ValueError(f"X_test {X_test.shape} and y_test {np.shape(y_test)} must be non-empty and match")


def run(config, data, *, equivalence=True):
    """Train ``config`` on ``data`` with thread counts pinned to ``config.threads``; return a :class:`Result`.

    Seconds per epoch are taken inside the run's ``train`` at each epoch's
    callback (the first includes what a ``train`` call sets up, as a user pays
    it); the warm-up before it is timed alone.
    """
    runner = get(config.implementation)
    check_data(config, data)
    weights = initial_weights(config)
    from fastscratch.implementations._threads import pinned
    with pinned(config.threads) as threads:
        timed_run = runner.prepare(config, data, weights)
        start = time.perf_counter()
        timed_run.warmup()
        warmup = time.perf_counter() - start
        losses, accuracies, stamps = [], [], []

        def callback(loss, accuracy):
            stamps.append(time.perf_counter())
            losses.append(float(loss))
            accuracies.append(float(accuracy))
        start = time.perf_counter()
        timed_run.train(callback)
        if len(stamps) != config.epochs:
            raise RuntimeError(f"{config.implementation} ran {len(stamps)} epochs instead of {config.epochs}")
        seconds = [b - a for a, b in zip([start] + stamps[:-1], stamps)]
        result = Result(losses, accuracies, seconds, warmup, threads())
        if equivalence and config.implementation != "reference":
            steps = min(EQUIVALENCE_STEPS, len(data[0]) // config.batch_size)
            ours = np.asarray(runner.step_losses(config, data, weights, steps), dtype=np.float64)
            theirs = np.asarray(reference_step_losses(config, data, steps), dtype=np.float64)
            result.max_rel_diff_vs_reference = float(np.max(np.abs(ours - theirs) / np.abs(theirs)))
            result.equivalence_steps = steps
    return result


_REFERENCE_STEPS = {}


def reference_step_losses(config, data, steps):
    """The reference's first ``steps`` step losses for the cell (implementation aside).

    The last one is kept per process, with the training array it came from, so
    the cells of one study that share settings and data compute it once.
    """
    # The reference runs on the CPU only: a cuda cell's yardstick is the same settings on the CPU.
    key = (dataclasses.replace(config, implementation="reference", device="cpu", epochs=1, threads=1), steps)
    cached = _REFERENCE_STEPS.get(key)
    if cached is None or cached[0] is not data[0]:
        _REFERENCE_STEPS.clear()
        cached = _REFERENCE_STEPS[key] = (data[0], get("reference").step_losses(
            config, data, initial_weights(config), steps))
    return cached[1]
