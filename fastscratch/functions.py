"""Activation and loss functions of the tutorial, in plain NumPy.

These exact objects are what both network flavours accept; the drop-in
recognises them by identity and runs its kernels for them (their codes are
``dispatch.KERNEL_CODES``). ``BUILTINS`` is the one table of them (kind, name,
function, derivative) from which every lookup is derived. Derivatives of
activations are written in terms of the layer output ``y``, as the tutorial
does for the sigmoid. Pure NumPy: the reference imports nothing compiled.
"""
from typing import Callable, NamedTuple

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


class Builtin(NamedTuple):
    """A built-in activation or loss: its name (CLI, saved models) and the pair the tutorial passes."""
    kind: str  # "activation" or "loss"
    name: str
    function: Callable
    derivative: Callable


BUILTINS = (
    Builtin("activation", "sigmoid", sigmoid, derivated_sigmoid),
    Builtin("activation", "relu", relu, derivated_relu),
    Builtin("activation", "tanh", tanh, derivated_tanh),
    Builtin("loss", "l2", loss_L2, derivated_loss_L2),
    Builtin("loss", "cross_entropy", cross_entropy, derivated_cross_entropy),
)

#: name -> (function, derivative), for the CLI and for saved models.
ACTIVATIONS = {b.name: (b.function, b.derivative) for b in BUILTINS if b.kind == "activation"}
LOSSES = {b.name: (b.function, b.derivative) for b in BUILTINS if b.kind == "loss"}


def builtin(function, kind, role="function"):
    """The ``Builtin`` of ``kind`` whose ``role`` ("function" or "derivative") is ``function`` (by identity), or None."""
    for entry in BUILTINS:
        if entry.kind == kind and getattr(entry, role) is function:
            return entry
    return None


def name_of(function, table):
    """Return the table key whose pair holds ``function`` (by identity), or None."""
    for name, pair in table.items():
        if function is pair[0]:
            return name
    return None
