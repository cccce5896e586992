"""The per-call table of docs/performance-calls.md: reference vs drop-in, same process, alternating rounds.

Usage: FASTSCRATCH_MNIST_DIR=... python docs/time_calls.py [float64|float32]  (one BLAS thread)
"""
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

import fastscratch  # noqa: E402
from fastscratch import reference  # noqa: E402
from fastscratch.datasets import load_mnist, prepare  # noqa: E402

DTYPE = np.dtype(sys.argv[1] if len(sys.argv) > 1 else "float64")
LR = 1e-3
X, Y, _, _ = prepare(*load_mnist(os.environ["FASTSCRATCH_MNIST_DIR"]))
X, Y = X[:2560], Y[:2560]
y = Y.argmax(1)


def build(module):
    np.random.seed(42)
    return module.SimpleNetwork(784, 10, [64, 32], dtype=DTYPE)


def prepared(module, call, batch):
    net = build(module)
    x, t = X[:batch], Y[:batch]
    if call == "neuron-forward":
        np.random.seed(42)
        neuron = module.Neuron(784, fastscratch.sigmoid, dtype=DTYPE)
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
        return lambda: net.optimize(LR)
    if call == "layer-optimize":
        return lambda: layer.optimize(LR)
    batches, step = len(X) // batch, iter(range(10 ** 9))

    def loop_step():
        begin = next(step) % batches * batch
        xb, tb = X[begin:begin + batch], Y[begin:begin + batch]
        predictions = net.forward(xb)
        loss = net.loss_function(predictions, tb)
        net.backward(net.derivated_loss_function(predictions, tb))
        net.optimize(LR)
        return loss
    return loop_step


def per_call(run, n):
    start = time.perf_counter()
    for _ in range(n):
        run()
    return (time.perf_counter() - start) / n


CALLS = ["forward", "backward", "optimize", "predict", "evaluate_accuracy", "layer-forward", "layer-backward",
         "layer-optimize", "neuron-forward", "batch-loop"]
print(f"# {DTYPE}; load: {open('/proc/loadavg').read().split()[:3]}")
print("| call | batch | reference µs | drop-in µs | speed-up (median of paired rounds) |")
print("|---|---|---|---|---|")
for call in CALLS:
    for batch in ([1] if call in ("predict", "neuron-forward") else [1, 30, 256]):
        ref, jit = prepared(reference, call, batch), prepared(fastscratch, call, batch)
        ref(), jit(), ref(), jit()
        n = max(3, int(0.01 / max(per_call(ref, 3), 1e-7)))
        r, j = [], []
        for _ in range(7):  # alternating rounds
            r.append(per_call(ref, n))
            j.append(per_call(jit, n))
        ratio = statistics.median(a / b for a, b in zip(r, j))
        print(f"| {call} | {batch} | {statistics.median(r) * 1e6:.1f} | {statistics.median(j) * 1e6:.1f} | "
              f"{ratio:.2f}x |", flush=True)
print(f"# load after: {open('/proc/loadavg').read().split()[:3]}")
