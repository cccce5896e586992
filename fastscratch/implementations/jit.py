"""``jit``: fastscratch's Numba drop-in (``fastscratch.SimpleNetwork``), whole epochs in compiled code."""
import numba
import numpy as np

from fastscratch import SimpleNetwork
from fastscratch.implementations import _network

NOTES = "fastscratch.SimpleNetwork.train: Numba kernels, one compiled call per epoch"


def version():
    return {"numpy": np.__version__, "numba": numba.__version__}


def prepare(config, data, weights):
    return _network.NetworkRun(SimpleNetwork, config, data, weights, warmup_batches=None)


def step_losses(config, data, weights, steps):
    return _network.step_losses(SimpleNetwork, config, data, weights, steps)


def device_facts(config):
    return {"device": "cpu"}
