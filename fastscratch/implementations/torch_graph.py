"""``torch-graph``: PyTorch on a CUDA GPU, each epoch's steps and its test accuracy captured once as a CUDA
graph and replayed.

A tutorial step is a few tiny kernels, so eager PyTorch on a GPU waits on the
CPU launching them; a CUDA graph launches a whole epoch at once. The graph
holds the same computation as the ``torch`` runner (``torch.train_steps`` and
``torch.correct`` on the same tensors), recorded on the run's own
parameter, data and loss tensors: each replay trains one more epoch in place.
The warm-up is PyTorch's recipe for a capture (a few steps on a side stream,
then the capture), on the parameters, which are then put back to the starting
weights; it includes the capture. GPU only: a cell asking for the CPU is
refused by ``Config``.
"""
import torch

from fastscratch.implementations import torch as eager

NOTES = ("torch.cuda.CUDAGraph of a whole epoch (the torch runner's steps, then the test accuracy), "
         "captured once, replayed per epoch")
SIDE_STREAM_STEPS = 3  # eager steps on a side stream before a capture, as PyTorch's docs do

version = eager.version
device_facts = eager.device_facts


def capture(config, params, X, Y, steps, X_test=None, y_test=None):
    """(graph, losses, correct): a CUDA graph of ``steps`` SGD steps on ``params`` (then, given ``X_test``, the
    test rows classified right), whose replay fills the tensors ``losses`` and ``correct``. ``params`` hold
    their values from before the call when it returns."""
    start = [p.detach().clone() for layer in params for p in layer]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        eager.train_steps(config, params, X, Y, min(steps, SIDE_STREAM_STEPS))
        if X_test is not None:
            eager.correct(config, params, X_test, y_test)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        losses = eager.train_steps(config, params, X, Y, steps)
        correct = None if X_test is None else eager.correct(config, params, X_test, y_test)
    with torch.no_grad():
        for p, value in zip((p for layer in params for p in layer), start):
            p.copy_(value)
    torch.cuda.synchronize()
    return graph, losses, correct


class GraphRun:
    def __init__(self, config, data, weights):
        self.config, self.device = config, eager.device(config)
        self.params, self.X, self.Y, self.X_test, self.y_test = eager.tensors(config, data, weights)
        self.steps = len(self.X) // config.batch_size
        self.graph = None

    def warmup(self):
        with eager.cpu_threads(self.config.threads):
            self.graph, self.losses, self.correct = capture(self.config, self.params, self.X, self.Y, self.steps,
                                                            self.X_test, self.y_test)

    def train(self, callback):
        with eager.cpu_threads(self.config.threads):
            for _ in range(self.config.epochs):
                self.graph.replay()
                eager.synchronize(self.device)
                callback(float(self.losses.mean()), self.correct.item() / len(self.y_test))


def prepare(config, data, weights):
    return GraphRun(config, data, weights)


def step_losses(config, data, weights, steps):
    """The first ``steps`` step losses, from one replay of a graph of those steps."""
    params, X, Y = eager.tensors(config, data, weights)[:3]
    graph, losses, _ = capture(config, params, X, Y, steps)
    graph.replay()
    return losses.tolist()
