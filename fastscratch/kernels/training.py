"""One whole training epoch in compiled code: forward, loss, backward and SGD for every batch."""
import math

from fastscratch._config import jit
from fastscratch.kernels.activations import times_derivative
from fastscratch.kernels.dense_backward import input_gradient, weight_gradient
from fastscratch.kernels.dense_forward import dense_forward
from fastscratch.kernels.losses import loss_and_gradient
from fastscratch.kernels.sgd import sgd_step
from fastscratch.kernels.sparse_input import sparse_forward, sparse_sgd_step


@jit
def train_epoch(X, indptr, indices, Y, batch_size, learning_rate, weights, biases, codes, loss_code, work):
    """Run the tutorial's SGD loop over X (N, n_in), Y (N, n_out): batches in order, the rest dropped.

    indptr, indices: X's nonzero structure (``sparse_input.nonzero_structure``).
    weights, biases: tuples of each layer's W (n_in, n_out) and b (n_out,),
    updated in place; codes: int64 array of activation codes per layer.
    work = (ys, dzs, dWs, dbs, WTs, scratch): tuples of per-layer buffers shaped
    (batch_size, n_out), (batch_size, n_out), like W, like b and like W.T, and
    the scratch of ``sparse_sgd_step``; all overwritten. After the call ys
    and dzs hold the last batch's outputs and dL/dz.

    Returns ``(loss_sum, bad_batch, bad_loss)``: the sum of the batch losses
    and, if a loss was not finite, the index of that batch (-1 otherwise) and
    its loss; training stops before that batch's update.
    """
    ys, dzs, dWs, dbs, WTs, scratch = work
    last = len(weights) - 1
    loss_sum = 0.0
    for batch in range(X.shape[0] // batch_size):
        begin = batch * batch_size
        sparse_forward(X, indptr, indices, begin, weights[0], biases[0], codes[0], ys[0])
        for layer in range(1, last + 1):
            dense_forward(ys[layer - 1], weights[layer], biases[layer], codes[layer], ys[layer])
        loss = loss_and_gradient(ys[last], Y[begin:begin + batch_size], loss_code, dzs[last])
        if not math.isfinite(loss):
            return loss_sum, batch, loss
        loss_sum += loss
        # Backward through all layers with the weights before this step, as the reference does,
        # so each layer's update can follow its own input gradient.
        for layer in range(last, 0, -1):
            times_derivative(dzs[layer], ys[layer], codes[layer], dzs[layer])
            input_gradient(dzs[layer], weights[layer], WTs[layer], dzs[layer - 1])
            weight_gradient(ys[layer - 1], dzs[layer], dWs[layer], dbs[layer])
            sgd_step(weights[layer], biases[layer], dWs[layer], dbs[layer], learning_rate)
        times_derivative(dzs[0], ys[0], codes[0], dzs[0])
        sparse_sgd_step(X, indptr, indices, begin, dzs[0], weights[0], biases[0], learning_rate, scratch)
    return loss_sum, -1, 0.0
