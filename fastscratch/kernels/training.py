"""One whole training epoch in compiled code: forward, loss, backward and SGD for every batch."""
import math
from collections import namedtuple

import numpy as np

from fastscratch.kernel_cache import jit
from fastscratch.kernels.activations import times_derivative
from fastscratch.kernels.dense_backward import input_gradient
from fastscratch.kernels.dense_forward import chunked_forward, full_forward
from fastscratch.kernels.losses import loss_and_gradient
from fastscratch.kernels.sgd import full_gradient_step, gradient_step
from fastscratch.kernels.structure import Columns

#: The buffers of ``train_epoch``; every field but ``structure`` and ``batches`` is a per-layer tuple.
#: ys, dzs: (batch_size, n_out) outputs and dL/dz; WTs: scratch shaped like W.T; structure: X's
#: ``structure.Structure`` (the first layer's CSR structure; the hidden layers' are not used); batches: X's
#: ``structure.BatchStructure`` of every batch (``structure.batch_structure``: columns for the step,
#: entries in block order for the forward pass); inputsT: (n_in, batch_size) scratch for each layer's input transposed
#: (``sgd.full_gradient_step``; the first layer's is not used); scratch: (n_out,) arrays,
#: ``sgd.gradient_step``'s g.
EpochWork = namedtuple("EpochWork", ["ys", "dzs", "WTs", "structure", "batches", "inputsT", "scratch"])


@jit
def train_epoch(Y, batch_size, learning_rate, weights, biases, codes, loss_code, work):
    """Run the tutorial's SGD loop over X (N, n_in), Y (N, n_out): batches in order, the rest dropped.

    X is given by its structure in work (an ``EpochWork``). weights, biases:
    tuples of each layer's W (n_in, n_out) and b (n_out,), updated in place;
    codes: int64 array of activation codes per layer. All of work but the
    structures is overwritten; after the call ys and dzs hold the last
    batch's outputs and dL/dz.

    Returns ``(loss_sum, bad_batch, bad_loss, finite)``: the sum of the batch
    losses; if a loss was not finite, the index of that batch (-1 otherwise)
    and its loss, training having stopped before that batch's update; and
    whether the weights are finite. A step that leaves a parameter non-finite
    stops training too, reported as a NaN loss of the next batch, or, after
    the epoch's last batch, by ``finite`` alone.
    """
    ys, dzs, WTs, inputsT, scratch = work.ys, work.dzs, work.WTs, work.inputsT, work.scratch
    indptr = work.structure.indptrs[0]
    first_columns, entries = work.batches.columns, work.batches.entries  # the first layer's, every batch's
    last = len(weights) - 1
    loss_sum = np.float64(0.0)  # float64, compiled or as Python (0.0 + float32 stays float32 in NumPy 2)
    num_batches = Y.shape[0] // batch_size
    for batch in range(num_batches):
        begin = batch * batch_size
        first, end = indptr[begin], indptr[begin + batch_size]  # the batch's entries
        segments, next_segments = entries.starts[batch], entries.starts[batch + 1]
        chunked_forward(first, entries.rows[segments:next_segments], entries.ends[segments:next_segments],
                        entries.indices, entries.values, weights[0], biases[0], codes[0], ys[0])
        for layer in range(1, last + 1):
            full_forward(ys[layer - 1], weights[layer], biases[layer], codes[layer], ys[layer])
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
            finite = full_gradient_step(ys[layer - 1], inputsT[layer], dzs[layer], weights[layer], biases[layer],
                                        learning_rate, scratch[layer]) and finite
        times_derivative(dzs[0], ys[0], codes[0], dzs[0])
        finite = gradient_step(Columns(first_columns.starts[batch], first_columns.rows[first:end],
                                       first_columns.positions[first:end]),
                               entries.values[first:end], dzs[0], weights[0], biases[0], learning_rate,
                               scratch[0]) and finite
        if not finite:
            if batch + 1 < num_batches:
                return loss_sum, batch + 1, math.nan, False
            return loss_sum, -1, 0.0, False
    return loss_sum, -1, 0.0, True
