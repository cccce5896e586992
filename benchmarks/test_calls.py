"""Groups ``call <name>``: every public call one at a time, the reference against the drop-in.

Outside ``train``, a user calls the network the way the tutorial does: one
``predict(X[i])`` per image, or a batch loop written by hand (``forward``,
the loss, its derivative, ``backward``, ``optimize``). Each group times one
such call on the seed's network (784-64-32-10, sigmoid, L2) given float64
MNIST rows, as the tutorial's user gives them to either network dtype, at
batch sizes 1, 30, 256 and 60,000 (the whole training set, as the tutorial's
untrained figures take it; ``predict`` of one image takes the 1-D row, as the
tutorial does, and the 2-D ``(1, 784)`` row; ``Neuron.forward`` takes one row
only):

- ``forward``, ``backward``, ``optimize``, ``predict`` (``predict-2d``: of a
  ``(1, 784)`` row), ``evaluate_accuracy`` of ``SimpleNetwork``; ``forward``, ``backward``, ``optimize`` of its first
  layer; ``Neuron.forward`` of a 784-input neuron;
- ``batch-loop``: one step of the hand-written loop, over consecutive batches.

``backward`` and ``optimize`` are timed after one ``forward`` (and
``backward``) in the untimed setup, repeated on the same batch: each call does
its whole work again. A round is ``iterations`` calls, chosen so that a round
lasts about ``ROUND_S``; the value is seconds per call. Each drop-in cell also
records ``paired_speedup``: the median of ``PAIRS`` reference/drop-in ratios
of rounds timed back to back, which the machine's load moves far less than
cells timed seconds apart.

With ``--benchmark-disable`` every cell up to 256 rows runs once, as a smoke
test that the drop-in's result equals the reference's.
"""
import statistics

import numpy as np
import pytest

from calls import PAIRS, ROUND_S, ROUNDS, cells, prepared, seconds_per_call


def assert_same(value, expected, rtol):
    """value equals expected (arrays, numbers, or tuples of them) within rtol of expected's largest magnitude
    (float32 sums that cancel differ by more than rtol relative to their own size)."""
    if isinstance(expected, tuple):
        assert len(value) == len(expected)
        for v, e in zip(value, expected):
            assert_same(v, e, rtol)
        return
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(np.asarray(value, dtype=np.float64), expected, rtol=rtol,
                               atol=rtol * float(np.max(np.abs(expected), initial=0.0)))


@pytest.mark.parametrize("impl", ["reference", "jit"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("call, batch", list(cells()), ids=[f"{c}-b{b}" for c, b in cells()])
def test_call(benchmark, record, mnist64, build, blas_threads, impl, dtype, call, batch):
    benchmark.group = f"call {call}"
    if benchmark.disabled and batch > 256:
        pytest.skip("the 60,000-row cells take seconds each: timed runs only (tests/test_steps.py checks many rows)")
    X_train, Y_train, X_test, y_test = mnist64
    data = (X_train, Y_train, np.argmax(Y_train, axis=1))
    run = prepared(impl, dtype, call, batch, data, build)
    if call == "batch-loop":  # its value is the first batch's loss: compare it on a fresh network
        first = prepared(impl, dtype, call, batch, data, build)()
        other = prepared("jit" if impl == "reference" else "reference", dtype, call, batch, data, build)()
    else:
        first = run()
        other = prepared("jit" if impl == "reference" else "reference", dtype, call, batch, data, build)()
    assert_same(first, other, rtol=1e-9 if dtype == "float64" else 1e-4)
    with blas_threads(1):  # one BLAS thread: a 30-row product gains nothing from a second, spinning one
        iterations = max(1, int(ROUND_S / max(seconds_per_call(run, 1), 1e-7)))
        benchmark.pedantic(run, rounds=ROUNDS, iterations=iterations, warmup_rounds=1)
        paired = None
        if impl == "jit" and not benchmark.disabled:
            reference = prepared("reference", dtype, call, batch, data, build)
            paired = statistics.median(seconds_per_call(reference, iterations) / seconds_per_call(run, iterations)
                                       for _ in range(PAIRS))
    record(implementation=impl, dtype=dtype, config=f"call {call} b={batch}", call=call, batch_size=batch,
           data_dtype="float64", iterations=iterations, paired_speedup=paired, pairs=PAIRS,
           blas_threads_limit=1)
