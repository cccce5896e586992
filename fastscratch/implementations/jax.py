"""``jax``: one ``jax.jit`` call per epoch, a ``lax.scan`` over the batches, then the test accuracy.

Same objective as the ``torch`` runner (the gradient of the summed loss, the
reported loss divided as the tutorial divides it). Compilation for the cell's
shapes (``lower(...).compile()``) is the warm-up. XLA's CPU thread pool is
fixed when JAX starts, so ``threads`` does not reach it.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64; float32 ones stay float32

NOTES = "jax.jit of the whole epoch: lax.scan over batches, value_and_grad of the summed objective, then accuracy"
ACTIVATIONS = {"sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "tanh": jnp.tanh}


def version():
    return {"jax": jax.__version__, "jaxlib": getattr(jax.lib, "__version__", None) or jax.__version__,
            "devices": str(jax.devices())}


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
    X, Y, X_test, y_test = data
    n = config.batch_size
    params = [tuple(jnp.asarray(a) for a in layer) for layer in weights]
    return (params, jnp.asarray(X[:steps * n].reshape(steps, n, -1)), jnp.asarray(Y[:steps * n].reshape(steps, n, -1)),
            jnp.asarray(X_test), jnp.asarray(y_test))


class Session:
    """Arrays on the device once; the warm-up compiles the epoch for these shapes."""

    def __init__(self, config, data, weights):
        self.config, self.test_rows = config, len(data[2])
        self.args = _arrays(config, data, weights, len(data[0]) // config.batch_size)
        self.epoch = None

    def warmup(self):
        self.epoch = epoch_function(self.config.activation, self.config.loss,
                                    self.config.learning_rate).lower(*self.args).compile()

    def train(self, callback):
        params, rest = self.args[0], self.args[1:]
        for _ in range(self.config.epochs):
            params, losses, correct = self.epoch(params, *rest)
            callback(np.mean(np.asarray(losses, dtype=np.float64)), int(correct) / self.test_rows)  # blocks


def prepare(config, data, weights):
    return Session(config, data, weights)


def step_losses(config, data, weights, steps):
    args = _arrays(config, data, weights, steps)
    return np.asarray(epoch_function(config.activation, config.loss, config.learning_rate)(*args)[1]).tolist()
