"""Where the compiled epoch's time goes, piece by piece: the seed's epoch cut short after each piece, pinned.

The epoch's batch loop (``kernels.training.train_epoch``'s kernel calls, in
its order) runs over the whole epoch's 2,000 batches of 30 (784-64-32-10
sigmoid/L2, lr 1e-3) with only the first k of its four pieces per batch,
k = 1 .. 4:

1. ``first layer forward``: the first layer's product over each batch's
   nonzero pixels and its sigmoid (``dense_forward.chunked_forward``);
2. ``hidden layers forward + loss``: the other layers' forward passes and the
   loss with its gradient;
3. ``hidden layers backward + steps``: the derivatives, the input gradients
   and the SGD steps of the layers after the first, and the first layer's
   dL/dz;
4. ``first layer step``: the first layer's SGD step (``sgd.gradient_step``
   over the batch's column structure);

and a piece's time is the difference of the medians of the loops with and
without it. (Each piece in a loop of its own misleads: the first layer's step
alone ran 1.5x its time in the epoch here, its rows no longer read warm by the
forward pass.) k = 4 is the epoch, checked to give ``train_epoch``'s losses,
and ``train_epoch`` itself is timed in the same rounds; then ``evaluation``:
the predicted classes of the 10,000 test images (``predict_classes``). All
from the seeded weights, alternating, ``--rounds`` times, in one process
pinned to one CPU. Usage::

    python benchmarks/pieces.py [--rounds 7] [--cpu 1] [--dtypes float64,float32] [--clock wall|cpu]

Prints the load average before and after and a Markdown table, milliseconds
per epoch (medians; min-max for the whole loops).
"""
import argparse
import functools
import os
import statistics
import sys
import time

import numpy as np

import fastscratch
from fastscratch.kernel_cache import jit
from fastscratch.datasets import load_mnist, prepare
from fastscratch.environment import load
from fastscratch.buffers import epoch_buffers, forward_buffers, indices_dtype
from fastscratch.kept_data import Indexed
from fastscratch.kernels import activations, losses
from fastscratch.kernels.activations import times_derivative
from fastscratch.kernels.dense_backward import input_gradient
from fastscratch.kernels.dense_forward import chunked_forward, full_forward
from fastscratch.kernels.evaluation import predict_classes
from fastscratch.kernels.losses import loss_and_gradient
from fastscratch.kernels.sgd import full_gradient_step, gradient_step
from fastscratch.kernels.structure import Columns, nonzero_structure
from fastscratch.kernels.training import train_epoch

SIZES, BATCH, LR = (784, 64, 32, 10), 30, 1e-3

PIECES = ("first layer forward", "hidden layers forward + loss", "hidden layers backward + steps",
          "first layer step", "evaluation")


def indexed(X):
    """X's structure, as a ``train`` call indexes it (``inputs.DataClaim.indexed``)."""
    return Indexed(*nonzero_structure(X, indices_dtype(SIZES)), {})


def seeded_weights(dtype):
    """[(W, b), ...] of the tutorial's seeded network."""
    np.random.seed(42)
    np.random.randint(0, 10000)  # the tutorial's test-image draw comes first
    net = fastscratch.SimpleNetwork(784, 10, list(SIZES[1:-1]), dtype=dtype)
    return [(layer.W, layer.b) for layer in net.layers]


