"""Shared benchmark fixtures: prepared MNIST, seeded networks, and the facts every result records.

Ratios against the reference are measured in the same run: each reference
benchmark stores its median in ``REFERENCE_MEDIANS`` under ``(config, dtype)``,
and ``pytest_collection_modifyitems`` runs every reference benchmark before the
others, so the JIT and peer benchmarks find it there. ``benchmarks/render.py``
recomputes the same ratios from the saved JSON.
"""
import os
import sys

import numpy as np
import pytest

SEED = 42                 # the tutorial's np.random.seed(42)
SEED_HIDDEN = (64, 32)    # the tutorial's hidden_layers_sizes
SEED_BATCH = 30
SEED_LR = 1e-3
NUM_INPUTS, NUM_OUTPUTS = 784, 10
DTYPES = {"float64": np.float64, "float32": np.float32}
HERE = os.path.dirname(os.path.abspath(__file__))

# (config, dtype name) -> (median seconds, variant) of the fastest reference variant in this session.
REFERENCE_MEDIANS = {}
# (config, dtype name) -> (losses, accuracies) of the reference, for the correctness checks.
REFERENCE_RESULTS = {}


def pytest_collection_modifyitems(session, config, items):
    """Run benchmark modules in file order, and within each one the reference first.

    Only items under ``benchmarks/`` move, and only among their own slots.
    """
    slots = [i for i, item in enumerate(items) if str(item.path).startswith(HERE + os.sep)]

    def key(i):
        item = items[i]
        params = getattr(getattr(item, "callspec", None), "params", {})
        return str(item.path), not str(params.get("impl", "")).startswith("reference")

    ordered = sorted(slots, key=key)  # stable: keeps parametrisation order otherwise
    moved = [items[i] for i in ordered]
    for slot, item in zip(slots, moved):
        items[slot] = item


# --- data -------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def mnist_raw():
    """The four uint8 arrays: from FASTSCRATCH_MNIST_DIR, else fastscratch's download cache (never a
    download from here); skips when neither has them."""
    from fastscratch.datasets import MNISTError, load_mnist
    path = os.environ.get("FASTSCRATCH_MNIST_DIR")
    if path:
        return load_mnist(path)
    try:
        return load_mnist(download=False, progress=False)
    except MNISTError as err:
        pytest.skip(f"no MNIST: set FASTSCRATCH_MNIST_DIR or fill the cache ({err})")


@pytest.fixture(scope="session")
def mnist(mnist_raw):
    """``mnist("float64")`` -> (X_train, Y_train one-hot, X_test, y_test), read-only, prepared once per dtype."""
    from fastscratch.datasets import prepare
    cache = {}

    def get(dtype_name):
        if dtype_name not in cache:
            arrays = prepare(*mnist_raw, dtype=DTYPES[dtype_name])
            for a in arrays:
                a.setflags(write=False)
            cache[dtype_name] = arrays
        return cache[dtype_name]
    return get


@pytest.fixture(scope="session")
def mnist64(mnist):
    return mnist("float64")


@pytest.fixture(scope="session")
def mnist32(mnist):
    return mnist("float32")


# --- networks ---------------------------------------------------------------------------------

def network_class(impl):
    """``"reference..."`` -> the NumPy oracle; ``"jit"`` -> the package's top-level (Numba) network."""
    if impl.startswith("reference"):
        from fastscratch.reference import SimpleNetwork
        return SimpleNetwork
    if impl == "jit":
        import fastscratch
        return fastscratch.SimpleNetwork
    raise ValueError(f"unknown implementation {impl!r}")


def jit_is_reference_alias():
    import fastscratch
    import fastscratch.reference
    return fastscratch.SimpleNetwork is fastscratch.reference.SimpleNetwork


#: The drop-in networks' kept data (``kept_data.KeptData``), one per dtype, shared by every network a
#: benchmark builds: each round's fresh network then finds the data indexed, as one network's next
#: ``train`` call does (the first call's indexing is measured by the ``startup`` group).
_KEPT = {}


def build_network(impl, dtype_name, hidden=SEED_HIDDEN, seed=SEED):
    """The tutorial's construction: seed, draw the test-image index, then the network.

    Both implementations draw their weights from the global ``np.random`` in the
    same order, so the same ``seed`` gives the same starting weights.
    """
    np.random.seed(seed)
    np.random.randint(0, 10000)  # the tutorial's img_idx draw, made before the network
    net = network_class(impl)(NUM_INPUTS, NUM_OUTPUTS, list(hidden), dtype=DTYPES[dtype_name])
    if hasattr(net, "kept_data"):
        from fastscratch.kept_data import KeptData
        net.kept_data = _KEPT.setdefault(dtype_name, KeptData())
    return net


def initial_weights(dtype_name, hidden=SEED_HIDDEN, seed=SEED):
    """[(W, b), ...] of the seeded reference network: the starting point the peers copy."""
    net = build_network("reference", dtype_name, hidden, seed)
    return [(layer.W.copy(), layer.b.copy()) for layer in net.layers]


SMOKE_TRAIN, SMOKE_TEST = 6000, 1000  # the epoch job's size under --benchmark-disable


