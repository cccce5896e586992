"""The drop-in: the reference's classes, with Numba kernels doing the work.

Each class subclasses its reference twin for construction (the same random
draws, in the same order), attributes, the checks of its layers and
save/load; every compute method is its own (the oracle's loops may look
alike: that is the price of an oracle that knows nothing of this one), and
so is ``train``'s loop (``train_call``). Each call checks its arguments,
then runs as ``routing.route`` decides from the network as it is at the call:
``steps`` for layer after layer, ``prediction`` for many rows. What its calls
keep of their data is kept with the data (``kept_data``, claimed through
``inputs``); ``kept_data`` is the network's view of it.
"""
import numpy as np

from fastscratch import _validation, buffers, config, inputs, prediction, reference, routing, steps, train_call
from fastscratch.dispatch import FallbackWarning  # noqa: F401  (public: fastscratch.FallbackWarning)
from fastscratch.functions import derivated_loss_L2, derivated_sigmoid, loss_L2, sigmoid
from fastscratch.kept_data import KeptWithData
from fastscratch.kernels.checks import all_finite, count_nonzero
from fastscratch.kernels.structure import nonzero_fraction
from fastscratch.routing import Call, Way


def _rows(x):
    """The rows of an input: 1 for one sample given 1-D."""
    return 1 if x.ndim == 1 else len(x)


# The per-call checks are the reference's (``_validation``); their common case is answered here first, in a few
# attribute reads and one compiled pass, and anything else goes through the reference's checks, which raise or
# warn with its messages.

def _finite(name, x):
    """Whether x (from ``as_input``: C-contiguous, the network's float dtype) is finite; if not, the reference's
    warning."""
    return all_finite(x) or _validation.warn_unless_finite(name, x)


def _plain_layers(network):
    """Whether ``network.layers`` is a list of layers that chain, each in the network's dtype with ``np.ndarray``
    parameters of its shapes and that dtype: ``check_network``'s common case."""
    layers, dtype = network.layers, network.dtype
    if type(layers) is not list or not layers:
        return False
    size = layers[0].num_inputs
    for layer in layers:
        if not _plain_layer(layer, size, dtype):
            return False
        size = layer.size
    return True


def _plain_layer(layer, num_inputs, dtype):
    """Whether the layer takes ``num_inputs``, computes in ``dtype`` and holds ``np.ndarray`` parameters of its
    shapes and that dtype: ``check_layer_parameters``' common case."""
    W, b = layer.W, layer.b
    return (type(W) is np.ndarray and type(b) is np.ndarray and layer.num_inputs == num_inputs
            and layer.dtype == dtype and W.dtype == dtype and b.dtype == dtype
            and W.shape == (num_inputs, layer.size) and b.shape == (layer.size,))


def _stored_rows(layers):
    """The rows of the batch every layer holds (x and y of its shapes, ``np.ndarray``s) with a derivative to
    apply, for ``backward`` after ``check_layers``; None where ``check_stored_batch`` must say more."""
    x = layers[0].x
    if type(x) is not np.ndarray or x.ndim != 2:
        return None
    rows = len(x)
    for layer in layers:
        x, y = layer.x, layer.y
        if not (type(x) is np.ndarray and type(y) is np.ndarray and x.shape == (rows, layer.num_inputs)
                and y.shape == (rows, layer.size) and layer.derivated_activation_function is not None):
            return None
    return rows


def _output_gradient(layer, dL_dy):
    """``check_output_gradient(layer, dL_dy)`` for a layer whose stored batch is checked."""
    arr = _validation.as_input("dL_dy", dL_dy, layer.size, layer.dtype)
    if type(layer.y) is np.ndarray and arr.shape == layer.y.shape and all_finite(arr):
        return arr
    return _validation.check_output_gradient(layer, dL_dy)


def _density(x, rows):
    """The fraction of nonzero entries of a stored input of ``rows`` rows, for ``routing``'s test of the sparse
    weight gradient; 1 past ``config.KERNEL_MAX_BACKWARD_ROWS``, where that kernel does not run (counting 60,000
    rows would cost a fifth of the backward pass)."""
    if rows > config.KERNEL_MAX_BACKWARD_ROWS:
        return 1.0
    if type(x) is np.ndarray and x.flags.c_contiguous and x.dtype.kind == "f":
        return count_nonzero(x) / max(x.size, 1)
    return np.count_nonzero(x) / max(np.size(x), 1)


