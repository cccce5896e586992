"""Losses and their gradients w.r.t. the prediction, selected by an integer code.

The conventions are the tutorial's: ``loss_L2`` divides the summed squared
error by the batch size, ``derivated_loss_L2`` is ``2 * (pred - target)``
(not divided); cross-entropy is the mean over all entries and its derivative
``(pred - target) / (pred * (1 - pred))``. Losses are accumulated in float64
whatever the network's dtype.
"""
import math

import numpy as np

from fastscratch.kernel_cache import jit

L2, CROSS_ENTROPY = 0, 1


@jit
def loss_and_gradient(pred, target, code, grad):
    """Return the loss of pred vs target, both (n, m), and write dL/dpred into grad (n, m)."""
    one = pred.dtype.type(1)
    two = pred.dtype.type(2)
    n, m = pred.shape
    total = np.float64(0.0)  # a float64 sum, compiled or (under NUMBA_DISABLE_JIT) as Python
    if code == L2:
        for i in range(n):
            for j in range(m):
                diff = pred[i, j] - target[i, j]
                total += diff * diff
                grad[i, j] = two * diff
        return total / n
    for i in range(n):
        for j in range(m):
            p, t = pred[i, j], target[i, j]
            total += t * math.log(p) + (one - t) * math.log(one - p)
            grad[i, j] = (p - t) / (p * (one - p))
    return -total / (n * m)
