"""The per-call cliff: one-epoch ``train`` calls against 5-epoch calls, per epoch, float32 and float64 networks given
the tutorial's float64 MNIST data (X_val = X_test, as the tutorial gives it).

In one process, for each network dtype, rounds alternate: a network trained by ``--epochs`` one-epoch calls, a
network trained by one ``--epochs``-epoch call, and (``--callback``) a network trained by one call whose callback
re-reads X_train (re-assigns it: ``X_train[:] = X_train``, which writes the same values), as a user's callback
that edits the data would, and (``--after``) a long call whose evaluations run after their epochs, as with one
thread (``numba.set_num_threads(1)``: the evaluation itself still splits over ``NUMBA_NUM_THREADS`` threads). Each network starts from the same seeded weights; every variant's losses are checked
to be the same. Kernels are warmed first, the data's structures kept (a first call indexes them). Usage::

    python benchmarks/cliff.py [--rounds 5] [--epochs 5] [--dtypes float64,float32] [--callback] [--after]

Prints the load average before and after and a Markdown table: seconds per epoch (medians over rounds, min-max)
and the ratio of one-epoch calls to the long call.
"""
import argparse
import os
import statistics
import time

import numba
import numpy as np

import fastscratch
from fastscratch.datasets import load_mnist, prepare

HIDDEN, BATCH, LR = (64, 32), 30, 1e-3


def build(dtype):
    np.random.seed(42)
    return fastscratch.SimpleNetwork(784, 10, list(HIDDEN), dtype=dtype)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--callback", action="store_true", help="also time a long call whose callback re-reads X")
    parser.add_argument("--after", action="store_true",
                        help="also time a long call whose evaluations run after their epochs (numba.set_num_threads(1))")
    args = parser.parse_args(argv)
    X_train, Y_train, X_test, y_test = prepare(*load_mnist(os.environ.get("FASTSCRATCH_MNIST_DIR")))
    print(f"load before: {os.getloadavg()}")

    def one_epoch_calls(net):
        losses = []
        for _ in range(args.epochs):
            losses += net.train(X_train, Y_train, X_test, y_test, batch_size=BATCH, num_epochs=1,
                                learning_rate=LR, verbose=False)[0]
        return losses

    def long_call(net):
        return net.train(X_train, Y_train, X_test, y_test, batch_size=BATCH, num_epochs=args.epochs,
                         learning_rate=LR, verbose=False)[0]

    def rereading_callback(net):
        def callback(epoch, loss, accuracy):
            X_train[:] = X_train
        return net.train(X_train, Y_train, X_test, y_test, batch_size=BATCH, num_epochs=args.epochs,
                         learning_rate=LR, verbose=False, callback=callback)[0]

    def evaluations_after(net):
        threads = numba.get_num_threads()
        numba.set_num_threads(1)  # the evaluations split over the threads as before, not beside the next epoch
        try:
            return long_call(net)
        finally:
            numba.set_num_threads(threads)

    variants = {"one-epoch calls": one_epoch_calls, f"{args.epochs}-epoch call": long_call}
    if args.callback:
        variants["callback re-reads X"] = rereading_callback
    if args.after:
        variants["evaluation after each epoch"] = evaluations_after
    rows = []
    for dtype in args.dtypes.split(","):
        build(dtype).train(X_train, Y_train, X_test, y_test, batch_size=BATCH, num_epochs=1, learning_rate=LR,
                           verbose=False)  # compiles, and keeps the data's structures
        times = {name: [] for name in variants}
        losses = {}
        for _ in range(args.rounds):
            for name, run in variants.items():
                net = build(dtype)
                start = time.perf_counter()
                found = run(net)
                times[name].append((time.perf_counter() - start) / args.epochs)
                losses.setdefault(name, found)
        first = next(iter(losses.values()))
        for name, found in losses.items():
            assert np.array_equal(found, first), (dtype, name, found, first)
        long_median = statistics.median(times[f"{args.epochs}-epoch call"])
        for name, found in times.items():
            median = statistics.median(found)
            rows.append(f"| {dtype} | {name} | {median:.3f} ({min(found):.3f}-{max(found):.3f}) | "
                        f"{median / long_median:.2f} |")
    print(f"load after: {os.getloadavg()}")
    print("| dtype | how | s per epoch, median (min-max) | / long call |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
