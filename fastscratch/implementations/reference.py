"""``reference``: the tutorial's NumPy network (``fastscratch.reference.SimpleNetwork``), the oracle."""
import numpy as np

from fastscratch.implementations import _network
from fastscratch.reference import SimpleNetwork

NOTES = "fastscratch.reference.SimpleNetwork.train: the tutorial's NumPy loop, BLAS products"


def version():
    return {"numpy": np.__version__}


def prepare(config, data, weights):
    return _network.NetworkRun(SimpleNetwork, config, data, weights)


def step_losses(config, data, weights, steps):
    return _network.step_losses(SimpleNetwork, config, data, weights, steps)


def device_facts(config):
    return {"device": "cpu"}
