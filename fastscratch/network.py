"""The drop-in: the reference's classes, with Numba kernels doing the work.

Each class subclasses its reference twin, so construction (the same random
draws, in the same order), argument checks and save/load are the reference's;
the arithmetic is the drop-in's, and so is ``train``'s loop (``session``).
Each call validates its arguments and runs the plan decided from the network
as it is: the per-call plan is kept (``plan.call_plan``) only while the
objects it was decided from are the same ones, and ``train`` decides again
every epoch. What its calls keep of their data is kept with the data
(``kept_data``); ``kept_data`` is the network's view of it.
"""
import numpy as np

from fastscratch import _validation as check
from fastscratch import plan, prediction, reference, session
from fastscratch.dispatch import FallbackWarning  # noqa: F401  (public: fastscratch.FallbackWarning)
from fastscratch.functions import derivated_loss_L2, derivated_sigmoid, loss_L2, sigmoid
from fastscratch.kept_data import KeptWithData


class Neuron(reference.Neuron):
    __doc__ = reference.Neuron.__doc__
    # One row through one neuron is too small for a kernel to pay: forward is the reference's expression.


class FullyConnectedLayer(reference.FullyConnectedLayer):
    __doc__ = reference.FullyConnectedLayer.__doc__

    def __init__(self, num_inputs, layer_size, activation_function, derivated_activation_function=None,
                 *, dtype=np.float64):
        super().__init__(num_inputs, layer_size, activation_function, derivated_activation_function, dtype=dtype)
        self._plans = plan.PlanCache()  # a re-run __init__ keeps no plan of the old weights
        plan.layer_plan(self, self.dtype, where="layer")  # warn now about callables that will run through NumPy

    @classmethod
    def from_reference(cls, layer):
        """The drop-in twin of a reference layer: its attributes (the weights it drew), not copies."""
        twin = cls.__new__(cls)
        twin.__dict__.update(layer.__dict__)
        return twin

    @property
    def fused(self):
        """True when both the activation and its derivative run as kernels."""
        return plan.layer_plan(self, self.dtype).fused

    def forward(self, x):
        self._check_parameters()
        x, finite = check.read_input("x", x, self.num_inputs, self.dtype)
        if not finite:  # the reference's expressions
            return plan.forward(plan.layer_plan(self, self.dtype, numpy=True, where="layer", scan=False), x,
                                self.dtype)
        return self._call_plan().forward(x)

    def _call_plan(self):
        """The layer's per-call plan, as a one-layer ``NetworkPlan``: kept while its W, b and functions are the
        same objects (``plan.call_plan``)."""
        cache = self.__dict__.get("_plans")
        if cache is None:
            cache = self._plans = plan.PlanCache()
        return plan.call_plan(self, cache)

    def _backward(self, dL_dy):
        return plan.backward(self._call_plan().layers[0], dL_dy, self.dtype)

    def _optimize(self, epsilon):
        plan.optimize(self._call_plan().layers[0], epsilon, self.dtype)


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
        self._plans = plan.PlanCache()
        plan.network_plan(self)  # warn now about callables that will run through NumPy

    @property
    def fused(self):
        """True when ``train`` can run whole epochs compiled (built-in activations and loss)."""
        return plan.network_plan(self).fused

    def kernels_pay_off(self, batch_size, X_train=None):
        """Whether ``train`` with this batch size runs compiled epochs (else the reference's BLAS loop); past
        127 rows that depends on how sparse ``X_train`` is (without it, counted as dense)."""
        density = 1.0 if X_train is None else plan.nonzero_fraction(np.asarray(X_train))
        return plan.compiled_epoch(plan.network_plan(self), self, batch_size, density)

    def forward(self, x):
        self.check_layers()
        x, finite = check.read_input("x", x, self.num_inputs, self.dtype)
        return self._call_plan(finite).forward(x)

    forward.__doc__ = reference.SimpleNetwork.forward.__doc__

    def _call_plan(self, finite=True):
        """The kept per-call plan (``plan.call_plan``); for non-finite inputs, the reference's expressions."""
        return plan.call_plan(self, self._plans) if finite else plan.network_plan(self, numpy=True, scan=False)

    def _backward(self, dL_dy):
        return self._call_plan().backward(dL_dy)

    def _optimize(self, epsilon):
        self._call_plan().optimize(epsilon)

    def predict(self, x):
        self.check_layers()
        source = x
        x, finite = check.read_input("x", x, self.num_inputs, self.dtype)
        if x.ndim == 2 and x.shape[0] > 1:
            network = plan.network_plan(self, numpy=not finite)
            if network.compiled_forward:
                work, _ = prediction.forward_work(x, plan.sizes_of(self), self.dtype, self.kept_data.for_data(source),
                                                  every_row=True)
                classes = prediction.predict(network, work)
                for layer, y in zip(self.layers, work.ys):  # the batch's x and y, as the reference's forward leaves
                    layer.x, layer.y, x = x, y, y
                return classes
            return np.argmax(network.forward(x), axis=1)
        return np.argmax(self._call_plan(finite).forward(x))

    predict.__doc__ = reference.SimpleNetwork.predict.__doc__

    def evaluate_accuracy(self, X_val, y_val):
        self.check_layers()
        source = X_val
        X_val, finite = check.read_input("X_val", X_val, self.num_inputs, self.dtype)
        if X_val.ndim == 1:
            X_val = X_val[np.newaxis]
        y_val = check.as_labels("y_val", y_val, self.num_outputs, len(X_val))

        def val_work():
            return prediction.forward_work(X_val, plan.sizes_of(self), self.dtype, self.kept_data.for_data(source))[0]
        return prediction.accuracy(self, X_val, y_val, val_work, numpy=not finite, call_plan=self._call_plan())

    evaluate_accuracy.__doc__ = reference.SimpleNetwork.evaluate_accuracy.__doc__

    def train(self, X_train, y_train, X_val=None, y_val=None, batch_size=32, num_epochs=5, learning_rate=1e-3,
              print_frequency=1, *, verbose=True, callback=None):
        sources = X_train, X_val  # as given: their structures are kept with them
        X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate = self._check_train(
            X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate)
        print_frequency = check.check_size("print_frequency", print_frequency)
        places = self.kept_data.for_data(sources[0]), None if X_val is None else self.kept_data.for_data(sources[1])
        return session.train(self, X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate,
                             print_frequency, verbose, callback, places)

    train.__doc__ = reference.SimpleNetwork.train.__doc__

    def _check_train(self, *arguments):
        """The reference's checks, but X_train's and X_val's finiteness, which the training session proves by
        comparison with the kept structures where one matches (a narrowing conversion is checked at once)."""
        self.check_layers()
        try:
            return check.train_arguments(self.num_inputs, self.num_outputs, self.dtype, *arguments, finite_X=False,
                                         finite_X_val=False)
        except (TypeError, ValueError):
            super()._check_train(*arguments)  # the reference's checks in its order: its first error is raised
            raise
