"""``torch``: PyTorch eager on the cell's device (CPU or CUDA GPU), autograd of the tutorial's objective and an
in-place SGD step.

The tutorial's gradients are those of the *summed* objective (2 (p - t) for
L2, (p - t) / (p (1 - p)) for cross-entropy), while the loss it reports is
divided by the batch (L2) or by every output of the batch (cross-entropy):
autograd differentiates the sum, and the reported loss is that sum over the
same divisor.
"""
import contextlib

import numpy as np
import torch

from fastscratch.implementations.devices import nvidia_driver
from fastscratch.implementations._network import WARMUP_BATCHES, WARMUP_TEST_ROWS

NOTES = "eager, torch.autograd.grad of the summed objective, p.sub_(g, alpha=lr); batched argmax accuracy"
ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


def version():
    return {"torch": torch.__version__}


def device(config):
    """The ``torch.device`` of the cell; a RuntimeError naming what is missing where it does not exist here."""
    if config.device == "cuda":
        if not torch.cuda.is_available():
            build = "has no CUDA support" if torch.version.cuda is None else f"is built for CUDA {torch.version.cuda}"
            raise RuntimeError(f"device 'cuda': PyTorch {torch.__version__} sees no CUDA GPU on this machine "
                               f"(torch.cuda.is_available() is False; this build {build})")
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def device_facts(config):
    """What PyTorch says of the cell's device: for a GPU its model, memory, compute capability, CUDA and driver."""
    where = device(config)
    if where.type == "cpu":
        return {"device": "cpu", "framework": f"torch {torch.__version__}"}
    properties = torch.cuda.get_device_properties(where)
    return {"device": "cuda", "framework": f"torch {torch.__version__}", "name": torch.cuda.get_device_name(where),
            "memory_gib": round(properties.total_memory / 2**30, 1),
            "compute_capability": f"{properties.major}.{properties.minor}", "cuda": torch.version.cuda,
            "driver": nvidia_driver()}


def synchronize(where):
    """Wait for the device's queued work: before every clock read of a GPU cell."""
    if where.type == "cuda":
        torch.cuda.synchronize(where)


def objective(loss, pred, target):
    """(summed objective, divisor of the reported loss) of the tutorial's ``loss``."""
    if loss == "l2":
        return torch.sum(torch.square(pred - target)), pred.shape[0]
    return -torch.sum(target * torch.log(pred) + (1 - target) * torch.log(1 - pred)), pred.numel()


def forward(config, params, h):
    f = ACTIVATIONS[config.activation]
    for W, b in params:
        h = f(h @ W + b)
    return h


def train_steps(config, params, X, Y, steps):
    """``steps`` SGD steps on consecutive batches of X, Y; return the reported loss of each (a tensor)."""
    flat = [p for layer in params for p in layer]
    n = config.batch_size
    losses = torch.empty(steps, dtype=torch.float64, device=X.device)
    for s in range(steps):
        total, divisor = objective(config.loss, forward(config, params, X[s * n:(s + 1) * n]), Y[s * n:(s + 1) * n])
        grads = torch.autograd.grad(total, flat)
        with torch.no_grad():
            for p, g in zip(flat, grads):
                p.sub_(g, alpha=config.learning_rate)
            losses[s] = total / divisor
    return losses


def correct(config, params, X_test, y_test):
    """The number of test rows classified right (a tensor on the device: no wait for it)."""
    with torch.no_grad():
        return (forward(config, params, X_test).argmax(dim=1) == y_test).sum()


def accuracy(config, params, X_test, y_test):
    return correct(config, params, X_test, y_test).item() / len(y_test)


def tensors(config, data, weights):
    """(params, X, Y, X_test, y_test) on the cell's device, copied from ``data`` and ``weights`` (untimed)."""
    where = device(config)
    X, Y, X_test, y_test = (torch.from_numpy(np.array(a)).to(where) for a in data)
    params = [tuple(torch.tensor(a, device=where, requires_grad=True) for a in layer) for layer in weights]
    return params, X, Y, X_test, y_test


@contextlib.contextmanager
def cpu_threads(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TorchRun:
    """Tensors copied to the device once; each epoch runs its steps, then the test accuracy (both in
    ``config.threads`` CPU threads)."""

    def __init__(self, config, data, weights):
        self.config, self.device = config, device(config)
        self.params, self.X, self.Y, self.X_test, self.y_test = tensors(config, data, weights)
        self.steps = len(self.X) // config.batch_size

    def warmup(self):
        warm = [tuple(p.detach().clone().requires_grad_() for p in layer) for layer in self.params]
        with cpu_threads(self.config.threads):
            train_steps(self.config, warm, self.X, self.Y, min(self.steps, WARMUP_BATCHES))
            accuracy(self.config, warm, self.X_test[:WARMUP_TEST_ROWS], self.y_test[:WARMUP_TEST_ROWS])
        synchronize(self.device)

    def train(self, callback):
        with cpu_threads(self.config.threads):
            for _ in range(self.config.epochs):
                loss = float(train_steps(self.config, self.params, self.X, self.Y, self.steps).mean())
                right = accuracy(self.config, self.params, self.X_test, self.y_test)
                synchronize(self.device)
                callback(loss, right)


def prepare(config, data, weights):
    return TorchRun(config, data, weights)


def step_losses(config, data, weights, steps):
    params, X, Y = tensors(config, data, weights)[:3]
    with cpu_threads(config.threads):
        return train_steps(config, params, X, Y, steps).tolist()
