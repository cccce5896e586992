"""One whole training epoch in compiled code: forward, loss, backward and SGD for every batch."""
import math

from fastscratch._config import jit
from fastscratch.kernels.activations import times_derivative
from fastscratch.kernels.dense_backward import input_gradient, weight_gradient
from fastscratch.kernels.dense_forward import dense_forward
from fastscratch.kernels.losses import loss_and_gradient
from fastscratch.kernels.sgd import sgd_step


@jit
def train_epoch(X, Y, batch_size, learning_rate, weights, biases, codes, loss_code, work):
    """Run the tutorial's SGD loop over X (N, n_in), Y (N, n_out): batches in order, the rest dropped.

    weights, biases: tuples of each layer's W (n_in, n_out) and b (n_out,),
    updated in place; codes: int64 array of activation codes per layer.
    work = (ys, dzs, dWs, dbs, WTs): tuples of per-layer buffers shaped
    (batch_size, n_out), (batch_size, n_out), like W, like b and like W.T; all
    overwritten, and after the call they hold the last batch's outputs and
    gradients (dzs[l] is dL/dz of layer l).

    Returns ``(loss_sum, bad_batch, bad_loss)``: the sum of the batch losses
    and, if a loss was not finite, the index of that batch (-1 otherwise) and
    its loss; training stops before that batch's update.
    """
    ys, dzs, dWs, dbs, WTs = work
    num_layers = len(weights)
    loss_sum = 0.0
    for batch in range(X.shape[0] // batch_size):
        begin = batch * batch_size
        x = X[begin:begin + batch_size]
        for layer in range(num_layers):
            dense_forward(x, weights[layer], biases[layer], codes[layer], ys[layer])
            x = ys[layer]
        last = num_layers - 1
        loss = loss_and_gradient(ys[last], Y[begin:begin + batch_size], loss_code, dzs[last])
        if not math.isfinite(loss):
            return loss_sum, batch, loss
        loss_sum += loss
        for layer in range(last, -1, -1):
            times_derivative(dzs[layer], ys[layer], codes[layer], dzs[layer])
            if layer > 0:
                # The input gradient uses W before this batch's update, as in the reference.
                input_gradient(dzs[layer], weights[layer], WTs[layer], dzs[layer - 1])
                x = ys[layer - 1]
            else:
                x = X[begin:begin + batch_size]
            weight_gradient(x, dzs[layer], dWs[layer], dbs[layer])
        for layer in range(num_layers):
            sgd_step(weights[layer], biases[layer], dWs[layer], dbs[layer], learning_rate)
    return loss_sum, -1, 0.0
