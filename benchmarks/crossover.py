"""Where the compiled epoch stops paying off: the kernels against the BLAS path, forced, cell by cell.

``fastscratch.plan.past_crossover`` sends a ``train`` call to the
reference's NumPy/BLAS products past these sizes. For each cell (hidden
sizes, batch, steps) and dtype, this alternates ``--rounds`` times: the
reference, the drop-in forced onto the BLAS path, and the drop-in forced onto
the compiled epochs, each training a fresh seeded network for ``steps`` SGD
steps on the first ``batch * steps`` images of each input; and it says which
path the plan picks. Inputs are datasets that load without a download
(``mnist``, ``fashion-mnist``) or ``random:D``, uniform values with a
fraction D nonzero (the kernels' time grows with the nonzeros). Usage::

    python benchmarks/crossover.py [--rounds 7] [--cells 64,32:256:50 1024,512:30:10 ...]
                                   [--inputs mnist fashion-mnist random:0.3 ...]

Prints a Markdown table of medians and speed-ups over the reference, and the
load average before and after.
"""
import argparse
import os
import time

import numpy as np

import fastscratch
from fastscratch import plan, reference
from fastscratch.datasets import load_dataset, prepare

CELLS = ["64,32:128:40", "64,32:256:50", "64,32:1024:12", "128,64:128:40", "128,64:256:20", "256,128:256:15",
         "1024,512:1:20", "1024,512:30:10", "1024,512:256:4"]
LIMITS = ("KERNEL_MAX_BATCH", "KERNEL_SMALL_HIDDEN_WEIGHTS", "KERNEL_MAX_HIDDEN_WEIGHTS")


def forced(path):
    """The crossover constants that make every call take ``path`` ("blas" or "kernels"), or the plan's own."""
    if path == "blas":
        return {"KERNEL_MAX_HIDDEN_WEIGHTS": -1}
    if path == "kernels":
        return {name: np.iinfo(np.int64).max for name in LIMITS}
    return {}


def seconds(variant, hidden, X, Y, batch, dtype):
    defaults = {name: getattr(plan, name) for name in LIMITS}
    for name, value in forced(variant).items():
        setattr(plan, name, value)
    try:
        np.random.seed(42)
        module = reference if variant == "reference" else fastscratch
        net = module.SimpleNetwork(784, 10, hidden, dtype=dtype)
        start = time.perf_counter()
        net.train(X, Y, batch_size=batch, num_epochs=1, learning_rate=1e-3, verbose=False)
        return time.perf_counter() - start
    finally:
        for name, value in defaults.items():
            setattr(plan, name, value)


def inputs(name, dtype):
    """(X, one-hot Y) of the input ``name`` in ``dtype``."""
    if name.startswith("random:"):
        rng = np.random.default_rng(0)
        X = rng.random((60000, 784)) * (rng.random((60000, 784)) < float(name.split(":")[1]))
        return X.astype(dtype), np.eye(10, dtype=dtype)[rng.integers(0, 10, 60000)]
    X, Y, _, _ = prepare(*load_dataset(name, download=False, progress=False), dtype=np.dtype(dtype))
    return X, Y


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cells", nargs="+", default=CELLS, help="hidden:batch:steps, e.g. 64,32:256:50")
    parser.add_argument("--inputs", nargs="+", default=["mnist"], help="mnist, fashion-mnist or random:D")
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print("| input | nonzero | hidden | batch | dtype | reference | BLAS path | kernels | BLAS path speed-up | "
          "kernels speed-up | plan picks |")
    print("|---|---:|---|---:|---|---:|---:|---:|---:|---:|---|")
    for name, dtype in ((name, dtype) for name in args.inputs for dtype in ("float64", "float32")):
        X_all, Y_all = inputs(name, dtype)
        for cell in args.cells:
            hidden_text, batch, steps = cell.split(":")
            hidden, batch, steps = tuple(int(h) for h in hidden_text.split(",")), int(batch), int(steps)
            X, Y = X_all[:batch * steps], Y_all[:batch * steps]
            for variant in ("blas", "kernels"):
                seconds(variant, hidden, X, Y, batch, dtype)  # compile (or load) and index outside the timing
            times = {variant: [] for variant in ("reference", "blas", "kernels")}
            for _ in range(args.rounds):
                for variant in times:
                    times[variant].append(seconds(variant, hidden, X, Y, batch, dtype))
            median = {variant: float(np.median(values)) for variant, values in times.items()}
            np.random.seed(42)
            net = fastscratch.SimpleNetwork(784, 10, hidden)
            picks = "BLAS" if plan.past_crossover(net, batch, plan.nonzero_fraction(X)) else "kernels"
            print(f"| {name} | {plan.nonzero_fraction(X):.0%} | {'-'.join(map(str, hidden))} | {batch} | {dtype} | {median['reference'] * 1e3:.1f} ms | "
                  f"{median['blas'] * 1e3:.1f} ms | {median['kernels'] * 1e3:.1f} ms | "
                  f"{median['reference'] / median['blas']:.2f}x | {median['reference'] / median['kernels']:.2f}x | "
                  f"{picks} |", flush=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
