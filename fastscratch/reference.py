"""The tutorial's network in pure NumPy: the oracle for everything else.

The algorithm is the tutorial's (``../shared/seed``) line for line: weights
drawn with ``np.random`` in the same order, the same loss and gradient
conventions, no shuffling, the last incomplete batch dropped and the same log
line. What is added sits around it, never inside it: checks of the arguments
at the public methods (``fastscratch._validation``; what the tutorial accepts
silently is warned about and run as it runs), ``dtype=`` (fixed at
construction), ``np.nan`` for the removed ``np.NaN``, Ctrl-C deferred to a
batch boundary, a stop on a non-finite loss, and save/load. Nothing in it
serves the drop-in, which subclasses it for construction, attributes, the
checks of its layers and save/load: every compute method of the drop-in is
its own, so no method here exists to be overridden (the underscore ones are
this loop's).
"""
import numpy as np

from fastscratch import _validation
from fastscratch import serialization
from fastscratch._interrupt import deferred_sigint
from fastscratch.exceptions import NonFiniteLossError
from fastscratch.functions import (  # noqa: F401  (re-exported: the tutorial's names)
    ACTIVATIONS, LOSSES, cross_entropy, derivated_cross_entropy, derivated_loss_L2, derivated_relu,
    derivated_sigmoid, derivated_tanh, loss_L2, relu, sigmoid, tanh)

__all__ = ["epoch_line", "Neuron", "FullyConnectedLayer", "SimpleNetwork", "sigmoid", "derivated_sigmoid", "relu",
           "derivated_relu", "tanh", "derivated_tanh", "loss_L2", "derivated_loss_L2", "cross_entropy",
           "derivated_cross_entropy"]


def epoch_line(epoch, loss, accuracy):
    """The tutorial's log line of one epoch."""
    return "Epoch {:4d}: training loss = {:.6f} | val accuracy = {:.2f}%".format(epoch, loss, accuracy * 100)


class FixedDtype:
    """The ``dtype`` attribute, set once at construction: a network cannot change what it computes in midway
    (its arrays, and the converted data of a running ``train``, keep the old one); build a new one instead."""

    def __set_name__(self, owner, name):
        self.name = "_" + name

    def __get__(self, obj, owner=None):
        return self if obj is None else getattr(obj, self.name)

    def __set__(self, obj, value):
        if hasattr(obj, self.name):
            raise AttributeError(f"{type(obj).__name__}.dtype is fixed at construction ({getattr(obj, self.name)}); "
                                 f"build a new network with dtype={value!r} and copy the weights over")
        setattr(obj, self.name, _validation.check_dtype(value))

    @staticmethod
    def construct(obj, value):
        """Set ``obj.dtype`` in ``__init__``: a re-run ``__init__`` (a notebook cell run again on an old object, as
        the tutorial's classes allow) is a fresh construction, free to choose another dtype."""
        value = _validation.check_dtype(value)
        obj.__dict__.pop("_dtype", None)
        obj.dtype = value


class Neuron:
    """A single artificial neuron: ``activation_function(x . W + b)``.

    Args:
        num_inputs (int): input vector size.
        activation_function (callable): applied to the weighted sum.
    Attributes:
        W (ndarray): weights, shape ``(num_inputs,)``, uniform in [-1, 1).
        b (ndarray): bias, shape ``(1,)``, uniform in [-1, 1).
    """

    dtype = FixedDtype()

    def __init__(self, num_inputs, activation_function, *, dtype=np.float64):
        super().__init__()
        self.num_inputs = _validation.check_size("num_inputs", num_inputs)
        FixedDtype.construct(self, dtype)
        self.W = np.random.uniform(size=num_inputs, low=-1., high=1.).astype(self.dtype, copy=False)
        self.b = np.random.uniform(size=1, low=-1., high=1.).astype(self.dtype, copy=False)
        self.activation_function = activation_function

    def forward(self, x):
        """Return the activation for ``x`` of shape ``(1, num_inputs)`` (or ``(num_inputs,)``)."""
        _validation.check_neuron_parameters(self)
        x = _validation.read_input("x", x, self.num_inputs, self.dtype)
        z = np.dot(x, self.W) + self.b
        return self.activation_function(z)

    def __repr__(self):
        return f"{type(self).__name__}(num_inputs={self.num_inputs})"


