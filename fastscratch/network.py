"""The drop-in: the reference's classes, with Numba kernels doing the work.

Each class subclasses its reference twin, so construction (and the random
draws), argument checks, logging and save/load are literally shared; what is
overridden is the arithmetic. The objects carry no state about how to run:
each call validates its arguments, asks ``fastscratch.plan`` for a plan made
from the network as it is at that call, and runs it. ``SimpleNetwork.train``
runs each epoch in one compiled call (``kernels.training.train_epoch``) when
the plan allows, else the reference's batch loop with kernels or NumPy per
piece.
"""
import numpy as np

from fastscratch import plan
from fastscratch import reference
from fastscratch.exceptions import NonFiniteLossError
from fastscratch.functions import derivated_loss_L2, derivated_sigmoid, loss_L2, sigmoid
from fastscratch.kernels import activations
from fastscratch.kernels.dense_forward import dense_forward
from fastscratch.kernels.structure import nonzero_structure
from fastscratch.plan import FallbackWarning  # noqa: F401  (public: fastscratch.FallbackWarning)


class Neuron(reference.Neuron):
    __doc__ = reference.Neuron.__doc__

    def forward(self, x):
        self._check_parameters()
        x = reference.check.as_input("x", x, self.num_inputs, self.dtype)
        copies = {}
        W, b = plan._parameter(self, "W", self.dtype, copies), plan._parameter(self, "b", self.dtype, copies)
        if not (reference.check._all_finite(W) and reference.check._all_finite(b)):
            z = np.dot(x, W) + b  # the reference's product: zero inputs must not hide NaN weights
        else:
            rows = x[np.newaxis] if x.ndim == 1 else x
            z = np.empty((rows.shape[0], 1), dtype=self.dtype)
            dense_forward(*nonzero_structure(rows), 0, W.reshape(-1, 1), b, activations.IDENTITY, z)
            z = z.reshape(-1)  # np.dot(x, W) + b has shape (n,) for x (n, k) and (1,) for x (k,)
        return self.activation_function(z)  # nothing compiled reads it


class FullyConnectedLayer(reference.FullyConnectedLayer):
    __doc__ = reference.FullyConnectedLayer.__doc__

    def __init__(self, num_inputs, layer_size, activation_function, derivated_activation_function=None,
                 *, dtype=np.float64):
        super().__init__(num_inputs, layer_size, activation_function, derivated_activation_function, dtype=dtype)
        plan.layer_plan(self, self.dtype)  # warn now about callables that will run through NumPy

    @property
    def fused(self):
        """True when both the activation and its derivative run as kernels."""
        return plan.layer_plan(self, self.dtype).fused

    def _forward(self, x):
        return plan.forward(plan.layer_plan(self, self.dtype), x, self.dtype)

    def _backward(self, dL_dy):
        return plan.backward(plan.layer_plan(self, self.dtype), dL_dy, self.dtype)

    def _optimize(self, epsilon):
        plan.optimize(plan.layer_plan(self, self.dtype), epsilon, self.dtype)


class SimpleNetwork(reference.SimpleNetwork):
    __doc__ = reference.SimpleNetwork.__doc__

    layer_class = FullyConnectedLayer

    def __init__(self, num_inputs, num_outputs, hidden_layers_sizes=(64, 32),
                 activation_function=sigmoid, derivated_activation_function=derivated_sigmoid,
                 loss_function=loss_L2, derivated_loss_function=derivated_loss_L2, *, dtype=np.float64):
        super().__init__(num_inputs, num_outputs, hidden_layers_sizes, activation_function,
                         derivated_activation_function, loss_function, derivated_loss_function, dtype=dtype)
        plan.loss_code(self)  # warn now about callables that will run through NumPy

    @property
    def fused(self):
        """True when ``train`` can run whole epochs compiled (built-in activations and loss)."""
        network = plan.network_plan(self)
        return network.loss is not None and all(layer.fused for layer in network.layers)

    def kernels_pay_off(self, batch_size, X_train=None):
        """Whether ``train`` with this batch size runs compiled epochs (else the reference's BLAS loop); past
        127 rows that depends on how sparse ``X_train`` is (without it, counted as dense)."""
        density = 1.0 if X_train is None else plan.nonzero_fraction(np.asarray(X_train))
        return plan.compiled_epoch(plan.network_plan(self), self, batch_size, density)

    def _forward(self, x):
        return plan.network_plan(self).forward(x)

    def _backward(self, dL_dy):
        return plan.network_plan(self).backward(dL_dy)

    def _optimize(self, epsilon):
        plan.network_plan(self).optimize(epsilon)

    def predict(self, x):
        self._check_layers()
        x = reference.check.as_input("x", x, self.num_inputs, self.dtype)
        network = plan.network_plan(self)
        if x.ndim == 2 and x.shape[0] > 1 and network.compiled_forward:
            return plan.predict(network, plan.forward_work(x, plan.sizes_of(self), self.dtype))
        if x.ndim == 2 and x.shape[0] > 1:
            return np.argmax(network.forward(x), axis=1)
        return np.argmax(network.forward(x))

    def _evaluate_accuracy(self, X_val, y_val, training=None):
        network = plan.network_plan(self)
        if network.compiled_forward:
            work = plan.forward_work(X_val, plan.sizes_of(self), self.dtype) if training is None else training.val_work()
            correct = np.count_nonzero(plan.predict(network, work) == y_val)
            network.forward(X_val[-1])  # the reference's per-sample loop leaves the last sample's x and y
        else:  # the reference's loop, planned once
            correct = sum(int(np.argmax(network.forward(x)) == label) for x, label in zip(X_val, y_val))
        return float(correct / len(X_val))

    def train(self, X_train, y_train, X_val=None, y_val=None, batch_size=32, num_epochs=5, learning_rate=1e-3,
              *, verbose=True, callback=None):
        # X_train's and X_val's finiteness is proven by the plan's comparisons with the structures kept from
        # an earlier call, where one matches, or checked by it (a narrowing conversion is checked at once).
        arguments = X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate
        try:
            X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate = self._check_train(
                *arguments, finite_X=False, finite_X_val=False)
        except (TypeError, ValueError):
            self._check_train(*arguments)  # the reference's checks in its order: its first error is raised
            raise
        training = plan.Training(self, X_train, X_val, batch_size)
        if num_epochs == 0:
            training.settle()
        return self._train(X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate, verbose,
                           callback, training)

    train.__doc__ = reference.SimpleNetwork.train.__doc__

    def _train_epoch(self, i, X_train, y_train, batch_size, learning_rate, interrupt, losses, accuracies, training):
        network, compiled = training.epoch_plan()
        if not compiled:
            training.settle()
            return super()._train_epoch(i, X_train, y_train, batch_size, learning_rate, interrupt, losses, accuracies)
        interrupt.check(losses, accuracies, i)
        loss_sum, bad_batch, bad_loss, _ = training.epoch(network, y_train, learning_rate)
        if bad_batch >= 0:
            raise NonFiniteLossError(i, bad_batch, bad_loss, losses, accuracies,
                                     weights_finite=self._weights_finite())
        training.keep_last_batch(network)
        return self.dtype.type(loss_sum / (len(X_train) // batch_size))

    def _batch_steps(self, batch_size):
        return plan.batch_steps(self, batch_size)
