"""Groups ``call <name>``: every public call one at a time, the reference against the drop-in.

Outside ``train``, a user calls the network the way the tutorial does: one
``predict(X[i])`` per image, or a batch loop written by hand (``forward``,
the loss, its derivative, ``backward``, ``optimize``). Each group times one
such call on the seed's network (784-64-32-10, sigmoid, L2) given float64
MNIST rows, as the tutorial's user gives them to either network dtype, at
batch sizes 1, 30 and 256 (``predict`` of one image takes the 1-D row, as
the tutorial does; ``Neuron.forward`` takes one row only):

- ``forward``, ``backward``, ``optimize``, ``predict``, ``evaluate_accuracy``
  of ``SimpleNetwork``; ``forward``, ``backward``, ``optimize`` of its first
  layer; ``Neuron.forward`` of a 784-input neuron;
- ``batch-loop``: one step of the hand-written loop, over consecutive batches.

``backward`` and ``optimize`` are timed after one ``forward`` (and
``backward``) in the untimed setup, repeated on the same batch: each call does
its whole work again. A round is ``iterations`` calls, chosen so that a round
lasts about ``ROUND_S``; the value is seconds per call. Each drop-in cell also
records ``paired_speedup``: the median of ``PAIRS`` reference/drop-in ratios
of rounds timed back to back, which the machine's load moves far less than
cells timed seconds apart.

With ``--benchmark-disable`` every cell runs once, as a smoke test that the
drop-in's result equals the reference's.
"""
import statistics
import time

import numpy as np
import pytest

BATCHES = [1, 30, 256]
ONE_ROW = {"predict", "neuron-forward"}  # calls measured on one image only
CALLS = ["forward", "backward", "optimize", "predict", "evaluate_accuracy", "layer-forward", "layer-backward",
         "layer-optimize", "neuron-forward", "batch-loop"]
LR = 1e-3
ROUNDS, ROUND_S, PAIRS = 7, 0.01, 5


def cells():
    for call in CALLS:
        for batch in ([1] if call in ONE_ROW else BATCHES):
            yield call, batch


def prepared(impl, dtype, call, batch, data, build):
    """A call without arguments that runs ``call`` once on a fresh seeded network of ``impl``, and the value
    of its first run (to compare implementations)."""
    import fastscratch
    import fastscratch.reference
    X, Y, y = data
    x, t = X[:batch], Y[:batch]
    net = build(impl, dtype)
    if call == "neuron-forward":
        module = fastscratch.reference if impl == "reference" else fastscratch
        np.random.seed(42)
        neuron = module.Neuron(X.shape[1], module.sigmoid, dtype=net.dtype)
        return lambda: neuron.forward(X[0])
    if call == "forward":
        return lambda: net.forward(x)
    if call == "predict":
        return lambda: net.predict(X[0] if batch == 1 else x)
    if call == "evaluate_accuracy":
        return lambda: net.evaluate_accuracy(x, y[:batch])
    layer = net.layers[0]
    if call == "layer-forward":
        return lambda: layer.forward(x)
    dL_dy = net.derivated_loss_function(net.forward(x), t)
    if call == "backward":
        return lambda: net.backward(dL_dy)
    if call == "layer-backward":
        dL_dy0 = net.layers[1].backward(net.layers[2].backward(dL_dy))
        return lambda: layer.backward(dL_dy0)
    net.backward(dL_dy)
    if call == "optimize":
        return lambda: net.optimize(LR) or tuple(lay.W for lay in net.layers)
    if call == "layer-optimize":
        return lambda: layer.optimize(LR) or layer.W
    assert call == "batch-loop", call
    batches = len(X) // batch
    step = iter(range(10 ** 9))

    def loop_step():
        begin = next(step) % batches * batch
        xb, tb = X[begin:begin + batch], Y[begin:begin + batch]
        predictions = net.forward(xb)
        loss = net.loss_function(predictions, tb)
        net.backward(net.derivated_loss_function(predictions, tb))
        net.optimize(LR)
        return loss
    return loop_step


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


def seconds_per_call(run, iterations):
    start = time.perf_counter()
    for _ in range(iterations):
        run()
    return (time.perf_counter() - start) / iterations


@pytest.mark.parametrize("impl", ["reference", "jit"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("call, batch", list(cells()), ids=[f"{c}-b{b}" for c, b in cells()])
def test_call(benchmark, record, mnist64, build, blas_threads, impl, dtype, call, batch):
    benchmark.group = f"call {call}"
    X_train, Y_train, X_test, y_test = mnist64
    data = (X_train[:2560], Y_train[:2560], np.argmax(Y_train[:2560], axis=1))
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
