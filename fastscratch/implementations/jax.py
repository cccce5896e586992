"""``jax``: one ``jax.jit`` call per epoch, a ``lax.scan`` over the batches, then the test accuracy.

Same objective as the ``torch`` runner (the gradient of the summed loss, the
reported loss divided as the tutorial divides it). Compilation for the cell's
shapes (``lower(...).compile()``) is the warm-up. The arrays are committed to
the cell's device, so the compiled epoch runs there: a ``cpu`` cell stays on
the CPU on a machine whose default JAX device is a GPU. XLA's CPU thread pool
is fixed when JAX starts, so ``threads`` does not reach it.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from fastscratch.implementations.devices import nvidia_driver

jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64; float32 ones stay float32

NOTES = "jax.jit of the whole epoch: lax.scan over batches, value_and_grad of the summed objective, then accuracy"
ACTIVATIONS = {"sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "tanh": jnp.tanh}


def version():
    return {"jax": jax.__version__, "jaxlib": getattr(jax.lib, "__version__", None) or jax.__version__}


def device(config):
    """The JAX device of the cell (the first of its platform); a RuntimeError naming what is missing."""
    try:
        return jax.devices(config.device)[0]
    except RuntimeError as err:
        raise RuntimeError(f"device {config.device!r}: JAX {jax.__version__} has no {config.device} backend on "
                           f"this machine ({err}); a GPU needs a CUDA build of jaxlib, e.g. "
                           "`pip install 'jax[cuda12]'`") from None


def device_facts(config):
    """What JAX says of the cell's device: its kind (the GPU model) and platform version (CUDA), and the driver."""
    where = device(config)
    facts = {"device": config.device, "framework": f"jax {jax.__version__}", "name": where.device_kind}
    if config.device == "cuda":
        facts["platform_version"] = getattr(where.client, "platform_version", None)
        facts["driver"] = nvidia_driver()
    return facts


@functools.lru_cache(maxsize=None)
def epoch_function(activation, loss, learning_rate):
    """The jitted ``epoch(params, X_batches, Y_batches, X_test, y_test) -> (params, step losses, correct test rows)``."""
    f = ACTIVATIONS[activation]

    def forward(params, x):
        for W, b in params:
            x = f(x @ W + b)
        return x

    def objective(params, x, t):
        pred = forward(params, x)
        if loss == "l2":
            return jnp.sum(jnp.square(pred - t)), pred.shape[0]
        return -jnp.sum(t * jnp.log(pred) + (1 - t) * jnp.log(1 - pred)), pred.size

    def summed(params, x, t):
        return objective(params, x, t)[0]

    @jax.jit
    def epoch(params, X_batches, Y_batches, X_test, y_test):
        divisor = objective(params, X_batches[0], Y_batches[0])[1]

        def step(params, xt):
            total, grads = jax.value_and_grad(summed)(params, *xt)
            params = jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)
            return params, total / divisor

        params, losses = jax.lax.scan(step, params, (X_batches, Y_batches))
        return params, losses, jnp.sum(jnp.argmax(forward(params, X_test), axis=1) == y_test)
    return epoch


def _arrays(config, data, weights, steps):
    """(params, X batches, Y batches, X_test, y_test), committed to the cell's device."""
    X, Y, X_test, y_test = data
    n = config.batch_size
    where = device(config)
    params = [tuple(jax.device_put(a, where) for a in layer) for layer in weights]
    return (params, *(jax.device_put(a, where) for a in (
        X[:steps * n].reshape(steps, n, -1), Y[:steps * n].reshape(steps, n, -1), X_test, y_test)))


class JaxRun:
    """Arrays on the device once; the warm-up compiles the epoch for these shapes."""

    def __init__(self, config, data, weights):
        self.config, self.test_rows = config, len(data[2])
        self.args = _arrays(config, data, weights, len(data[0]) // config.batch_size)
        self.epoch = None

    def warmup(self):
        self.epoch = epoch_function(self.config.activation, self.config.loss,
                                    self.config.learning_rate).lower(*self.args).compile()
        jax.block_until_ready(self.args)

    def train(self, callback):
        params, rest = self.args[0], self.args[1:]
        for _ in range(self.config.epochs):
            params, losses, correct = jax.block_until_ready(self.epoch(params, *rest))
            callback(np.mean(np.asarray(losses, dtype=np.float64)), int(correct) / self.test_rows)


def prepare(config, data, weights):
    return JaxRun(config, data, weights)


def step_losses(config, data, weights, steps):
    args = _arrays(config, data, weights, steps)
    return np.asarray(epoch_function(config.activation, config.loss, config.learning_rate)(*args)[1]).tolist()