class FullyConnectedLayer:
    """A fully connected layer: ``y = activation_function(x @ W + b)``.

    Args:
        num_inputs (int): input vector size.
        layer_size (int): number of neurons (output size).
        activation_function (callable): activation of the layer.
        derivated_activation_function (callable): its derivative, in terms of the output ``y``.
        dtype: float64 (default) or float32.
    Attributes:
        W (ndarray): weights, shape ``(num_inputs, layer_size)``, standard normal.
        b (ndarray): biases, shape ``(layer_size,)``, standard normal.
        size (int): ``layer_size``.
        x, y (ndarray): the last input and output, kept for back-propagation.
        dL_dW, dL_db (ndarray): the last gradients of the loss w.r.t. ``W`` and ``b``.
    """

    dtype = FixedDtype()

    def __init__(self, num_inputs, layer_size, activation_function, derivated_activation_function=None,
                 *, dtype=np.float64):
        super().__init__()
        self.num_inputs = _validation.check_size("num_inputs", num_inputs)
        _validation.check_size("layer_size", layer_size)
        FixedDtype.construct(self, dtype)
        self.W = np.random.standard_normal((num_inputs, layer_size)).astype(self.dtype, copy=False)
        self.b = np.random.standard_normal(layer_size).astype(self.dtype, copy=False)
        self.size = int(layer_size)

        self.activation_function = activation_function
        self.derivated_activation_function = derivated_activation_function
        self.x, self.y = None, None
        self.dL_dW, self.dL_db = None, None

    def forward(self, x):
        """Return the activations for ``x`` of shape ``(batch_size, num_inputs)``, keeping x and y."""
        _validation.check_layer_parameters(self)
        return self._forward(_validation.read_input("x", x, self.num_inputs, self.dtype))

    def _forward(self, x):
        z = np.dot(x, self.W) + self.b
        self.y = self.activation_function(z)
        self.x = x  # (we store the input and output values for back-propagation)
        return self.y

    def backward(self, dL_dy):
        """Store ``dL_dW``, ``dL_db`` and return ``dL_dx`` given ``dL_dy`` (shaped like ``y``)."""
        _validation.check_stored_batch(self)
        return self._backward(_validation.check_output_gradient(self, dL_dy))

    def _backward(self, dL_dy):
        dy_dz = self.derivated_activation_function(self.y)  # = f'
        dL_dz = (dL_dy * dy_dz)  # dL/dz = dL/dy * dy/dz = l'_{k+1} * f'
        dz_dw = self.x.T
        dz_dx = self.W.T
        dz_db = np.ones(dL_dy.shape[0], dtype=self.dtype)  # dz/db = d(W.x + b)/db = "ones"-vector

        self.dL_dW = np.dot(dz_dw, dL_dz)
        self.dL_db = np.dot(dz_db, dL_dz)

        dL_dx = np.dot(dL_dz, dz_dx)
        return dL_dx

    def optimize(self, epsilon):
        """Take one gradient step of size ``epsilon`` with the stored gradients."""
        _validation.check_stored_gradients(self)
        self._optimize(_validation.check_learning_rate(epsilon, "epsilon"))

    def _optimize(self, epsilon):
        self.W -= epsilon * self.dL_dW
        self.b -= epsilon * self.dL_db

    def __repr__(self):
        return f"{type(self).__name__}({self.num_inputs}, {self.size})"


