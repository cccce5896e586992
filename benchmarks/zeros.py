"""How the lead depends on the input's zeros: the seed's job on MNIST and on Fashion-MNIST, reference vs JIT.

The first layer skips zero inputs, so the speed-up follows the share of
zeros (MNIST's training images are 81% zeros, Fashion-MNIST's 50%). For each
dataset that can be loaded without a download (Fashion-MNIST: Debian's
``dataset-fashion-mnist``, or ``FASTSCRATCH_FASHION_MNIST_DIR``) and each dtype, this
alternates ``rounds`` times: the reference with BLAS at its default threads,
the reference with BLAS at one thread, and ``fastscratch.SimpleNetwork``,
each a fresh seeded 784-64-32-10 network trained ``--epochs`` epochs in one
call. The speed-up is the faster reference variant's median over the JIT's;
float32 is also given against the float64 reference. Usage::

    python benchmarks/zeros.py [--rounds 3] [--epochs 3]

Prints a Markdown table, and the load average before and after.
"""
import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastscratch
from fastscratch import reference
from fastscratch.datasets import DATASETS, MNISTError, load_dataset, prepare

VARIANTS = ("reference", "reference-blas1", "jit")


def seconds_per_epoch(variant, data, dtype, epochs):
    X, Y, X_test, y_test = data
    module = fastscratch if variant == "jit" else reference
    np.random.seed(42)
    net = module.SimpleNetwork(784, 10, (64, 32), dtype=dtype)
    with threadpool_limits(limits=1 if variant == "reference-blas1" else None):
        start = time.perf_counter()
        net.train(X, Y, X_test, y_test, batch_size=30, num_epochs=epochs, learning_rate=1e-3, verbose=False)
        return (time.perf_counter() - start) / epochs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    for name in DATASETS:
        try:
            raw = load_dataset(name, download=False, progress=False)
        except MNISTError as error:
            print(f"{name}: skipped ({error})")
            continue
        zeros = float(np.mean(raw[0] == 0))
        medians = {}
        for dtype in ("float64", "float32"):
            data = prepare(*raw, dtype=np.dtype(dtype))
            seconds_per_epoch("jit", data, dtype, 1)  # compiles or loads the kernels, indexes the data
            times = {variant: [] for variant in VARIANTS}
            for _ in range(args.rounds):
                for variant in VARIANTS:
                    times[variant].append(seconds_per_epoch(variant, data, dtype, args.epochs))
            medians[dtype] = {variant: float(np.median(values)) for variant, values in times.items()}
        float64_reference = min(medians["float64"]["reference"], medians["float64"]["reference-blas1"])
        for dtype, median in medians.items():
            best = min(median["reference"], median["reference-blas1"])
            rows.append(f"| {DATASETS[name].title} | {zeros:.0%} | {dtype} | {best:.3f} s | {median['jit']:.3f} s | "
                        f"{best / median['jit']:.2f}x | {float64_reference / median['jit']:.2f}x |")
    print(f"\n{args.epochs}-epoch calls, median of {args.rounds} alternating rounds, per epoch:\n")
    print("| dataset | zeros | dtype | reference (best BLAS) | fastscratch | speed-up | vs float64 reference |")
    print("|---|---:|---|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
