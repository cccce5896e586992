"""Compiled forward passes over many rows: the classes of ``predict`` and ``evaluate_accuracy``.

The rows' structure comes from what is kept with them (``kept_data``), so
that evaluating the same validation set every epoch indexes it once.
"""
import numpy as np

from fastscratch import config
from fastscratch import plan as plans
from fastscratch.kernels.evaluation import ForwardWork, predict_classes
from fastscratch.kernels.structure import Structure, full_structure, in_parts, index_dtype


def indices_dtype(sizes):
    """The index dtype of the structures of inputs to layers of these widths."""
    return index_dtype(max(sizes[:-1]))


def structure(X, sizes, rows, kept, known=None):
    """The ``Structure`` of X for forward passes ``rows`` at a time through layers of ``sizes``, and X's
    ``Indexed`` from ``kept`` (a ``kept_data.Place``; ``known``: see ``KeptData.index``)."""
    index = indices_dtype(sizes)
    hidden = [full_structure(rows, width, index) for width in sizes[1:-1]]
    entry = kept.index(X, index, known)
    return Structure((entry.indptr, *(s[0] for s in hidden)), (entry.indices, *(s[1] for s in hidden)),
                     entry.values), entry


def outputs(sizes, rows, dtype):
    """One output buffer per layer for ``rows`` rows."""
    return tuple(np.empty((rows, size), dtype=dtype) for size in sizes[1:])


def forward_work(X, sizes, dtype, kept, known=None, rows=None):
    """The ``ForwardWork`` of ``predict_classes`` for X, ``rows`` rows at a time (``config.EVAL_CHUNK``), and X's
    ``Indexed`` (see ``structure``). With ``rows=len(X)`` its buffers receive every row's outputs (``predict``)."""
    rows = min(config.EVAL_CHUNK if rows is None else rows, len(X))
    rows_structure, entry = structure(X, sizes, rows, kept, known)
    return ForwardWork(outputs(sizes, rows, dtype), rows_structure), entry


def predict(plan, work):
    """The classes of the rows whose structure is in ``work`` (``forward_work``), for a ``NetworkPlan``
    whose ``compiled_forward`` holds.

    Rows are independent, so large inputs are split over threads as the
    indexing is (``structure.in_parts``); each part has its own buffers, or
    its own rows of buffers that hold every row (``forward_work(rows=len(X))``),
    which then hold every layer's outputs.
    """
    rows_structure = work.structure
    classes = np.empty(len(rows_structure.indptrs[0]) - 1, dtype=np.int64)
    arguments = plan.arguments()
    every_row = len(work.ys[0]) == len(classes)

    def run(start, stop):
        part = Structure((rows_structure.indptrs[0][start:stop + 1], *rows_structure.indptrs[1:]),
                         rows_structure.indices, rows_structure.values)
        if every_row:
            ys = tuple(y[start:stop] for y in work.ys)
        else:
            ys = work.ys if start == 0 else tuple(np.empty_like(y) for y in work.ys)
        predict_classes(*arguments, ForwardWork(ys, part), classes[start:stop])
    in_parts(run, len(classes), config.MIN_ROWS_PER_THREAD)
    return classes


def accuracy(network, X_val, y_val, val_work, numpy=False, call_plan=None):
    """``evaluate_accuracy`` on checked arguments: compiled when the network's functions allow, else the
    reference's per-sample loop, planned once (``numpy``: with the reference's expressions, for a non-finite
    X_val). ``val_work`` returns X_val's ``ForwardWork`` (``forward_work``; a training session's is kept across
    epochs). ``call_plan``: the network's per-call plan, for sets of fewer than ``config.COMPILED_MIN_ROWS`` rows."""
    if call_plan is not None and len(X_val) < config.COMPILED_MIN_ROWS and not numpy:
        plan = call_plan
    else:
        plan = plans.network_plan(network, numpy=numpy)
    if plan.compiled_forward and plan is not call_plan:
        correct = np.count_nonzero(predict(plan, val_work()) == y_val)
        plan.forward(X_val[-1])  # the reference's per-sample loop leaves the last sample's x and y
    else:
        correct = sum(int(np.argmax(plan.forward(x)) == label) for x, label in zip(X_val, y_val))
    return float(correct / len(X_val))
