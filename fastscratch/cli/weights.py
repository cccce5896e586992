"""The weights of a run's last epoch that ended with all of them finite: what ``model.npz`` holds."""
import numpy as np


class LastFiniteWeights:
    """A copy of a network's weights at the last epoch end where they were all finite.

    ``epoch`` counts the epochs those weights have been trained for (0: the
    untrained network). Taken after every epoch, it is what ``model.npz``
    holds when training stops early or an update overflows: the weights whose
    epoch the history describes, and never weights that ``load`` refuses.
    """

    def __init__(self, network):
        self.network = network
        self.copies = [(layer.W.copy(), layer.b.copy()) for layer in network.layers]
        self.epoch = 0

    def take(self, epoch):
        if all_finite(self.network):
            for layer, (W, b) in zip(self.network.layers, self.copies):
                np.copyto(W, layer.W)
                np.copyto(b, layer.b)
            self.epoch = epoch

    def restore(self):
        for layer, (W, b) in zip(self.network.layers, self.copies):
            layer.W[...] = W
            layer.b[...] = b


def all_finite(network):
    """Whether every weight and bias of ``network`` is finite."""
    return all(np.isfinite(layer.W).all() and np.isfinite(layer.b).all() for layer in network.layers)
