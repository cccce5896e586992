"""``predict`` and ``evaluate_accuracy`` as a ``routing.Route`` says: layer after layer, row by row, or compiled
forward passes over many rows (``classes``).

The rows' structure comes from what is kept with them (``kept_data``), so
that evaluating the same validation set every epoch indexes it once.
"""
import numpy as np

from fastscratch import config, steps
from fastscratch.kernels.evaluation import ForwardWork, predict_classes
from fastscratch.kept_data import entries_of
from fastscratch.kernels.structure import Structure, in_parts, index_dtype
from fastscratch.routing import Way


def sizes_of(network):
    """The layer widths, input first."""
    return (network.num_inputs, *(layer.size for layer in network.layers))


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
    """The ``ForwardWork`` of ``predict_classes`` for X, ``config.EVAL_GROUP`` rows at a time, and X's ``Indexed``
    (see ``structure``). ``every_row``: buffers with a row for every row of X, which then hold every layer's
    outputs (``predict`` leaves them on the layers, as the reference's forward pass does)."""
    group = max(min(config.EVAL_GROUP, len(X)), 1)
    rows_structure, entry = structure(X, sizes, kept, known)
    entries = entries_of(entry, sizes[0], group)
    return ForwardWork(outputs(sizes, len(X) if every_row else group, dtype), rows_structure, entries, group), entry


def predict(route, x, every_row):
    """``predict``'s classes of x as ``route`` says; ``every_row()`` gives the ``ForwardWork`` of x whose buffers
    hold every row (``forward_work(every_row=True)``), for ``Way.COMPILED_ROWS``. Either way the layers are left
    with x and its outputs, as the reference's forward pass leaves them."""
    if route.way is Way.COMPILED_ROWS:
        work = every_row()
        found = classes(route, work)
        for layer, y in zip(route.layers, work.ys):
            layer.layer.x, layer.layer.y, x = x, y, y
        return found
    outputs = steps.forward(route, x)
    return np.argmax(outputs, axis=1) if x.ndim == 2 and len(x) > 1 else np.argmax(outputs)


def classes(route, work):
    """The classes of the rows whose structure is in ``work`` (``forward_work``), for a route of
    ``Way.COMPILED_ROWS``.

    Rows are independent, so large inputs are split over threads as the
    indexing is (``structure.in_parts``), in whole groups; each part has its
    own buffers, or its own rows of buffers that hold every row
    (``forward_work(every_row=True)``).
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
    ``Way.ROW_BY_ROW``); ``rows_work()`` gives X's ``ForwardWork`` (``forward_work``; a ``train`` call keeps
    its own across epochs) for the compiled rows."""
    if route.way is Way.COMPILED_ROWS:
        correct = np.count_nonzero(classes(route, rows_work()) == y)
        steps.forward(route, X[-1])  # the reference's per-sample loop leaves the last sample's x and y
    else:
        correct = sum(int(np.argmax(steps.forward(route, x)) == label) for x, label in zip(X, y))
    return float(correct / len(X))
