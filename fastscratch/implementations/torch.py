"""``torch``: PyTorch eager on the CPU, autograd of the tutorial's objective and an in-place SGD step.

The tutorial's gradients are those of the *summed* objective (2 (p - t) for
L2, (p - t) / (p (1 - p)) for cross-entropy), while the loss it reports is
divided by the batch (L2) or by every output of the batch (cross-entropy):
autograd differentiates the sum, and the reported loss is that sum over the
same divisor.
"""
import contextlib

import numpy as np
import torch

from fastscratch.implementations._network import WARMUP_BATCHES, WARMUP_TEST_ROWS

NOTES = "eager, torch.autograd.grad of the summed objective, p.sub_(g, alpha=lr); batched argmax accuracy"
ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}


def version():
    return {"torch": torch.__version__}


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
    losses = torch.empty(steps, dtype=torch.float64)
    for s in range(steps):
        total, divisor = objective(config.loss, forward(config, params, X[s * n:(s + 1) * n]), Y[s * n:(s + 1) * n])
        grads = torch.autograd.grad(total, flat)
        with torch.no_grad():
            for p, g in zip(flat, grads):
                p.sub_(g, alpha=config.learning_rate)
            losses[s] = total / divisor
    return losses


def accuracy(config, params, X_test, y_test):
    with torch.no_grad():
        return (forward(config, params, X_test).argmax(dim=1) == y_test).double().mean().item()


def _tensors(config, data, weights):
    X, Y, X_test, y_test = (torch.from_numpy(np.array(a)) for a in data)  # writable copies, untimed
    params = [tuple(torch.tensor(a, requires_grad=True) for a in layer) for layer in weights]
    return params, X, Y, X_test, y_test


@contextlib.contextmanager
def _threads(threads):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Session:
    """Tensors copied once; each epoch runs its steps, then the test accuracy (both in ``config.threads``)."""

    def __init__(self, config, data, weights):
        self.config = config
        self.params, self.X, self.Y, self.X_test, self.y_test = _tensors(config, data, weights)
        self.steps = len(self.X) // config.batch_size

    def warmup(self):
        warm = [tuple(p.detach().clone().requires_grad_() for p in layer) for layer in self.params]
        with _threads(self.config.threads):
            train_steps(self.config, warm, self.X, self.Y, min(self.steps, WARMUP_BATCHES))
            accuracy(self.config, warm, self.X_test[:WARMUP_TEST_ROWS], self.y_test[:WARMUP_TEST_ROWS])

    def train(self, callback):
        with _threads(self.config.threads):
            for _ in range(self.config.epochs):
                loss = float(train_steps(self.config, self.params, self.X, self.Y, self.steps).mean())
                callback(loss, accuracy(self.config, self.params, self.X_test, self.y_test))


def prepare(config, data, weights):
    return Session(config, data, weights)


def step_losses(config, data, weights, steps):
    params, X, Y = _tensors(config, data, weights)[:3]
    with _threads(config.threads):
        return train_steps(config, params, X, Y, steps).tolist()
