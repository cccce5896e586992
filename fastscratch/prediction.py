"""Compiled forward passes over many rows: the classes of ``predict`` and ``evaluate_accuracy``.

The rows' structure comes from what is kept with them (``kept_data``), so
that evaluating the same validation set every epoch indexes it once.
"""
import numpy as np

from fastscratch import plan as plans
from fastscratch.kernels.evaluation import ForwardWork, predict_classes
from fastscratch.kept_data import entries_of
from fastscratch.kernels.structure import MIN_ROWS_PER_THREAD, Structure, in_parts, index_dtype

#: Rows per group of the compiled forward passes in ``evaluate_accuracy`` and batched ``predict``: the first
#: layer takes a group a block of inputs at a time, its outputs in L1 (a speed setting: the bits do not depend on it).
EVAL_GROUP = 32


def indices_dtype(sizes):
    """The index dtype of the structures of inputs to layers of these widths."""
    return index_dtype(max(sizes[:-1]))


def structure(X, sizes, kept, known=None):
    """The ``Structure`` of X for the compiled passes through layers of ``sizes`` (the first layer's CSR structure:
    the hidden layers walk their dense inputs), and X's ``Indexed`` from ``kept`` (a ``kept_data.Place``;
    ``known``: see ``KeptData.index``)."""
    entry = kept.index(X, indices_dtype(sizes), known)
    return Structure((entry.indptr,), (entry.indices,), entry.values), entry


def outputs(sizes, rows, dtype):
    """One output buffer per layer for ``rows`` rows."""
    return tuple(np.empty((rows, size), dtype=dtype) for size in sizes[1:])


def forward_work(X, sizes, dtype, kept, known=None, every_row=False):
    """The ``ForwardWork`` of ``predict_classes`` for X, ``EVAL_GROUP`` rows at a time, and X's ``Indexed``
    (see ``structure``). ``every_row``: buffers with a row for every row of X, which then hold every layer's
    outputs (``predict`` leaves them on the layers, as the reference's forward pass does)."""
    group = max(min(EVAL_GROUP, len(X)), 1)
    rows_structure, entry = structure(X, sizes, kept, known)
    entries = entries_of(entry, sizes[0], group)
    return ForwardWork(outputs(sizes, len(X) if every_row else group, dtype), rows_structure, entries, group), entry


def predict(plan, work):
    """The classes of the rows whose structure is in ``work`` (``forward_work``), for a ``NetworkPlan``
    whose ``compiled_forward`` holds.

    Rows are independent, so large inputs are split over threads as the
    indexing is (``structure.in_parts``), in whole groups; each part has its
    own buffers, or its own rows of buffers that hold every row
    (``forward_work(every_row=True)``).
    """
    rows_structure, entries, group = work.structure, work.entries, work.group
    classes = np.empty(len(rows_structure.indptrs[0]) - 1, dtype=np.int64)
    arguments = plan.arguments()
    every_row = len(work.ys[0]) > group
    whole = len(entries.starts) - 1

    def run(first, last):  # groups first .. last - 1
        start, stop = first * group, min(last * group, len(classes))
        part = Structure((rows_structure.indptrs[0][start:stop + 1],), rows_structure.indices, rows_structure.values)
        part_entries = entries._replace(starts=entries.starts[min(first, whole):min(last, whole) + 1])
        if every_row:
            ys = tuple(y[start:stop] for y in work.ys)
        else:
            ys = work.ys if first == 0 else tuple(np.empty_like(y) for y in work.ys)
        predict_classes(*arguments, ForwardWork(ys, part, part_entries, group), classes[start:stop])
    in_parts(run, -(-len(classes) // group), -(-MIN_ROWS_PER_THREAD // group))
    return classes


#: Fewer rows than this are evaluated one by one (``accuracy``): indexing them for the compiled pass costs
#: more than it saves.
COMPILED_MIN_ROWS = 8


def accuracy(network, X_val, y_val, val_work, numpy=False, call_plan=None):
    """``evaluate_accuracy`` on checked arguments: compiled when the network's functions allow, else the
    reference's per-sample loop, planned once (``numpy``: with the reference's expressions, for a non-finite
    X_val). ``val_work`` returns X_val's ``ForwardWork`` (``forward_work``; a training session's is kept across
    epochs). ``call_plan``: the network's per-call plan, for sets of fewer than ``COMPILED_MIN_ROWS`` rows."""
    if call_plan is not None and len(X_val) < COMPILED_MIN_ROWS and not numpy:
        plan = call_plan
    else:
        plan = plans.network_plan(network, numpy=numpy)
    if plan.compiled_forward and plan is not call_plan:
        correct = np.count_nonzero(predict(plan, val_work()) == y_val)
        plan.forward(X_val[-1])  # the reference's per-sample loop leaves the last sample's x and y
    else:
        correct = sum(int(np.argmax(plan.forward(x)) == label) for x, label in zip(X_val, y_val))
    return float(correct / len(X_val))
