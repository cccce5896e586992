"""``predict`` and ``evaluate_accuracy`` as a ``routing.Route`` says: layer after layer, row by row, or compiled
forward passes over many rows (``classes``).

The rows' structure comes from what is kept with them (``kept_data``), so
that evaluating the same validation set every epoch indexes it once.
"""
import numpy as np

from fastscratch import config, steps
from fastscratch.kernels.evaluation import ForwardWork, predict_classes
from fastscratch.kernels.structure import Structure, full_structure, in_parts, index_dtype
from fastscratch.routing import Way


def sizes_of(network):
    """The layer widths, input first."""
    return (network.num_inputs, *(layer.size for layer in network.layers))


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


def predict(route, x, every_row):
    """``predict``'s classes of x as ``route`` says; ``every_row()`` gives the ``ForwardWork`` of x whose buffers
    hold every row (``forward_work(rows=len(x))``), for ``Way.COMPILED_ROWS``. Either way the layers are left
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
    indexing is (``structure.in_parts``); each part has its own buffers, or
    its own rows of buffers that hold every row (``forward_work(rows=len(X))``),
    which then hold every layer's outputs.
    """
    rows_structure = work.structure
    found = np.empty(len(rows_structure.indptrs[0]) - 1, dtype=np.int64)
    weights, biases, codes = route.weights, route.biases, route.activation_codes
    every_row = len(work.ys[0]) == len(found)

    def run(start, stop):
        part = Structure((rows_structure.indptrs[0][start:stop + 1], *rows_structure.indptrs[1:]),
                         rows_structure.indices, rows_structure.values)
        if every_row:
            ys = tuple(y[start:stop] for y in work.ys)
        else:
            ys = work.ys if start == 0 else tuple(np.empty_like(y) for y in work.ys)
        predict_classes(weights, biases, codes, ForwardWork(ys, part), found[start:stop])
    in_parts(run, len(found), config.MIN_ROWS_PER_THREAD)
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