@jit
def epoch_upto(pieces, Y, work, weights, biases, codes, learning_rate):
    """The compiled epoch's batch loop (``train_epoch``'s kernel calls, in its order) running only the first
    ``pieces`` of the four training pieces of each batch; return the sum of the losses (0 before the loss)."""
    ys, dzs, WTs, inputsT, scratch = work.ys, work.dzs, work.WTs, work.inputsT, work.scratch
    indptr = work.structure.indptrs[0]
    first_columns, entries = work.batches.columns, work.batches.entries
    last = len(weights) - 1
    loss_sum = 0.0
    for batch in range(Y.shape[0] // BATCH):
        begin = batch * BATCH
        first, end = indptr[begin], indptr[begin + BATCH]
        segments, next_segments = entries.starts[batch], entries.starts[batch + 1]
        chunked_forward(first, entries.rows[segments:next_segments], entries.ends[segments:next_segments],
                        entries.indices, entries.values, weights[0], biases[0], codes[0], ys[0])
        if pieces < 2:
            continue
        for layer in range(1, last + 1):
            full_forward(ys[layer - 1], weights[layer], biases[layer], codes[layer], ys[layer])
        loss_sum += loss_and_gradient(ys[last], Y[begin:begin + BATCH], losses.L2, dzs[last])
        if pieces < 3:
            continue
        for layer in range(last, 0, -1):
            times_derivative(dzs[layer], ys[layer], codes[layer], dzs[layer])
            input_gradient(dzs[layer], weights[layer], WTs[layer], dzs[layer - 1])
            full_gradient_step(ys[layer - 1], inputsT[layer], dzs[layer], weights[layer], biases[layer],
                               learning_rate, scratch[layer])
        times_derivative(dzs[0], ys[0], codes[0], dzs[0])
        if pieces < 4:
            continue
        gradient_step(Columns(first_columns.starts[batch], first_columns.rows[first:end],
                              first_columns.positions[first:end]),
                      entries.values[first:end], dzs[0], weights[0], biases[0], learning_rate, scratch[0])
    return loss_sum


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cpu", type=int, default=1, help="the CPU to pin to (-1: none)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall-clock time, or this thread's CPU time (leaves out the time other processes took "
                             "the CPU: steadier on a loaded machine, though they still share its caches)")
    args = parser.parse_args(argv)
    clock = time.perf_counter if args.clock == "wall" else time.thread_time
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    print(f"load average before: {load()}; pinned to {sorted(os.sched_getaffinity(0))}; {args.clock} clock",
          file=sys.stderr, flush=True)
    raw = load_mnist(os.environ.get("FASTSCRATCH_MNIST_DIR"), download=False, progress=False)
    began = time.perf_counter()
    rows = []
    for dtype in (np.dtype(name) for name in args.dtypes.split(",")):
        X, Y, X_test, _ = prepare(*raw, dtype=dtype)
        work = epoch_buffers(indexed(X), SIZES, BATCH, dtype)
        eval_work = forward_buffers(indexed(X_test), SIZES, dtype)
        seeded = seeded_weights(dtype)
        weights = tuple(W.copy() for W, _ in seeded)
        biases = tuple(b.copy() for _, b in seeded)
        codes = np.full(len(weights), activations.SIGMOID, dtype=np.int64)
        learning_rate = dtype.type(LR)
        classes = np.empty(len(X_test), dtype=np.int64)

        def epoch():
            return train_epoch(Y, BATCH, learning_rate, weights, biases, codes, losses.L2, work)[0]
        calls = {"whole epoch (train_epoch)": epoch,
                 **{f"pieces 1-{k}": functools.partial(epoch_upto, k, Y, work, weights, biases, codes, learning_rate)
                    for k in range(1, 5)},
                 PIECES[4]: lambda: predict_classes(weights, biases, codes, eval_work, classes)}
        times = {name: [] for name in calls}
        sums = {}
        for round_ in range(args.rounds + 1):  # the first round compiles, or loads from the cache
            for name, call in calls.items():
                for (W, b), (W0, b0) in zip(zip(weights, biases), seeded):  # each loop from the seeded weights
                    W[...], b[...] = W0, b0
                start = clock()
                result = call()
                times[name].append(clock() - start)
                if name == "pieces 1-4" and result != sums["whole epoch (train_epoch)"]:
                    raise AssertionError("epoch_upto is no longer train_epoch's sequence: other losses")
                sums[name] = result
            print(f"{dtype.name} round {round_}/{args.rounds}; load {load()}", file=sys.stderr, flush=True)
        medians = {name: statistics.median(values[1:]) for name, values in times.items()}
        before = 0.0
        for k, piece in enumerate(PIECES[:4], 1):
            median = medians[f"pieces 1-{k}"]
            rows.append(f"| {dtype.name} | {piece} | {1e3 * (median - before):.1f} |")
            before = median
        for name in ("whole epoch (train_epoch)", "pieces 1-4", PIECES[4]):
            values = times[name]
            rows.append(f"| {dtype.name} | {name} | {1e3 * medians[name]:.1f} ({1e3 * min(values[1:]):.1f}-"
                        f"{1e3 * max(values[1:]):.1f}) |")
    print(f"load average after: {load()}; {time.perf_counter() - began:.0f} s", file=sys.stderr)
    print("| dtype | piece | ms per epoch, median (min-max) |")
    print("|---|---|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
