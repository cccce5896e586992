"""The first layer's chunk size: the compiled epoch's training loop at each chunk size, alternating, pinned.

Also the first layer's forward pass alone over the epoch's batches
(``--forward``): ``chunked_forward`` at each size against ``dense_forward``,
the walk before chunks (each image's row at once, rows of W prefetched), with
the weights fixed, so that the part that changed is timed without the rest.

``kernels.training.train_epoch`` walks each batch's union of nonzero inputs
in chunks of ``structure.FIRST_LAYER_CHUNK`` (``structure.batch_chunks``).
This builds the epoch's structures once per chunk size (``all``: one chunk
per batch, each image's whole row at once, the walk before chunks) and times
the seed's epoch of training (784-64-32-10 sigmoid/L2, batch 30, 2,000
steps, no evaluation) at each size in turn, ``--rounds`` times, in one
process pinned to one CPU, from the same seeded weights each time; every
size must give the same losses, bit for bit. Usage::

    python benchmarks/chunks.py [--chunks 16,32,64,128,all] [--rounds 7] [--cpu 1] [--dtypes float64,float32]
                                [--forward]

Prints the load average before and after, and a Markdown table of medians
(min-max) and their ratio to ``all``.
"""
import argparse
import os
import statistics
import time

import numpy as np

import fastscratch
from fastscratch.datasets import load_mnist, prepare
from fastscratch.environment import load
from fastscratch.kernel_cache import jit
from fastscratch.kernels import activations, losses
from fastscratch.kernels.dense_forward import chunked_forward, dense_forward
from fastscratch.kernels.structure import (BatchStructure, Structure, batch_chunks, batch_columns, full_columns,
                                          full_structure, index_dtype, nonzero_structure)
from fastscratch.kernels.training import EpochWork, train_epoch

SIZES, BATCH, LR = (784, 64, 32, 10), 30, 1e-3



def epoch_work(X, dtype, chunk):
    """The ``EpochWork`` of the seed's network on X with the first layer cut in chunks of ``chunk``."""
    indices_dtype = index_dtype(max(SIZES[:-1]))
    offsets_dtype = index_dtype(BATCH * max(SIZES[:-1]) + 1)
    indptr, indices, values = nonzero_structure(X, indices_dtype)
    columns = batch_columns(indptr, indices, SIZES[0], BATCH, offsets_dtype)
    hidden = [full_structure(BATCH, width, indices_dtype) for width in SIZES[1:-1]]
    outputs = [tuple(np.empty((BATCH, size), dtype=dtype) for size in SIZES[1:]) for _ in range(2)]
    return EpochWork(
        *outputs, tuple(np.empty((b, a), dtype=dtype) for a, b in zip(SIZES[:-1], SIZES[1:])),
        Structure((indptr, *(h[0] for h in hidden)), (indices, *(h[1] for h in hidden)), values),
        BatchStructure(columns, batch_chunks(indptr, indices, columns, BATCH, chunk, offsets_dtype)),
        tuple(full_columns(BATCH, width, offsets_dtype) for width in SIZES[:-1]),
        tuple(np.empty(size, dtype=dtype) for size in SIZES[1:]))


def seeded_weights(dtype):
    np.random.seed(42)
    np.random.randint(0, 10000)  # the tutorial's test-image draw comes first
    net = fastscratch.SimpleNetwork(784, 10, list(SIZES[1:-1]), dtype=dtype)
    return [(layer.W, layer.b) for layer in net.layers]


def one_epoch(Y, work, dtype, weights):
    """Seconds of one epoch of training from copies of weights, and its loss sum."""
    Ws = tuple(W.copy() for W, _ in weights)
    bs = tuple(b.copy() for _, b in weights)
    codes = np.full(len(Ws), activations.SIGMOID, dtype=np.int64)
    start = time.perf_counter()
    loss_sum, bad, _, _ = train_epoch(Y, BATCH, dtype.type(LR), Ws, bs, codes, losses.L2, work)
    seconds = time.perf_counter() - start
    assert bad == -1
    return seconds, loss_sum


