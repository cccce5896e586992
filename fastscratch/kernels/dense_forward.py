"""Forward pass of a dense layer: ``y = f(x @ W + b)``."""
from fastscratch._config import jit
from fastscratch.kernels.activations import bias_activate_row


@jit
def dense_forward(x, W, b, code, y):
    """Overwrite y (n, n_out) with f(x @ W + b); x (n, n_in), W (n_in, n_out), b (n_out,).

    Row by row, as ``y[i] = sum_k x[i, k] * W[k]``: the vector loop runs over
    the outputs, so it vectorises without reordering any sum. Zero inputs are
    skipped, which is exact for finite W (0 * w adds nothing) and saves ~80%
    of the first layer's work on MNIST. Rows are indexed in place, never
    sliced: a slice is a reference-counted view, costly in an inner loop.
    """
    n, n_in = x.shape
    n_out = W.shape[1]
    zero = y.dtype.type(0)
    for i in range(n):
        for j in range(n_out):
            y[i, j] = zero
        for k in range(n_in):
            xv = x[i, k]
            if xv != zero:
                for j in range(n_out):
                    y[i, j] += xv * W[k, j]
        bias_activate_row(y, i, b, code)