def _stored_gradients(layers):
    """Whether every layer holds gradients of its parameters' shapes, after ``check_layers``."""
    return all(type(layer.dL_dW) is np.ndarray and type(layer.dL_db) is np.ndarray
               and layer.dL_dW.shape == layer.W.shape and layer.dL_db.shape == layer.b.shape for layer in layers)


def _rows_buffers(network, name, source, X, every_row=False):
    """The ``ForwardWork`` of the compiled passes over X (``source``, as the user gave it, converted), its
    structure found where it is kept with the source or built (``inputs.DataClaim``)."""
    sizes = buffers.sizes_of(network)
    indices_dtype = buffers.indices_dtype(sizes)
    entry = inputs.DataClaim(name, source, X, network.kept_data, indices_dtype, sample=False).indexed(indices_dtype)
    return buffers.forward_buffers(entry, sizes, network.dtype, every_row)


class Neuron(reference.Neuron):
    __doc__ = reference.Neuron.__doc__

    def forward(self, x):
        # One row through one neuron is too small for a kernel to pay: the reference's expression.
        _validation.check_neuron_parameters(self)
        x = _validation.as_input("x", x, self.num_inputs, self.dtype)
        _finite("x", x)
        return self.activation_function(np.dot(x, self.W) + self.b)

    forward.__doc__ = reference.Neuron.forward.__doc__


class FullyConnectedLayer(reference.FullyConnectedLayer):
    __doc__ = reference.FullyConnectedLayer.__doc__

    def __init__(self, num_inputs, layer_size, activation_function, derivated_activation_function=None,
                 *, dtype=np.float64):
        super().__init__(num_inputs, layer_size, activation_function, derivated_activation_function, dtype=dtype)
        self._routes = routing.RouteCache()  # a re-run __init__ keeps no route of the old weights
        routing.route(self, Call.FORWARD)  # warn now about callables that will run through NumPy

    @classmethod
    def from_reference(cls, layer):
        """The drop-in twin of a reference layer: its attributes (the weights it drew), not copies."""
        twin = cls.__new__(cls)
        twin.__dict__.update(layer.__dict__)
        return twin

    @property
    def builtin_functions(self):
        """Whether the activation and its derivative are one built-in pair, which run as kernels."""
        return routing.route(self, Call.FORWARD).builtin_functions

    def forward(self, x):
        if not _plain_layer(self, self.num_inputs, self.dtype):
            _validation.check_layer_parameters(self)
        x = _validation.as_input("x", x, self.num_inputs, self.dtype)
        finite = _finite("x", x)
        return steps.forward(routing.route(self, Call.FORWARD, _rows(x), input_finite=finite), x)

    forward.__doc__ = reference.FullyConnectedLayer.forward.__doc__

    def backward(self, dL_dy):
        if not (_plain_layer(self, self.num_inputs, self.dtype) and _stored_rows([self])):
            _validation.check_stored_batch(self)
        dL_dy = _output_gradient(self, dL_dy)
        rows = len(dL_dy)
        return steps.backward(routing.route(self, Call.BACKWARD, rows, nonzero_fraction=_density(self.x, rows)), dL_dy)

    backward.__doc__ = reference.FullyConnectedLayer.backward.__doc__

    def optimize(self, epsilon):
        if not (_plain_layer(self, self.num_inputs, self.dtype) and _stored_gradients([self])):
            _validation.check_stored_gradients(self)
        steps.optimize(routing.route(self, Call.OPTIMIZE), _validation.check_learning_rate(epsilon, "epsilon"))

    optimize.__doc__ = reference.FullyConnectedLayer.optimize.__doc__


