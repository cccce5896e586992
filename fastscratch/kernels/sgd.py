"""The optimisation step: plain SGD."""
from fastscratch._config import jit


@jit
def sgd_step(W, b, dL_dW, dL_db, learning_rate):
    """``W -= learning_rate * dL_dW`` and ``b -= learning_rate * dL_db``, in place.

    ``learning_rate`` must have the arrays' dtype (float32 networks step in float32).
    """
    n_in, n_out = W.shape
    for k in range(n_in):
        w, g = W[k], dL_dW[k]
        for j in range(n_out):
            w[j] -= learning_rate * g[j]
    for j in range(n_out):
        b[j] -= learning_rate * dL_db[j]
