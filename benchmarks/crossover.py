"""Where the compiled epoch stops paying off: the kernels against the BLAS path, forced, cell by cell.

``fastscratch.routing.past_crossover`` sends a ``train`` call to the
reference's NumPy/BLAS products past these sizes. For each cell (hidden
sizes, batch, steps) and dtype, this alternates ``--rounds`` times: the
reference, the drop-in forced onto the BLAS path, and the drop-in forced onto
the compiled epochs, each training a fresh seeded network for ``steps`` SGD
steps on the first ``batch * steps`` images of each input; and it says which
path the plan picks. Inputs are datasets that load without a download
(``mnist``, ``fashion-mnist``) or ``random:D``, uniform values with a
fraction D nonzero (the kernels' time grows with the nonzeros). Usage::

    python benchmarks/crossover.py [--rounds 7] [--cells 64,32:256:50 1024,512:30:10 ...]
                                   [--inputs mnist fashion-mnist random:0.3 ...] [--cpu 1] [--blas-threads 1]

The process runs pinned to one CPU (``--cpu``, -1: not pinned) and BLAS
with ``--blas-threads`` threads (default 1): on a shared 2-core machine two
BLAS threads spin against the other processes, and a 50-step call of the
reference then took anywhere from 0.13 to 3.6 s, so any speed-up measured
that way says more about the load than about the code. A speed-up is the
median, over the rounds, of the ratio of the reference's time to the path's
time in the same round (the three run back to back), with the smallest and
largest of those ratios: a drift in the load moves one round, not the
median. Prints progress to stderr, then a Markdown table, the load average
before and after, and how long it took.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastscratch
from fastscratch import config, reference, routing
from fastscratch.datasets import load_dataset, prepare
from fastscratch.environment import load
from fastscratch.kept_data import KeptData
from fastscratch.kernels.structure import nonzero_fraction

CELLS = ["64,32:128:40", "64,32:256:50", "64,32:1024:12", "128,64:128:40", "128,64:256:20", "256,128:256:15",
         "1024,512:1:20", "1024,512:30:10", "1024,512:256:4"]
LIMITS = ("KERNEL_MAX_BATCH", "KERNEL_SMALL_HIDDEN_WEIGHTS", "KERNEL_MAX_HIDDEN_WEIGHTS")
#: One ``KeptData`` per dtype, shared by every drop-in network the script builds.
KEPT = {}
VARIANTS = ("reference", "blas", "kernels")


def forced(path):
    """The crossover settings that make every call take ``path`` ("blas" or "kernels"), or the defaults."""
    if path == "blas":
        return {"KERNEL_MAX_HIDDEN_WEIGHTS": -1}
    if path == "kernels":
        return {name: np.iinfo(np.int64).max for name in LIMITS}
    return {}


def seconds(variant, hidden, X, Y, batch, dtype):
    defaults = {name: getattr(config, name) for name in LIMITS}
    for name, value in forced(variant).items():
        setattr(config, name, value)
    try:
        np.random.seed(42)
        module = reference if variant == "reference" else fastscratch
        net = module.SimpleNetwork(784, 10, hidden, dtype=dtype)
        if hasattr(net, "kept_data"):  # the data indexed once, as a user's repeated calls on one network find it
            net.kept_data = KEPT.setdefault(np.dtype(dtype).name, KeptData())
        start = time.perf_counter()
        net.train(X, Y, batch_size=batch, num_epochs=1, learning_rate=1e-3, verbose=False)
        return time.perf_counter() - start
    finally:
        for name, value in defaults.items():
            setattr(config, name, value)


def inputs(name, dtype):
    """(X, one-hot Y) of the input ``name`` in ``dtype``."""
    if name.startswith("random:"):
        rng = np.random.default_rng(0)
        X = rng.random((60000, 784)) * (rng.random((60000, 784)) < float(name.split(":")[1]))
        return X.astype(dtype), np.eye(10, dtype=dtype)[rng.integers(0, 10, 60000)]
    X, Y, _, _ = prepare(*load_dataset(name, download=False, progress=False), dtype=np.dtype(dtype))
    return X, Y



def ratio_text(ratios):
    return f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cells", nargs="+", default=CELLS, help="hidden:batch:steps, e.g. 64,32:256:50")
    parser.add_argument("--inputs", nargs="+", default=["mnist"], help="mnist, fashion-mnist or random:D")
    parser.add_argument("--cpu", type=int, default=1, help="the CPU to pin the process to (-1: not pinned)")
    parser.add_argument("--blas-threads", type=int, default=1, help="BLAS threads (0: the library's default)")
    args = parser.parse_args(argv)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    began = time.perf_counter()
    print(f"load average before: {load()}; CPUs {sorted(os.sched_getaffinity(0))}; "
          f"BLAS threads {args.blas_threads or 'default'}\n")
    print("| input | nonzero | hidden | batch | dtype | reference | BLAS path | kernels | BLAS path speed-up | "
          "kernels speed-up | plan picks |")
    print("|---|---:|---|---:|---|---:|---:|---:|---:|---:|---|", flush=True)
    jobs = [(name, dtype, cell) for name in args.inputs for dtype in ("float64", "float32") for cell in args.cells]
    data = {}
    with threadpool_limits(limits=args.blas_threads or None, user_api="blas"):
        for number, (name, dtype, cell) in enumerate(jobs, 1):
            if (name, dtype) not in data:
                data.clear()
                data[(name, dtype)] = inputs(name, dtype)
            X_all, Y_all = data[(name, dtype)]
            hidden_text, batch, steps = cell.split(":")
            hidden, batch, steps = tuple(int(h) for h in hidden_text.split(",")), int(batch), int(steps)
            X, Y = X_all[:batch * steps], Y_all[:batch * steps]
            for variant in ("blas", "kernels"):
                seconds(variant, hidden, X, Y, batch, dtype)  # compile (or load) and index outside the timing
            times = {variant: [] for variant in VARIANTS}
            for round_ in range(args.rounds):
                for variant in VARIANTS:
                    times[variant].append(seconds(variant, hidden, X, Y, batch, dtype))
                print(f"[{time.perf_counter() - began:6.0f} s] cell {number}/{len(jobs)} ({name} {dtype} {cell}): "
                      f"round {round_ + 1}/{args.rounds}, load {load()}", file=sys.stderr, flush=True)
            median = {variant: statistics.median(values) for variant, values in times.items()}
            speedup = {variant: [r / t for r, t in zip(times["reference"], times[variant])]
                       for variant in ("blas", "kernels")}
            np.random.seed(42)
            net = fastscratch.SimpleNetwork(784, 10, hidden)
            picks = "BLAS" if routing.past_crossover(net, batch, nonzero_fraction(X)) else "kernels"
            print(f"| {name} | {nonzero_fraction(X):.0%} | {'-'.join(map(str, hidden))} | {batch} | {dtype} | "
                  f"{median['reference'] * 1e3:.1f} ms | {median['blas'] * 1e3:.1f} ms | "
                  f"{median['kernels'] * 1e3:.1f} ms | {ratio_text(speedup['blas'])} | "
                  f"{ratio_text(speedup['kernels'])} | {picks} |", flush=True)
    print(f"\nload average after: {load()}; {args.rounds} rounds, {time.perf_counter() - began:.0f} s in all")


if __name__ == "__main__":
    main()
