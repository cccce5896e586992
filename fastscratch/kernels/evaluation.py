"""Prediction and accuracy: forward passes in chunks, then argmax per row."""
from fastscratch._config import jit
from fastscratch.kernels.dense_forward import dense_forward


@jit
def argmax(row):
    """Index of the largest value, the first on ties; a NaN counts as largest (np.argmax's rules)."""
    best = 0
    best_value = row[0]
    if best_value != best_value:
        return 0
    for j in range(1, row.shape[0]):
        value = row[j]
        if value != value:
            return j
        if value > best_value:
            best, best_value = j, value
    return best


@jit
def predict_classes(X, weights, biases, codes, ys, classes):
    """Write the predicted class of each row of X (N, n_in) into classes (N,).

    ys: per-layer buffers (chunk, n_out), overwritten; rows are computed
    exactly as one-row forward passes would be, so a prediction does not
    depend on the chunk size.
    """
    chunk = ys[0].shape[0]
    num_layers = len(weights)
    for begin in range(0, X.shape[0], chunk):
        end = min(begin + chunk, X.shape[0])
        x = X[begin:end]
        for layer in range(num_layers):
            out = ys[layer][:end - begin]
            dense_forward(x, weights[layer], biases[layer], codes[layer], out)
            x = out
        for i in range(end - begin):
            classes[begin + i] = argmax(x[i])


@jit
def count_correct(X, labels, weights, biases, codes, ys, classes):
    """Return how many rows of X are predicted as labels (N,); classes (N,) is overwritten."""
    predict_classes(X, weights, biases, codes, ys, classes)
    correct = 0
    for i in range(labels.shape[0]):
        if classes[i] == labels[i]:
            correct += 1
    return correct
