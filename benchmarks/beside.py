"""The evaluation beside the epoch: two ways to run an epoch of the seed's job and the evaluation of the weights
before it, in one process, alternating.

- ``after``: the epoch (``train_epoch``), then the evaluation of the 10,000 test images, split over
  ``NUMBA_NUM_THREADS`` threads as ``train`` runs it after its last epoch (``prediction.classes``);
- ``thread``: the evaluation on a snapshot of the weights in this thread while the epoch runs on a Python thread
  (both kernels release the GIL), as ``train`` runs it (``train_call.TrainCall.start_beside``).

A third way, both kernels as the two tasks of a ``prange`` in one Numba parallel region, does not compile: a
parallel region is a gufunc, which takes no tuple arguments (numba/numba#2651, #5282), and the kernels take
their weights and buffers as tuples and named tuples (``EpochWork``, ``ForwardWork``).

Each round starts from the seeded weights; the losses of both are checked to be the same.
Usage::

    python benchmarks/beside.py [--rounds 7] [--dtypes float64,float32]

Prints the load average before and after and a Markdown table: milliseconds per epoch and evaluation (median,
min-max) and the ratio to ``after``.
"""
import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from fastscratch.buffers import epoch_buffers, forward_buffers
from fastscratch.datasets import load_mnist, prepare
from fastscratch.kernels import activations, losses
from fastscratch.kernels.evaluation import predict_classes
from fastscratch.kernels.training import train_epoch
from fastscratch.prediction import classes as split_classes

from pieces import BATCH, LR, SIZES, indexed, seeded_weights


class _Route:  # what prediction.classes reads of a route
    def __init__(self, weights, biases, codes):
        self.weights, self.biases, self.activation_codes = weights, biases, codes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dtypes", default="float64,float32")
    args = parser.parse_args(argv)
    raw = load_mnist(os.environ.get("FASTSCRATCH_MNIST_DIR"), download=False, progress=False)
    print(f"load before: {os.getloadavg()}; NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}", flush=True)
    rows = []
    pool = ThreadPoolExecutor(1)
    for dtype in (np.dtype(name) for name in args.dtypes.split(",")):
        X, Y, X_test, _ = prepare(*raw, dtype=dtype)
        work = epoch_buffers(indexed(X), SIZES, BATCH, dtype)
        eval_work = forward_buffers(indexed(X_test), SIZES, dtype)
        seeded = seeded_weights(dtype)
        codes = np.full(len(seeded), activations.SIGMOID, dtype=np.int64)
        learning_rate = dtype.type(LR)
        snapshot_W, snapshot_b = tuple(W.copy() for W, _ in seeded), tuple(b.copy() for _, b in seeded)
        found = np.empty(len(X_test), dtype=np.int64)

        def fresh():
            return tuple(W.copy() for W, _ in seeded), tuple(b.copy() for _, b in seeded)

        def after():
            weights, biases = fresh()
            result = train_epoch(Y, BATCH, learning_rate, weights, biases, codes, losses.L2, work)[0]
            return result, split_classes(_Route(weights, biases, codes), eval_work)

        def thread():
            weights, biases = fresh()
            for W, b, W_s, b_s in zip(weights, biases, snapshot_W, snapshot_b):
                np.copyto(W_s, W)
                np.copyto(b_s, b)
            epoch = pool.submit(train_epoch, Y, BATCH, learning_rate, weights, biases, codes, losses.L2, work)
            predict_classes(snapshot_W, snapshot_b, codes, eval_work, found)
            return epoch.result()[0], found.copy()

        ways = {"after": after, "thread": thread}
        outcomes = {name: way() for name, way in ways.items()}
        assert outcomes["after"][0] == outcomes["thread"][0]
        times = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():
                start = time.perf_counter()
                way()
                times[name].append(time.perf_counter() - start)
        base = statistics.median(times["after"])
        for name, found_times in times.items():
            median = statistics.median(found_times)
            rows.append(f"| {dtype} | {name} | {median * 1e3:.1f} ({min(found_times) * 1e3:.1f}-"
                        f"{max(found_times) * 1e3:.1f}) | {median / base:.2f} |")
    pool.shutdown()
    print(f"load after: {os.getloadavg()}")
    print("| dtype | way | ms per epoch and evaluation, median (min-max) | / after |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
