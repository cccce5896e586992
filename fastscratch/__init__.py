"""fastscratch: the tutorial's neural network from scratch, same API and numerics, compiled with Numba."""
from fastscratch.exceptions import NonFiniteLossError, TrainingInterrupted
from fastscratch.functions import (cross_entropy, derivated_cross_entropy, derivated_loss_L2, derivated_relu,
                                   derivated_sigmoid, derivated_tanh, loss_L2, relu, sigmoid, tanh)
from fastscratch.network import FallbackWarning, FullyConnectedLayer, Neuron, SimpleNetwork

__version__ = "0.1.0"

__all__ = ["Neuron", "FullyConnectedLayer", "SimpleNetwork", "sigmoid", "derivated_sigmoid", "relu",
           "derivated_relu", "tanh", "derivated_tanh", "loss_L2", "derivated_loss_L2", "cross_entropy",
           "derivated_cross_entropy", "TrainingInterrupted", "NonFiniteLossError", "FallbackWarning"]
