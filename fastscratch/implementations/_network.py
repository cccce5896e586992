"""The run shared by the two flavours of ``SimpleNetwork`` (the reference and the Numba drop-in)."""
import numpy as np

from fastscratch.functions import ACTIVATIONS, LOSSES

WARMUP_BATCHES = 2
WARMUP_TEST_ROWS = 100


def build(cls, config, weights):
    """A ``cls`` network of the cell's shape holding copies of ``weights``."""
    activation, loss = ACTIVATIONS[config.activation], LOSSES[config.loss]
    net = cls(weights[0][0].shape[0], weights[-1][0].shape[1], list(config.hidden), *activation, *loss,
              dtype=np.dtype(config.dtype).type)
    for layer, (W, b) in zip(net.layers, weights):
        layer.W[...] = W
        layer.b[...] = b
    return net


class NetworkRun:
    """One ``train`` call of all epochs, after a warm-up ``train`` call on a copy of the weights.

    ``warmup_batches``: how many batches the warm-up trains (testing on WARMUP_TEST_ROWS rows), or
    None for a whole epoch on the cell's own arrays. The drop-in network keeps its index of the data
    across calls (``kept_data``); the timed network takes the warm-up network's, so that it sees the
    data as a user's next call would, just as the peers' runs copy the data into their tensors
    before the timing.
    """

    def __init__(self, cls, config, data, weights, warmup_batches=WARMUP_BATCHES):
        self.cls, self.config, self.data, self.weights = cls, config, data, weights
        self.warmup_batches = warmup_batches
        self.kept_data = None  # the warm-up network's indexed data, for the timed one

    def warmup(self):
        X_train, Y_train, X_test, y_test = self.data
        if self.warmup_batches is not None:
            rows = min(len(X_train), self.warmup_batches * self.config.batch_size)
            X_train, Y_train = X_train[:rows], Y_train[:rows]
            X_test, y_test = X_test[:WARMUP_TEST_ROWS], y_test[:WARMUP_TEST_ROWS]
        warm = build(self.cls, self.config, self.weights)
        warm.train(X_train, Y_train, X_test, y_test, batch_size=self.config.batch_size, num_epochs=1,
                   learning_rate=self.config.learning_rate, verbose=False)
        self.kept_data = getattr(warm, "kept_data", None)  # the reference keeps nothing

    def train(self, callback):
        net = build(self.cls, self.config, self.weights)
        if self.kept_data is not None:
            net.kept_data = self.kept_data
        net.train(
            *self.data, batch_size=self.config.batch_size, num_epochs=self.config.epochs,
            learning_rate=self.config.learning_rate, verbose=False, callback=lambda _, loss, acc: callback(loss, acc))


def step_losses(cls, config, data, weights, steps):
    """The loss of each of the first ``steps`` SGD steps: one-batch, one-epoch ``train`` calls in a row."""
    X_train, Y_train = data[:2]
    net = build(cls, config, weights)
    b = config.batch_size
    return [float(net.train(X_train[i * b:(i + 1) * b], Y_train[i * b:(i + 1) * b], batch_size=b, num_epochs=1,
                            learning_rate=config.learning_rate, verbose=False)[0][0])
            for i in range(steps)]