class SimpleNetwork:
    """A simple fully connected network, trained by plain mini-batch SGD.

    Args:
        num_inputs (int): input vector size.
        num_outputs (int): output vector size.
        hidden_layers_sizes (sequence of int): sizes of the hidden layers.
        activation_function, derivated_activation_function (callable): for all layers.
        loss_function, derivated_loss_function (callable): the loss and its derivative.
        dtype: float64 (default) or float32.
    Attributes:
        layers (list): the ``FullyConnectedLayer`` objects, input to output.
        loss_function, derivated_loss_function (callable).
    """

    dtype = FixedDtype()

    def __init__(self, num_inputs, num_outputs, hidden_layers_sizes=(64, 32),
                 activation_function=sigmoid, derivated_activation_function=derivated_sigmoid,
                 loss_function=loss_L2, derivated_loss_function=derivated_loss_L2, *, dtype=np.float64):
        super().__init__()
        if isinstance(hidden_layers_sizes, (str, bytes)) or not hasattr(hidden_layers_sizes, "__iter__"):
            raise TypeError(f"hidden_layers_sizes must be a sequence of ints, got {hidden_layers_sizes!r}")
        layer_sizes = [_validation.check_size("num_inputs", num_inputs),
                       *(_validation.check_size("hidden_layers_sizes[%d]" % i, s)
                         for i, s in enumerate(hidden_layers_sizes)),
                       _validation.check_size("num_outputs", num_outputs)]
        FixedDtype.construct(self, dtype)
        self.layers = [
            FullyConnectedLayer(layer_sizes[i], layer_sizes[i + 1], activation_function,
                             derivated_activation_function, dtype=self.dtype)
            for i in range(len(layer_sizes) - 1)]

        self.loss_function = loss_function
        self.derivated_loss_function = derivated_loss_function

    @property
    def num_inputs(self):
        return self.layers[0].num_inputs

    @property
    def num_outputs(self):
        return self.layers[-1].size

    def forward(self, x):
        """Return the network output for ``x`` of shape ``(batch_size, num_inputs)`` or ``(num_inputs,)``."""
        self.check_layers()
        return self._forward(_validation.read_input("x", x, self.num_inputs, self.dtype))

    def check_layers(self):
        """Raise unless ``layers`` (a public list) still chains, each layer in the network's dtype with
        parameters of its shapes (``_validation.check_network``)."""
        _validation.check_network(self)

    def _forward(self, x):
        for layer in self.layers:  # from the input layer to the output one
            x = layer._forward(x)
        return x

    def predict(self, x):
        """Return the class id (index of the largest output) for one sample.

        ``x`` is one sample, ``(num_inputs,)`` or ``(1, num_inputs)``, as in the
        tutorial; given several rows, an array with one class id per row.
        """
        self.check_layers()
        x = _validation.read_input("x", x, self.num_inputs, self.dtype)
        if x.ndim == 2 and x.shape[0] > 1:
            return np.argmax(self._forward(x), axis=1)
        return self._predict(x)

    def _predict(self, x):
        estimations = self._forward(x)
        best_class = np.argmax(estimations)
        return best_class

    def backward(self, dL_dy):
        """Back-propagate ``dL_dy`` (after ``forward``) and return ``dL_dx``."""
        self.check_layers()
        rows = None
        for layer in self.layers:
            _validation.check_stored_batch(layer, rows)  # every layer holds the same batch
            rows = np.shape(layer.x)[0]
        return self._backward(_validation.check_output_gradient(self.layers[-1], dL_dy))

    def _backward(self, dL_dy):
        for layer in reversed(self.layers):  # from the output layer to the input one
            dL_dy = layer._backward(dL_dy)
        return dL_dy

    def optimize(self, epsilon):
        """Take one SGD step of size ``epsilon`` on every layer (after ``backward``)."""
        epsilon = _validation.check_learning_rate(epsilon, "epsilon")
        self.check_layers()
        for layer in self.layers:
            _validation.check_stored_gradients(layer)
        self._optimize(epsilon)

    def _optimize(self, epsilon):
        for layer in self.layers:  # the order doesn't matter here
            layer._optimize(epsilon)

    def evaluate_accuracy(self, X_val, y_val):
        """Return the fraction of samples of ``X_val`` whose predicted class is ``y_val``.

        ``y_val`` holds integer class ids (or one-hot rows).
        """
        self.check_layers()
        X_val = _validation.read_input("X_val", X_val, self.num_inputs, self.dtype)
        if X_val.ndim == 1:
            X_val = X_val[np.newaxis]
        y_val = _validation.as_labels("y_val", y_val, self.num_outputs, len(X_val))
        return self._evaluate_accuracy(X_val, y_val)

    def _evaluate_accuracy(self, X_val, y_val):
        num_corrects = 0
        for i in range(len(X_val)):
            pred_class = self._predict(X_val[i])
            if pred_class == y_val[i]:
                num_corrects += 1
        return num_corrects / len(X_val)

    def train(self, X_train, y_train, X_val=None, y_val=None, batch_size=32, num_epochs=5, learning_rate=1e-3,
              print_frequency=1, *, verbose=True, callback=None):
        """Train with mini-batch SGD; return ``(losses, accuracies)``, one value per epoch.

        Batches are taken in order, without shuffling, and a last incomplete
        batch is dropped. ``y_train`` is one-hot (or integer labels, one-hot
        encoded here); ``y_val`` holds class ids. ``verbose`` prints the
        tutorial's log line every ``print_frequency`` epochs and after the
        last (the book's notebook passes 20; 1, the default, prints every
        epoch, as the tutorial's text does); ``callback(epoch, loss,
        accuracy)`` is called after each epoch. Ctrl-C stops at the next
        batch boundary and raises ``TrainingInterrupted``; a non-finite loss
        raises ``NonFiniteLossError`` before that batch's update.
        """
        self.check_layers()
        X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate, print_frequency = (
            _validation.train_arguments(self.num_inputs, self.num_outputs, self.dtype, X_train, y_train, X_val,
                                        y_val, batch_size, num_epochs, learning_rate, print_frequency))
        num_batches_per_epoch = len(X_train) // batch_size
        do_validation = X_val is not None and y_val is not None
        losses, accuracies = [], []
        with deferred_sigint() as interrupt:
            for i in range(num_epochs):  # for each training epoch
                epoch_loss = 0
                for b in range(num_batches_per_epoch):  # for each batch composing the dataset
                    interrupt.check(losses, accuracies, i, b)
                    batch_index_begin = b * batch_size
                    batch_index_end = batch_index_begin + batch_size
                    x = X_train[batch_index_begin: batch_index_end]
                    targets = y_train[batch_index_begin: batch_index_end]
                    predictions = self._forward(x)  # forward pass
                    L = self.loss_function(predictions, targets)  # loss computation
                    if not np.isfinite(L):
                        raise NonFiniteLossError(i, b, L, losses, accuracies, weights_finite=self.weights_finite())
                    dL_dy = self.derivated_loss_function(predictions, targets)  # loss derivation
                    self._backward(dL_dy)  # back-propagation pass
                    self._optimize(learning_rate)  # optimization of the NN
                    epoch_loss += L
                epoch_loss /= num_batches_per_epoch
                losses.append(epoch_loss)
                if do_validation:
                    accuracy = self._evaluate_accuracy(X_val, y_val)
                    accuracies.append(accuracy)
                else:
                    accuracy = np.nan
                if verbose and (i % print_frequency == 0 or i == num_epochs - 1):
                    print(epoch_line(i, epoch_loss, accuracy))
                if callback is not None:
                    callback(i, epoch_loss, accuracy)
            interrupt.check(losses, accuracies, num_epochs)  # a Ctrl-C during the last epoch is not lost
            # An overflow in the very last step has no next batch whose loss would show it.
            if num_epochs and not self.weights_finite():
                raise NonFiniteLossError(num_epochs, 0, np.nan, losses, accuracies, weights_finite=False)
        return losses, accuracies

    def weights_finite(self):
        """Whether every layer's W and b is finite."""
        return all(np.isfinite(layer.W).all() and np.isfinite(layer.b).all() for layer in self.layers)

    def save(self, path):
        """Write the weights, biases and architecture to ``path`` (``.npz``)."""
        serialization.save(self, path)

    @classmethod
    def load(cls, path, **functions):
        """Build a network from a file written by ``save``.

        Built-in activations and losses are restored by name; a network saved
        with custom callables needs them passed again as keywords
        (``activation_function=...`` and so on).
        """
        return serialization.load(cls, path, **functions)

    def load_weights(self, path):
        """Copy the weights of a saved network of the same architecture into this one.

        Raises ``ValueError`` (and leaves this network untouched) when the file is
        not a saved network or its shapes differ.
        """
        serialization.load_weights(self, path)

    def __repr__(self):
        sizes = [self.num_inputs] + [layer.size for layer in self.layers]
        return f"{type(self).__name__}({'-'.join(map(str, sizes))}, dtype={self.dtype})"
