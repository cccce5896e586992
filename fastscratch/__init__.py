"""fastscratch: the tutorial's neural network from scratch, same API and numerics, compiled with Numba.

The drop-in's classes (``fastscratch.SimpleNetwork``, ...) are imported at their first use, so that
``import fastscratch.reference``, the oracle, loads NumPy and no compiled code. A submodule is an attribute
of the package once something imported it: ``import fastscratch.prediction``, not ``fastscratch.prediction``
after ``import fastscratch``.
"""
import importlib
import typing

from fastscratch.exceptions import NonFiniteLossError, TrainingInterrupted
from fastscratch.functions import (cross_entropy, derivated_cross_entropy, derivated_loss_L2, derivated_relu,
                                   derivated_sigmoid, derivated_tanh, loss_L2, relu, sigmoid, tanh)

if typing.TYPE_CHECKING:
    from fastscratch.dispatch import FallbackWarning
    from fastscratch.network import FullyConnectedLayer, Neuron, SimpleNetwork

__version__ = "0.1.0"

__all__ = ["Neuron", "FullyConnectedLayer", "SimpleNetwork", "sigmoid", "derivated_sigmoid", "relu",
           "derivated_relu", "tanh", "derivated_tanh", "loss_L2", "derivated_loss_L2", "cross_entropy",
           "derivated_cross_entropy", "TrainingInterrupted", "NonFiniteLossError", "FallbackWarning"]

#: The drop-in's public names, and the module each comes from (PEP 562).
_LAZY = {"Neuron": "fastscratch.network", "FullyConnectedLayer": "fastscratch.network",
         "SimpleNetwork": "fastscratch.network", "FallbackWarning": "fastscratch.dispatch"}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fastscratch' has no attribute {name!r}")
    # An ImportError (Numba missing or broken) goes through as it is: turned into an AttributeError, it would
    # read "cannot import name 'SimpleNetwork'" and hide its cause.
    value = globals()[name] = getattr(importlib.import_module(module), name)
    return value


def __dir__():
    return sorted({*globals(), *__all__})
