"""Activation and loss functions of the tutorial, in plain NumPy.

These exact objects are what both network flavours accept; the JIT network
recognises them by identity and swaps in its compiled kernels (see
``fastscratch.kernels.codes``). Derivatives of activations are written in
terms of the layer output ``y``, as the tutorial does for the sigmoid.
"""
import numpy as np


def sigmoid(x):  # sigmoid function
    return 1 / (1 + np.exp(-x))  # y


def derivated_sigmoid(y):  # sigmoid derivative function
    return y * (1 - y)


def relu(x):
    return np.maximum(x, 0)


def derivated_relu(y):
    # y > 0 exactly where the pre-activation was > 0; the kink at 0 gets slope 0.
    return (y > 0).astype(y.dtype)


def tanh(x):
    return np.tanh(x)


def derivated_tanh(y):
    return 1 - np.square(y)


def loss_L2(pred, target):  # L2 loss function
    return np.sum(np.square(pred - target)) / pred.shape[0]  # opt. we divide by the batch size


def derivated_loss_L2(pred, target):  # L2 derivative function
    return 2 * (pred - target)


def cross_entropy(pred, target):  # cross-entropy loss function
    return -np.mean(np.multiply(np.log(pred), target) + np.multiply(np.log(1 - pred), (1 - target)))


def derivated_cross_entropy(pred, target):  # cross-entropy derivative function
    return (pred - target) / (pred * (1 - pred))


#: name -> (function, derivative), for the CLI and for saved models.
ACTIVATIONS = {
    "sigmoid": (sigmoid, derivated_sigmoid),
    "relu": (relu, derivated_relu),
    "tanh": (tanh, derivated_tanh),
}

LOSSES = {
    "l2": (loss_L2, derivated_loss_L2),
    "cross_entropy": (cross_entropy, derivated_cross_entropy),
}


def name_of(function, table):
    """Return the table key whose pair holds ``function`` (by identity), or None."""
    for name, pair in table.items():
        if function is pair[0]:
            return name
    return None
