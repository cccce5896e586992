"""How the lead depends on the input's zeros: the seed's job on MNIST and on Fashion-MNIST, reference vs JIT.

The first layer skips zero inputs, so the speed-up follows the share of
zeros (MNIST's training images are 81% zeros, Fashion-MNIST's 50%). For each
dataset that can be loaded without a download (Fashion-MNIST: Debian's
``dataset-fashion-mnist``, or ``FASTSCRATCH_FASHION_MNIST_DIR``) and each dtype, this
alternates ``rounds`` times: the reference and ``fastscratch.SimpleNetwork``,
each a fresh seeded 784-64-32-10 network trained ``--epochs`` epochs in one
call, given the data in the network's dtype. The process is pinned to one
CPU (``--cpu``, -1: not pinned) and BLAS runs ``--blas-threads`` threads
(default 1; 0: the library's default, which on one CPU, or a busy 2-core
machine, spins its threads against each other). The speed-up is, per round,
the reference's time over the JIT's in that round; the table gives its median
over the rounds and the smallest and largest (a drift in the load moves one
round, not the median). float32 is also given against the float64
reference's median. Usage::

    python benchmarks/zeros.py [--rounds 3] [--epochs 3] [--cpu 1] [--blas-threads 1]

Prints progress to stderr, a Markdown table, the load average before and
after, and how long it took (about 3 minutes with the defaults on a 2-core
machine, most of it the reference).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastscratch
from fastscratch import reference
from fastscratch.datasets import DATASETS, MNISTError, load_dataset, prepare
from fastscratch.environment import load
from fastscratch.kept_data import KeptData

#: One ``KeptData`` per dtype, shared by every drop-in network the script builds.
KEPT = {}
VARIANTS = ("reference", "jit")


def seconds_per_epoch(variant, data, dtype, epochs):
    X, Y, X_test, y_test = data
    module = fastscratch if variant == "jit" else reference
    np.random.seed(42)
    net = module.SimpleNetwork(784, 10, (64, 32), dtype=dtype)
    if hasattr(net, "kept_data"):  # the data indexed once, as a user's repeated calls on one network find it
        net.kept_data = KEPT.setdefault(np.dtype(dtype).name, KeptData())
    start = time.perf_counter()
    net.train(X, Y, X_test, y_test, batch_size=30, num_epochs=epochs, learning_rate=1e-3, verbose=False)
    return (time.perf_counter() - start) / epochs



def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=1, help="the CPU to pin the process to (-1: not pinned)")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (0: the library's default)")
    args = parser.parse_args(argv)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    began = time.perf_counter()
    print(f"load average before: {load()}; CPUs {sorted(os.sched_getaffinity(0))}; "
          f"BLAS threads {args.blas_threads or 'default'}", flush=True)
    with threadpool_limits(limits=args.blas_threads or None, user_api="blas"):
        rows = measure(args, began)
    print(f"\n{args.epochs}-epoch calls, median of {args.rounds} alternating rounds, per epoch:\n")
    print("| dataset | zeros | dtype | reference | fastscratch | speed-up (min-max) | vs float64 reference |")
    print("|---|---:|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nload average after: {load()}; {time.perf_counter() - began:.0f} s in all")


def measure(args, began):
    """The table's rows, dataset by dataset."""
    rows = []
    for name in DATASETS:
        try:
            raw = load_dataset(name, download=False, progress=False)
        except MNISTError as error:
            print(f"{name}: skipped ({error})")
            continue
        zeros = float(np.mean(raw[0] == 0))
        medians, speedups = {}, {}
        for dtype in ("float64", "float32"):
            print(f"[{time.perf_counter() - began:5.0f} s] {name} {dtype}: preparing, one JIT epoch to compile or "
                  f"load the kernels", file=sys.stderr, flush=True)
            data = prepare(*raw, dtype=np.dtype(dtype))
            seconds_per_epoch("jit", data, dtype, 1)  # compiles or loads the kernels, indexes the data
            times = {variant: [] for variant in VARIANTS}
            for round_ in range(args.rounds):
                for variant in VARIANTS:
                    times[variant].append(seconds_per_epoch(variant, data, dtype, args.epochs))
                print(f"[{time.perf_counter() - began:5.0f} s] {name} {dtype}: round {round_ + 1}/{args.rounds} "
                      + ", ".join(f"{v} {times[v][-1]:.3f} s/epoch" for v in VARIANTS) + f"; load {load()}",
                      file=sys.stderr, flush=True)
            medians[dtype] = {variant: statistics.median(values) for variant, values in times.items()}
            speedups[dtype] = [ref / jit for ref, jit in zip(times["reference"], times["jit"])]
        for dtype, median in medians.items():
            ratios = speedups[dtype]
            rows.append(f"| {DATASETS[name].title} | {zeros:.0%} | {dtype} | {median['reference']:.3f} s | "
                        f"{median['jit']:.3f} s | {statistics.median(ratios):.2f}x "
                        f"({min(ratios):.2f}-{max(ratios):.2f}) | "
                        f"{medians['float64']['reference'] / median['jit']:.2f}x |")
    return rows


if __name__ == "__main__":
    main()
