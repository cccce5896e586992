"""The public calls of the tutorial's API, each as a closure on a seeded network, and a table of their
speed against the reference's.

``benchmarks/test_calls.py`` times them with pytest-benchmark (groups ``call <name>``). Run as a script,
it prints the table of docs/performance-calls.md: reference and drop-in alternating in one process, one
BLAS thread, the median of 7 paired rounds per cell (at least one call a round: the 60,000-row cells take
minutes)::

    python benchmarks/calls.py [float64|float32]
"""
import statistics
import sys
import time

import numpy as np

BATCHES = [1, 30, 256, 60000]  # up to the whole training set
ONE_ROW = {"predict", "predict-2d", "neuron-forward"}  # calls measured on one image only
CALLS = ["forward", "backward", "optimize", "predict", "predict-2d", "evaluate_accuracy", "layer-forward",
         "layer-backward", "layer-optimize", "neuron-forward", "batch-loop"]
LR = 1e-3
ROUNDS, ROUND_S, PAIRS = 7, 0.01, 5  # rounds, seconds a round lasts, paired rounds


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
    if call == "predict":  # one image as the tutorial gives it: a 1-D row
        return lambda: net.predict(X[0] if batch == 1 else x)
    if call == "predict-2d":  # one image as a (1, 784) row
        return lambda: net.predict(X[:1])
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


def seconds_per_call(run, iterations):
    start = time.perf_counter()
    for _ in range(iterations):
        run()
    return (time.perf_counter() - start) / iterations



def seeded_network(impl, dtype_name, hidden=(64, 32), seed=42):
    """The tutorial's construction: seed, draw the test-image index, then the network of ``impl``."""
    import fastscratch
    import fastscratch.reference
    np.random.seed(seed)
    np.random.randint(0, 10000)
    module = fastscratch.reference if impl == "reference" else fastscratch
    return module.SimpleNetwork(784, 10, list(hidden), dtype=np.dtype(dtype_name))


def main(argv=None):
    from threadpoolctl import threadpool_limits

    from fastscratch import environment
    from fastscratch.datasets import load_mnist, prepare
    dtype = (argv or sys.argv[1:] or ["float64"])[0]
    X, Y, _, _ = prepare(*load_mnist())
    data = (X, Y, np.argmax(Y, axis=1))
    print(f"# {dtype}; load before: {environment.load()}")
    print("| call | batch | reference µs | drop-in µs | speed-up (median of paired rounds) |")
    print("|---|---|---|---|---|")
    with threadpool_limits(limits=1, user_api="blas"):
        for call, batch in cells():
            ref, jit = (prepared(impl, dtype, call, batch, data, seeded_network) for impl in ("reference", "jit"))
            ref(), jit(), ref(), jit()
            iterations = max(1, int(ROUND_S / max(seconds_per_call(ref, 1), 1e-7)))
            rounds = [(seconds_per_call(ref, iterations), seconds_per_call(jit, iterations)) for _ in range(ROUNDS)]
            ratio = statistics.median(r / j for r, j in rounds)
            print(f"| {call} | {batch} | {statistics.median(r for r, _ in rounds) * 1e6:.1f} | "
                  f"{statistics.median(j for _, j in rounds) * 1e6:.1f} | {ratio:.2f}x |", flush=True)
    print(f"# load after: {environment.load()}")


if __name__ == "__main__":
    main()
