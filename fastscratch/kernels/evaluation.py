"""Prediction and accuracy: forward passes in chunks, then argmax per row."""
from fastscratch._config import jit
from fastscratch.kernels.dense_forward import dense_forward
from fastscratch.kernels.sparse_input import sparse_forward


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
def predict_classes(X, indptr, indices, weights, biases, codes, ys, classes):
    """Write the predicted class of each row of X (N, n_in) into classes (N,).

    indptr, indices: X's nonzero structure (``sparse_input.nonzero_structure``).
    ys: per-layer buffers (chunk, n_out), overwritten. Every row is computed as
    a one-row forward pass would be, so predictions do not depend on the chunk.
    """
    chunk = ys[0].shape[0]
    num_layers = len(weights)
    for begin in range(0, X.shape[0], chunk):
        rows = min(chunk, X.shape[0] - begin)
        sparse_forward(X, indptr, indices, begin, weights[0], biases[0], codes[0], ys[0][:rows])
        for layer in range(1, num_layers):
            dense_forward(ys[layer - 1][:rows], weights[layer], biases[layer], codes[layer], ys[layer][:rows])
        out = ys[num_layers - 1]
        for r in range(rows):
            classes[begin + r] = argmax(out, r)


@jit
def count_correct(X, indptr, indices, labels, weights, biases, codes, ys, classes):
    """Return how many rows of X are predicted as labels (N,); classes (N,) is overwritten."""
    predict_classes(X, indptr, indices, weights, biases, codes, ys, classes)
    correct = 0
    for i in range(labels.shape[0]):
        if classes[i] == labels[i]:
            correct += 1
    return correct