@jit
def forward_passes(work, W, b, y, chunked):
    """The first layer's forward pass of every batch, chunked or by ``dense_forward``; y (BATCH, n_out)."""
    indptr, indices, values = work.structure.indptrs[0], work.structure.indices[0], work.structure.values
    chunks = work.batches.chunks
    for batch in range(chunks.starts.shape[0] - 1):
        if chunked:
            chunked_forward(indptr, indices, values, batch * BATCH, chunks.ends[chunks.starts[batch]:
                                                                               chunks.starts[batch + 1]],
                            W, b, activations.SIGMOID, y)
        else:
            dense_forward(indptr, indices, values, batch * BATCH, W, b, activations.SIGMOID, y)


def time_forward(works, chunks, dtype, weights, rounds):
    """Medians (min-max) of the first layer's forward passes over an epoch, per chunk size and before."""
    W, b = weights[0]
    y = np.empty((BATCH, W.shape[1]), dtype=dtype)
    variants = [("before", chunks[0], False)] + [(c, c, True) for c in chunks]
    times = {name: [] for name, _, _ in variants}
    outputs = {}
    for name, chunk, chunked in variants * (rounds + 1):
        start = time.perf_counter()
        forward_passes(works[chunk], W, b, y, chunked)
        times[name].append(time.perf_counter() - start)
        if outputs.setdefault(name, y.tobytes()) != outputs["before"]:
            raise AssertionError(f"chunk {name}: not the bits of dense_forward")
    return {name: values[1:] for name, values in times.items()}  # the first round compiles


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="16,32,64,128,all")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--cpu", type=int, default=1, help="the CPU to pin to (-1: none)")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--forward", action="store_true", help="time the first layer's forward pass alone")
    args = parser.parse_args(argv)
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})
    chunks = [SIZES[0] if c == "all" else int(c) for c in args.chunks.split(",")]
    print(f"load average before: {load()}; pinned to {sorted(os.sched_getaffinity(0))}", flush=True)
    raw = load_mnist(os.environ.get("FASTSCRATCH_MNIST_DIR"), download=False, progress=False)
    rows = []
    for dtype in (np.dtype(name) for name in args.dtypes.split(",")):
        X, Y, _, _ = prepare(*raw, dtype=dtype)
        weights = seeded_weights(dtype)
        started = time.perf_counter()
        works = {chunk: epoch_work(X, dtype, chunk) for chunk in chunks}
        print(f"{dtype.name}: structures for {len(chunks)} chunk sizes in {time.perf_counter() - started:.1f} s; "
              f"chunks per batch: " + ", ".join(f"{c}: {len(works[c].batches.chunks.ends) / (len(X) // BATCH):.1f}"
                                              for c in chunks), flush=True)
        if args.forward:
            forward = time_forward(works, chunks, dtype, weights, args.rounds)
            before = statistics.median(forward["before"])
            for name, values in forward.items():
                median = statistics.median(values)
                rows.append(f"| {dtype.name} forward only | {'all' if name == SIZES[0] else name} | {median:.4f} "
                            f"({min(values):.4f}-{max(values):.4f}) | {median / before:.2f} vs before |")
            print(f"  forward only: load {load()}", flush=True)
            continue
        times = {chunk: [] for chunk in chunks}
        sums = {}
        for chunk in chunks:  # compile, or load from the cache
            sums[chunk] = one_epoch(Y, works[chunk], dtype, weights)[1]
        for round_ in range(args.rounds):
            for chunk in chunks:
                seconds, loss_sum = one_epoch(Y, works[chunk], dtype, weights)
                assert loss_sum == sums[chunks[0]], (chunk, loss_sum, sums[chunks[0]])
                times[chunk].append(seconds)
            print(f"  round {round_ + 1}/{args.rounds}: " + ", ".join(f"{c}: {times[c][-1]:.3f} s" for c in chunks)
                  + f"; load {load()}", flush=True)
        whole = statistics.median(times[SIZES[0]]) if SIZES[0] in times else None
        for chunk in chunks:
            median = statistics.median(times[chunk])
            ratio = f"{median / whole:.2f} vs all" if whole else "-"
            rows.append(f"| {dtype.name} | {'all' if chunk == SIZES[0] else chunk} | {median:.4f} "
                        f"({min(times[chunk]):.4f}-{max(times[chunk]):.4f}) | {ratio} |")
    print(f"\nload average after: {load()}\n")
    print("| dtype | chunk | s per epoch, median (min-max) | ratio of medians |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