@pytest.fixture
def epoch_job(mnist, benchmark):
    """``epoch_job(dtype_name)`` -> (config, X_train, Y_train, X_test, y_test) of the seed's epoch.

    The whole data set when benchmarking; with ``--benchmark-disable`` the first
    6,000 training and 1,000 test images (200 SGD steps), under another config
    name, so the smoke run stays short and still checks the losses.
    """
    def get(dtype_name):
        X_train, Y_train, X_test, y_test = mnist(dtype_name)
        if not benchmark.disabled:
            return "seed-epoch", X_train, Y_train, X_test, y_test
        return (f"seed-epoch smoke {SMOKE_TRAIN}/{SMOKE_TEST}", X_train[:SMOKE_TRAIN], Y_train[:SMOKE_TRAIN],
                X_test[:SMOKE_TEST], y_test[:SMOKE_TEST])
    return get


def reference_epoch(config, dtype_name, X_train, Y_train, X_test, y_test, num_epochs=1):
    """(losses, accuracies) of the reference's first epochs of the seed's job; computed once per (config, dtype)."""
    key = (config, dtype_name)
    if key not in REFERENCE_RESULTS:
        net = build_network("reference", dtype_name)
        REFERENCE_RESULTS[key] = net.train(X_train, Y_train, X_test, y_test, batch_size=SEED_BATCH,
                                           num_epochs=num_epochs, learning_rate=SEED_LR, verbose=False)
    return REFERENCE_RESULTS[key]


@pytest.fixture(autouse=True)
def _one_thread_when_disabled(request):
    """Under --benchmark-disable (a smoke run, no timing), BLAS gets one thread (test_peers does the same
    for PyTorch).

    On a busy 2-core machine, two spinning BLAS threads can make a 200-step
    smoke epoch take 20 s instead of 0.2 s; one thread keeps the default
    ``pytest`` run short. Timed runs keep the libraries' defaults.
    """
    if "benchmark" not in request.fixturenames or not request.getfixturevalue("benchmark").disabled:
        yield
        return
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def blas_threads():
    """``with blas_threads(n):`` limits every loaded BLAS to ``n`` threads (no-op for None)."""
    import contextlib

    @contextlib.contextmanager
    def limit(n):
        if n is None:
            yield
            return
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    return limit


# --- what each result records -----------------------------------------------------------------

def environment():
    """Facts a reader needs to interpret a timing, from ``fastscratch.environment``'s record, under the keys
    ``render.py`` reads; the whole record goes along under ``environment``."""
    from fastscratch import environment as env

    facts = env.record()
    numba = facts["numba"]
    layer = numba and (numba["threading_layer"] or f"not launched (config: {numba['threading_layer_config']})")
    return {
        "cpu_model": facts["cpu"]["model"] or "unknown",
        "cpu_simd": " ".join(facts["cpu"]["vector_extensions"]),
        "cpu_count": facts["cpu_count"],
        "loadavg_1min": facts["load"][0] if facts["load"] else None,
        "python": facts["versions"]["python"],
        "numpy": facts["versions"]["numpy"],
        "blas": [f"{p['internal_api']} {p['version']} ({p['threading_layer']}, {p['num_threads']} threads, "
                 f"{os.path.basename(p['filepath'] or '')})" for p in facts["blas"]["loaded"]]
        if facts["blas"]["loaded"] is not None else ["threadpoolctl not installed"],
        "numba": facts["versions"]["numba"],
        "numba_threads": numba and numba["num_threads"],
        "numba_threading_layer": layer,
        "environment": facts,
    }


def _median(benchmark):
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if stats else None


@pytest.fixture
def record(benchmark):
    """``record(implementation=..., dtype=..., config=..., **extra)``; call it after the benchmark ran.

    Fills ``benchmark.extra_info`` with the run's facts; a reference stores its
    median for ``(config, dtype)``, anything else gets ``speedup_vs_reference``
    (same dtype) and ``speedup_vs_reference_float64`` when those ran earlier.
    """
    def _record(*, implementation, dtype, config, **extra):
        info = benchmark.extra_info
        info.update(implementation=implementation, dtype=dtype, config=config, group=benchmark.group)
        if implementation == "jit":
            info["jit_is_reference_alias"] = jit_is_reference_alias()
        info.update(extra)
        info.update(environment())
        median = _median(benchmark)
        if median is None:
            return
        if implementation.startswith("reference"):
            # Several reference variants (default BLAS threads, one BLAS thread) may run;
            # ratios use the fastest, so a thrashing BLAS never inflates a speed-up.
            best = REFERENCE_MEDIANS.get((config, dtype))
            if best is None or median < best[0]:
                REFERENCE_MEDIANS[(config, dtype)] = (median, implementation)
            return
        for key, ref_dtype in (("speedup_vs_reference", dtype), ("speedup_vs_reference_float64", "float64")):
            ref = REFERENCE_MEDIANS.get((config, ref_dtype))
            if ref is not None:
                info[key] = ref[0] / median
                info[key.replace("speedup", "baseline")] = ref[1]
    return _record


@pytest.fixture(scope="session")
def build():
    """The network builder ``build(impl, dtype_name, hidden=(64, 32), seed=42)``."""
    return build_network


@pytest.fixture(scope="session")
def reference_results():
    """Session dict ``(config, dtype) -> (losses, accuracies)`` of the reference, for correctness checks."""
    return REFERENCE_RESULTS


@pytest.fixture(scope="session")
def seed_reference_epoch():
    """``seed_reference_epoch(config, dtype_name, *data)`` -> the reference's (losses, accuracies), cached."""
    return reference_epoch


@pytest.fixture(scope="session")
def python_child():
    """``python_child(args, env=None)`` -> the JSON a child Python process printed last."""
    return run_python


def run_python(args, env=None, timeout=3600):
    """Run ``python args...`` from the repository root; return the last stdout line parsed as JSON."""
    import json
    import subprocess
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, *args], cwd=os.path.dirname(HERE), env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
