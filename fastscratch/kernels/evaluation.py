"""Predictions: forward passes a group of rows at a time, then argmax per row (accuracy counts them in NumPy)."""
from collections import namedtuple

from fastscratch.kernel_cache import jit
from fastscratch.kernels.dense_forward import chunked_forward, dense_forward, full_forward

#: What ``predict_classes`` walks: per-layer output buffers ``ys``, (group, n_out) reused by every group or
#: (N, n_out) for every row's outputs; X's ``structure.Structure`` (the first layer's CSR structure; the hidden
#: layers' are not used) and its ``structure.BlockEntries`` in whole groups of ``group`` rows
#: (``structure.batch_entries``).
ForwardWork = namedtuple("ForwardWork", ["ys", "structure", "entries", "group"])


@jit
def argmax(y, r):
    """Index of the largest value of row r of y, the first on ties; a NaN counts as largest (np.argmax's rules)."""
    best = 0
    best_value = y[r, 0]
    if best_value != best_value:
        return 0
    for j in range(1, y.shape[1]):
        value = y[r, j]
        if value != value:
            return j
        if value > best_value:
            best, best_value = j, value
    return best


@jit
def predict_classes(weights, biases, codes, work, classes):
    """Write the predicted class of each row of X (N, n_in), given by its structure in work, into classes (N,).

    work is a ``ForwardWork``. Rows go a group (``work.group`` rows) at a
    time, their outputs in the buffers' first rows, or in their own rows
    where the buffers have a row for every row of X (overwritten either
    way): a whole group's first layer a block of inputs at a time for all
    its rows (``chunked_forward`` over ``work.entries``), the last rows one
    by one (``dense_forward``), the hidden layers over the dense outputs
    (``full_forward``). Every row is computed as a one-row forward pass
    would be (the same bits), so predictions do not depend on the group.
    """
    ys = work.ys
    indptr, indices, values = work.structure.indptrs[0], work.structure.indices[0], work.structure.values
    entries = work.entries
    starts = entries.starts
    group = work.group
    every_row = ys[0].shape[0] > group
    last = len(weights) - 1
    for g in range((classes.shape[0] + group - 1) // group):
        begin = g * group
        rows = min(group, classes.shape[0] - begin)
        at = begin if every_row else 0  # where this group's outputs go in the buffers
        if g < starts.shape[0] - 1:
            chunked_forward(indptr[begin], entries.rows[starts[g]:starts[g + 1]], entries.ends[starts[g]:starts[g + 1]],
                            entries.indices, entries.values, weights[0], biases[0], codes[0], ys[0][at:at + group])
        else:
            dense_forward(indptr, indices, values, begin, weights[0], biases[0], codes[0], ys[0][at:at + rows])
        for layer in range(1, last + 1):
            full_forward(ys[layer - 1][at:at + rows], weights[layer], biases[layer], codes[layer],
                         ys[layer][at:at + rows])
        for r in range(rows):
            classes[begin + r] = argmax(ys[last], at + r)


@jit
def count_equal(classes, labels):
    """How many of classes (N,) equal labels (N,) where they stand: the correct predictions."""
    count = 0
    for r in range(classes.shape[0]):
        count += classes[r] == labels[r]
    return count
