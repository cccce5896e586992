"""One whole training epoch in compiled code: forward, loss, backward and SGD for every batch."""
import math

import numpy as np

from fastscratch._config import jit
from fastscratch.kernels.activations import times_derivative
from fastscratch.kernels.dense_backward import input_gradient
from fastscratch.kernels.dense_forward import dense_forward
from fastscratch.kernels.losses import loss_and_gradient
from fastscratch.kernels.sgd import gradient_step


@jit
def train_epoch(Y, batch_size, learning_rate, weights, biases, codes, loss_code, work):
    """Run the tutorial's SGD loop over X (N, n_in), Y (N, n_out): batches in order, the rest dropped.

    X is given by its structure in work. weights, biases: tuples of each
    layer's W (n_in, n_out) and b (n_out,), updated in place; codes: int64
    array of activation codes per layer.
    work = (ys, dzs, WTs, structures, batches, columns, scratch): per-layer
    buffers shaped (batch_size, n_out), (batch_size, n_out) and like W.T;
    X's CSR structure and the hidden layers' structures, as
    ``evaluation.predict_classes`` takes them; X's column structure for every
    batch (``structure.batch_columns``); per-layer ``structure.full_columns``
    of batch_size rows (the first layer's is not used); and per-layer scratch
    of ``gradient_step``. All but the structures are overwritten; after the
    call ys and dzs hold the last batch's outputs and dL/dz.

    Returns ``(loss_sum, bad_batch, bad_loss, finite)``: the sum of the batch
    losses; if a loss was not finite, the index of that batch (-1 otherwise)
    and its loss, training having stopped before that batch's update; and
    whether the weights are finite. A step that leaves a parameter non-finite
    stops training too, reported as a NaN loss of the next batch, or, after
    the epoch's last batch, by ``finite`` alone.
    """
    ys, dzs, WTs, structures, batches, columns, scratch = work
    indptrs, indices, values = structures
    batch_starts, batch_rows, batch_positions = batches
    last = len(weights) - 1
    start = np.int64(0)  # a hidden layer's input starts at row 0; typed, not literal, to share one compilation
    loss_sum = 0.0
    num_batches = Y.shape[0] // batch_size
    for batch in range(num_batches):
        begin = batch * batch_size
        dense_forward(indptrs[0], indices[0], values, begin, weights[0], biases[0], codes[0], ys[0])
        for layer in range(1, last + 1):
            dense_forward(indptrs[layer], indices[layer], ys[layer - 1].ravel(), start, weights[layer], biases[layer],
                          codes[layer], ys[layer])
        loss = loss_and_gradient(ys[last], Y[begin:begin + batch_size], loss_code, dzs[last])
        if not math.isfinite(loss):
            return loss_sum, batch, loss, True
        loss_sum += loss
        finite = True
        # Each layer's input gradient uses its W before this step, as in the reference, so the
        # step of a layer can follow right after its backward pass.
        for layer in range(last, 0, -1):
            times_derivative(dzs[layer], ys[layer], codes[layer], dzs[layer])
            input_gradient(dzs[layer], weights[layer], WTs[layer], dzs[layer - 1])
            finite = gradient_step(columns[layer], ys[layer - 1].ravel(), dzs[layer], weights[layer], biases[layer],
                                   learning_rate, scratch[layer]) and finite
        times_derivative(dzs[0], ys[0], codes[0], dzs[0])
        first, end = indptrs[0][begin], indptrs[0][begin + batch_size]
        finite = gradient_step((batch_starts[batch], batch_rows[first:end], batch_positions[first:end]),
                               values[first:end], dzs[0], weights[0], biases[0], learning_rate,
                               scratch[0]) and finite
        if not finite:
            if batch + 1 < num_batches:
                return loss_sum, batch + 1, math.nan, False
            return loss_sum, -1, 0.0, False
    return loss_sum, -1, 0.0, True
