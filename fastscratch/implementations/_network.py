"""The session shared by the two flavours of ``SimpleNetwork`` (the reference and the Numba drop-in)."""
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


class Session:
    """One ``train`` call of all epochs; the warm-up trains a copy on the first batches (compiles the kernels)."""

    def __init__(self, cls, config, data, weights):
        self.cls, self.config, self.data, self.weights = cls, config, data, weights

    def warmup(self):
        X_train, Y_train, X_test, y_test = self.data
        rows = min(len(X_train), WARMUP_BATCHES * self.config.batch_size)
        build(self.cls, self.config, self.weights).train(
            X_train[:rows], Y_train[:rows], X_test[:WARMUP_TEST_ROWS], y_test[:WARMUP_TEST_ROWS],
            batch_size=self.config.batch_size, num_epochs=1, learning_rate=self.config.learning_rate, verbose=False)

    def train(self, callback):
        build(self.cls, self.config, self.weights).train(
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
