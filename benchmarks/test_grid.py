"""Group ``grid``: a fixed number of SGD steps over batch x hidden sizes x dtype, reference vs JIT.

Each cell times ``train`` on the first ``batch * steps`` MNIST images for one
epoch without validation, i.e. exactly ``steps`` SGD steps. ``steps`` was
chosen so that one call of the reference takes roughly 0.1-0.2 s in float64 on
the development machine (2-core AMD EPYC). The network keeps training across
rounds, which does not change the work per step.

As in ``test_epoch.py``, the reference also runs with BLAS limited to one
thread (``reference-blas1``) and speed-ups are against the faster variant.
Those rows are timed seconds apart, and on a shared machine the load changes
in between: a cell where both run the same BLAS products came out anywhere
from 0.64x to 1.4x. So each JIT cell also times ``PAIRS`` alternating calls of
the reference and the JIT and records the median of their ratios
(``paired_speedup``), which such drifts move far less.
With ``--benchmark-disable`` (the default ``pytest`` run) the (1024, 512)
cells and ``reference-blas1`` are skipped to keep the smoke run short.
"""
import statistics
import time

import pytest

PAIRS = 5
HIDDEN = [(64, 32), (256, 128), (1024, 512)]
BATCHES = [1, 30, 256]
STEPS = {(64, 32): {1: 400, 30: 150, 256: 50},
         (256, 128): {1: 250, 30: 50, 256: 15},
         (1024, 512): {1: 20, 30: 10, 256: 4}}
LR = 1e-3


def config_name(hidden, batch, steps):
    return f"784-{'-'.join(map(str, hidden))}-10 b={batch} steps={steps}"


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # wide float32 layers
@pytest.mark.parametrize("impl", ["reference", "reference-blas1", "jit"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("hidden", HIDDEN, ids=lambda h: "h" + "-".join(map(str, h)))
def test_grid(benchmark, record, mnist, build, blas_threads, impl, dtype, batch, hidden):
    benchmark.group = "grid"
    if benchmark.disabled and hidden == HIDDEN[-1]:
        pytest.skip("largest hidden sizes run only with --benchmark-enable")
    if benchmark.disabled and impl == "reference-blas1":
        pytest.skip("the one-BLAS-thread reference runs only with --benchmark-enable")
    steps = STEPS[hidden][batch]
    X_train, Y_train, _, _ = mnist(dtype)
    X, Y = X_train[:batch * steps], Y_train[:batch * steps]
    net = build(impl, dtype, hidden)

    def run():
        return net.train(X, Y, batch_size=batch, num_epochs=1, learning_rate=LR, verbose=False)

    if impl == "jit" and not benchmark.disabled:
        run()  # compile (or load from cache) outside the timing
    with blas_threads(1 if impl == "reference-blas1" else None):
        losses, _ = benchmark(run)
    paired = None
    if impl == "jit" and not benchmark.disabled:
        reference = build("reference", dtype, hidden)
        paired = statistics.median(seconds(lambda: reference.train(
            X, Y, batch_size=batch, num_epochs=1, learning_rate=LR, verbose=False)) / seconds(run)
            for _ in range(PAIRS))
    record(implementation=impl, dtype=dtype, config=config_name(hidden, batch, steps),
           shapes="784-" + "-".join(map(str, hidden)) + "-10", hidden=list(hidden), batch_size=batch,
           steps=steps, train_samples=len(X), learning_rate=LR, loss=float(losses[0]),
           blas_threads_limit=1 if impl == "reference-blas1" else None, paired_speedup=paired, pairs=PAIRS)


def seconds(call):
    start = time.perf_counter()
    call()
    return time.perf_counter() - start
