"""``predict`` and ``evaluate_accuracy`` as a ``routing.Route`` says: layer after layer, row by row, or compiled
forward passes over many rows (``classes``), in threads.

The compiled passes walk the rows' structure kept with them (``inputs``,
``buffers``), so that evaluating the same validation set every epoch indexes
it once.
"""
import numpy as np

from fastscratch import config, steps
from fastscratch.kernels.evaluation import ForwardWork, predict_classes
from fastscratch.kernels.structure import Structure, in_parts
from fastscratch.routing import Way


def predict(route, x, every_row):
    """``predict``'s classes of x as ``route`` says; ``every_row()`` gives the ``ForwardWork`` of x whose buffers
    hold every row (``buffers.forward_buffers(every_row=True)``), for ``Way.COMPILED_ROWS``. Either way the
    layers are left with x and its outputs, as the reference's forward pass leaves them."""
    if route.way is Way.COMPILED_ROWS:
        work = every_row()
        found = classes(route, work)
        for layer, y in zip(route.layers, work.ys):
            layer.layer.x, layer.layer.y, x = x, y, y
        return found
    outputs = steps.forward(route, x)
    return np.argmax(outputs, axis=1) if x.ndim == 2 and len(x) > 1 else np.argmax(outputs)


def classes(route, work):
    """The classes of the rows whose structure is in ``work`` (``buffers.forward_buffers``), for a route of
    ``Way.COMPILED_ROWS``.

    Rows are independent, so large inputs are split over threads as the
    indexing is (``structure.in_parts``), in whole groups; each part has its
    own buffers, or its own rows of buffers that hold every row
    (``buffers.forward_buffers(every_row=True)``).
    """
    rows_structure, entries, group = work.structure, work.entries, work.group
    found = np.empty(len(rows_structure.indptrs[0]) - 1, dtype=np.int64)
    weights, biases, codes = route.weights, route.biases, route.activation_codes
    every_row = len(work.ys[0]) > group
    whole = len(entries.starts) - 1

    def run(first, last):  # groups first .. last - 1
        start, stop = first * group, min(last * group, len(found))
        part = Structure((rows_structure.indptrs[0][start:stop + 1],), rows_structure.indices, rows_structure.values)
        part_entries = entries._replace(starts=entries.starts[min(first, whole):min(last, whole) + 1])
        if every_row:
            ys = tuple(y[start:stop] for y in work.ys)
        else:
            ys = work.ys if first == 0 else tuple(np.empty_like(y) for y in work.ys)
        predict_classes(weights, biases, codes, ForwardWork(ys, part, part_entries, group), found[start:stop])
    in_parts(run, -(-len(found) // group), -(-config.MIN_ROWS_PER_THREAD // group))
    return found


def accuracy(route, X, y, rows_work):
    """``evaluate_accuracy`` of X (2-D) and its labels y as ``route`` says (``Way.COMPILED_ROWS`` or
    ``Way.ROW_BY_ROW``); ``rows_work()`` gives X's ``ForwardWork`` (``buffers.forward_buffers``; a ``train`` call keeps
    its own across epochs) for the compiled rows."""
    if route.way is Way.COMPILED_ROWS:
        correct = np.count_nonzero(classes(route, rows_work()) == y)
        steps.forward(route, X[-1])  # the reference's per-sample loop leaves the last sample's x and y
    else:
        correct = sum(int(np.argmax(steps.forward(route, x)) == label) for x, label in zip(X, y))
    return float(correct / len(X))
