"""Predictions: forward passes in chunks, then argmax per row (accuracy counts them in NumPy)."""
from collections import namedtuple

import numpy as np

from fastscratch.kernel_cache import jit
from fastscratch.kernels.dense_forward import dense_forward

#: What ``predict_classes`` walks: per-layer output buffers ``ys`` (chunk, n_out) and the layers'
#: input ``structure.Structure``.
ForwardWork = namedtuple("ForwardWork", ["ys", "structure"])


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

    work is a ``ForwardWork``: per-layer output buffers (chunk, n_out), and
    each layer's input structure, X's whole CSR structure
    (``structure.nonzero_structure``) then, for the hidden layers,
    ``structure.full_structure`` of chunk rows. Every row is computed as a
    one-row forward pass would be, so predictions do not depend on the chunk.
    """
    ys = work.ys
    indptrs, indices, values = work.structure.indptrs, work.structure.indices, work.structure.values
    start = np.int64(0)  # typed, not literal, to share the compilation of dense_forward
    chunk = ys[0].shape[0]
    last = len(weights) - 1
    for begin in range(0, classes.shape[0], chunk):
        rows = min(chunk, classes.shape[0] - begin)
        dense_forward(indptrs[0], indices[0], values, begin, weights[0], biases[0], codes[0], ys[0][:rows])
        for layer in range(1, last + 1):
            dense_forward(indptrs[layer], indices[layer], ys[layer - 1][:rows].ravel(), start, weights[layer],
                          biases[layer], codes[layer], ys[layer][:rows])
        for r in range(rows):
            classes[begin + r] = argmax(ys[last], r)