class SimpleNetwork(reference.SimpleNetwork):
    __doc__ = reference.SimpleNetwork.__doc__ + """
    The drop-in adds:
        kept_data (KeptWithData): the structures its calls keep of their data sets, kept with the arrays
            and shared by every network that reads them (``nbytes``, ``clear()``, ``capacity``); a
            ``KeptData`` assigned here keeps them itself instead. See ``fastscratch.kept_data``.
    """

    def __init__(self, num_inputs, num_outputs, hidden_layers_sizes=(64, 32),
                 activation_function=sigmoid, derivated_activation_function=derivated_sigmoid,
                 loss_function=loss_L2, derivated_loss_function=derivated_loss_L2, *, dtype=np.float64):
        super().__init__(num_inputs, num_outputs, hidden_layers_sizes, activation_function,
                         derivated_activation_function, loss_function, derivated_loss_function, dtype=dtype)
        self.layers = [FullyConnectedLayer.from_reference(layer) for layer in self.layers]
        self.kept_data = KeptWithData()
        self._routes = routing.RouteCache()
        routing.route(self, Call.FORWARD)  # warn now about callables that will run through NumPy

    @property
    def builtin_functions(self):
        """Whether every activation, derivative and the loss are built-in pairs, as a compiled epoch needs."""
        return routing.route(self, Call.FORWARD).builtin_functions

    def compiles_epochs(self, batch_size, X_train=None):
        """Whether ``train`` with this batch size runs compiled epochs (else the reference's batch loop); past
        127 rows that depends on how sparse ``X_train`` is (without it, counted as dense)."""
        density = 1.0 if X_train is None else nonzero_fraction(np.asarray(X_train))
        return routing.route(self, Call.EPOCH, batch_size, nonzero_fraction=density).way is Way.COMPILED_EPOCH

    def check_layers(self):
        if not _plain_layers(self):
            _validation.check_network(self)

    check_layers.__doc__ = reference.SimpleNetwork.check_layers.__doc__

    def forward(self, x):
        self.check_layers()
        x = _validation.as_input("x", x, self.num_inputs, self.dtype)
        finite = _finite("x", x)
        return steps.forward(routing.route(self, Call.FORWARD, _rows(x), input_finite=finite), x)

    forward.__doc__ = reference.SimpleNetwork.forward.__doc__

    def backward(self, dL_dy):
        self.check_layers()
        rows = _stored_rows(self.layers)
        if rows is None:
            for layer in self.layers:
                _validation.check_stored_batch(layer, rows)  # every layer holds the same batch
                rows = np.shape(layer.x)[0]
        dL_dy = _output_gradient(self.layers[-1], dL_dy)
        density = _density(self.layers[0].x, rows)
        return steps.backward(routing.route(self, Call.BACKWARD, rows, nonzero_fraction=density), dL_dy)

    backward.__doc__ = reference.SimpleNetwork.backward.__doc__

    def optimize(self, epsilon):
        epsilon = _validation.check_learning_rate(epsilon, "epsilon")
        self.check_layers()
        if not _stored_gradients(self.layers):
            for layer in self.layers:
                _validation.check_stored_gradients(layer)
        steps.optimize(routing.route(self, Call.OPTIMIZE), epsilon)

    optimize.__doc__ = reference.SimpleNetwork.optimize.__doc__

    def predict(self, x):
        self.check_layers()
        source = x
        x = _validation.as_input("x", x, self.num_inputs, self.dtype)
        finite = _finite("x", x)

        route = routing.route(self, Call.PREDICT, _rows(x), input_finite=finite)
        return prediction.predict(route, x, lambda: _rows_buffers(self, "x", source, x, every_row=True))

    predict.__doc__ = reference.SimpleNetwork.predict.__doc__

    def evaluate_accuracy(self, X_val, y_val):
        self.check_layers()
        source = X_val
        X_val = _validation.as_input("X_val", X_val, self.num_inputs, self.dtype)
        finite = _finite("X_val", X_val)
        if X_val.ndim == 1:
            X_val = X_val[np.newaxis]
        y_val = _validation.as_labels("y_val", y_val, self.num_outputs, len(X_val))
        route = routing.route(self, Call.ACCURACY, len(X_val), input_finite=finite)
        return prediction.accuracy(route, X_val, y_val, lambda: _rows_buffers(self, "X_val", source, X_val))

    evaluate_accuracy.__doc__ = reference.SimpleNetwork.evaluate_accuracy.__doc__

    def train(self, X_train, y_train, X_val=None, y_val=None, batch_size=32, num_epochs=5, learning_rate=1e-3,
              print_frequency=1, *, verbose=True, callback=None):
        return train_call.train(self, X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate,
                                print_frequency, verbose, callback)

    train.__doc__ = reference.SimpleNetwork.train.__doc__
