"""The drop-in: the reference's classes, with Numba kernels doing the work.

Each class subclasses its reference twin, so construction (and the random
draws), argument checks, logging and save/load are literally shared; what is
overridden is the arithmetic. Built-in activations and losses map to kernel
codes; any other callable still works through NumPy for that piece, with a
one-time warning. ``SimpleNetwork.train`` runs each epoch in one compiled call
(``kernels.training.train_epoch``) over buffers allocated once per call.
"""
import warnings

import numpy as np

from fastscratch import _validation as check
from fastscratch import reference
from fastscratch._interrupt import deferred_sigint
from fastscratch.exceptions import NonFiniteLossError
from fastscratch.functions import (cross_entropy, derivated_cross_entropy, derivated_loss_L2, derivated_relu,
                                   derivated_sigmoid, derivated_tanh, loss_L2, relu, sigmoid, tanh)
from fastscratch.kernels import activations, losses
from fastscratch.kernels.activations import times_derivative
from fastscratch.kernels.dense_backward import input_gradient, weight_gradient
from fastscratch.kernels.dense_forward import dense_forward
from fastscratch.kernels.evaluation import predict_classes
from fastscratch.kernels.sgd import sgd_step
from fastscratch.kernels.structure import (MIN_ROWS_PER_THREAD, batch_columns, full_columns, full_structure, in_parts,
                                          index_dtype, nonzero_structure)
from fastscratch.kernels.training import train_epoch

ACTIVATION_CODES = {sigmoid: activations.SIGMOID, relu: activations.RELU, tanh: activations.TANH}
DERIVATIVE_CODES = {derivated_sigmoid: activations.SIGMOID, derivated_relu: activations.RELU,
                    derivated_tanh: activations.TANH}
LOSS_CODES = {loss_L2: losses.L2, cross_entropy: losses.CROSS_ENTROPY}
LOSS_DERIVATIVE_CODES = {derivated_loss_L2: losses.L2, derivated_cross_entropy: losses.CROSS_ENTROPY}

#: Rows per compiled forward pass in ``evaluate_accuracy`` and batched ``predict``.
EVAL_CHUNK = 256

#: Where the compiled epoch stops paying off (measured: benchmarks/test_grid.py). Past these
#: sizes the work per batch dwarfs Python's overhead and BLAS's blocked GEMM beats the
#: kernels, so ``train`` runs the reference's NumPy loop, with identical results.
KERNEL_MAX_BATCH = 127
KERNEL_MAX_HIDDEN_WEIGHTS = 256 * 256

_warned = set()  # ids of the callables already warned about


class FallbackWarning(UserWarning):
    """A custom callable makes that piece run through NumPy instead of a kernel."""


def _code_for(function, codes, role):
    """The kernel code of a built-in function, or None (after a one-time warning) for any other callable."""
    for known, code in codes.items():
        if function is known:
            return code
    if function is not None and id(function) not in _warned:
        _warned.add(id(function))
        name = getattr(function, "__qualname__", repr(function))
        warnings.warn(f"{role} {name!r} is not one of fastscratch's built-ins; it runs through NumPy "
                      f"(slower), and training uses the per-batch Python loop", FallbackWarning, stacklevel=4)
    return None


def _as_batch(x):
    """View a single sample (n_in,) as a one-row batch."""
    return x[np.newaxis] if x.ndim == 1 else x


class Neuron(reference.Neuron):
    __doc__ = reference.Neuron.__doc__

    def __init__(self, num_inputs, activation_function, *, dtype=np.float64):
        super().__init__(num_inputs, activation_function, dtype=dtype)
        self._code = _code_for(activation_function, ACTIVATION_CODES, "activation_function")

    def forward(self, x):
        self._check_parameters()
        x = check.as_input("x", x, self.num_inputs, self.dtype)
        code = activations.IDENTITY if self._code is None else self._code
        x = _as_batch(x)
        z = np.empty((x.shape[0], 1), dtype=self.dtype)
        dense_forward(*nonzero_structure(x), 0, self.W.reshape(-1, 1), self.b, code, z)
        z = z.reshape(-1)  # np.dot(x, W) + b has shape (n,) for x (n, k) and (1,) for x (k,)
        return z if self._code is not None else self.activation_function(z)


class FullyConnectedLayer(reference.FullyConnectedLayer):
    __doc__ = reference.FullyConnectedLayer.__doc__

    def __init__(self, num_inputs, layer_size, activation_function, derivated_activation_function=None,
                 *, dtype=np.float64):
        super().__init__(num_inputs, layer_size, activation_function, derivated_activation_function, dtype=dtype)
        self._code = _code_for(activation_function, ACTIVATION_CODES, "activation_function")
        self._derivative_code = (None if derivated_activation_function is None else
                                 _code_for(derivated_activation_function, DERIVATIVE_CODES,
                                           "derivated_activation_function"))
        self._WT = np.empty((layer_size, num_inputs), dtype=self.dtype)  # scratch of input_gradient

    # W and b are checked on assignment: the kernels trust their shapes and dtypes.
    @property
    def W(self):
        return self._W

    @W.setter
    def W(self, value):
        self._W = self._checked_parameter("W", value)

    @property
    def b(self):
        return self._b

    @b.setter
    def b(self, value):
        self._b = self._checked_parameter("b", value)

    def _checked_parameter(self, name, value):
        current = getattr(self, "_" + name, None)
        arr = check._as_real_array(name, value)
        if current is not None and arr.shape != current.shape:
            raise ValueError(f"{name} must keep its shape {current.shape}, got {arr.shape}")
        arr = np.array(arr, dtype=self.dtype, order="C")  # a private copy, like the reference's own arrays
        check._check_finite(name, arr)
        return arr

    @property
    def fused(self):
        """True when both the activation and its derivative run as kernels."""
        return self._code is not None and self._derivative_code == self._code

    # Set by SimpleNetwork.train past the kernels' crossover: forward and backward as the reference
    # computes them, with NumPy's BLAS. The step stays sgd_step, the same bits as the reference's
    # ``W -= epsilon * dL_dW`` in one pass, without its temporary (1.1-1.2x at batch 1, hidden 1024-512).
    _blas = False
    # Set there for the first layer, whose dL/dx train discards: a third of that layer's products.
    _input_gradient_unused = False

    def _forward(self, x):
        if self._blas:
            return super()._forward(x)
        x2 = _as_batch(x)
        y = np.empty((x2.shape[0], self.size), dtype=self.dtype)
        dense_forward(*nonzero_structure(x2), 0, self._W, self._b,
                      activations.IDENTITY if self._code is None else self._code, y)
        if x.ndim == 1:
            y = y[0]
        self.y = y if self._code is not None else self.activation_function(y)
        self.x = x
        return self.y

    def _backward(self, dL_dy):
        if self._blas and self._input_gradient_unused:
            self._reference_parameter_gradients(self.x, dL_dy * self.derivated_activation_function(self.y))
            return None
        if self._blas:
            return super()._backward(dL_dy)
        y = np.ascontiguousarray(self.y, dtype=self.dtype)
        dL_dy = np.ascontiguousarray(dL_dy, dtype=self.dtype)
        if self._derivative_code is None:
            dL_dz = np.ascontiguousarray(dL_dy * self.derivated_activation_function(y), dtype=self.dtype)
        else:
            dL_dz = np.empty(y.shape, dtype=self.dtype)
            times_derivative(dL_dy, y, self._derivative_code, dL_dz)
        self.dL_dW = np.empty_like(self._W)
        self.dL_db = np.empty_like(self._b)
        weight_gradient(self.x, dL_dz, self.dL_dW, self.dL_db)
        dL_dx = np.empty(self.x.shape, dtype=self.dtype)
        input_gradient(dL_dz, self._W, self._WT, dL_dx)
        return dL_dx

    def _reference_parameter_gradients(self, x, dL_dz):
        """Set dL_dW and dL_db with the reference's own expressions (NumPy's BLAS): the same bits."""
        self.dL_dW = np.dot(x.T, dL_dz)
        self.dL_db = np.dot(np.ones(len(dL_dz), dtype=self.dtype), dL_dz)

    def _optimize(self, epsilon):
        sgd_step(self._W, self._b, self.dL_dW, self.dL_db, self.dtype.type(epsilon))


class SimpleNetwork(reference.SimpleNetwork):
    __doc__ = reference.SimpleNetwork.__doc__

    layer_class = FullyConnectedLayer

    def __init__(self, num_inputs, num_outputs, hidden_layers_sizes=(64, 32),
                 activation_function=sigmoid, derivated_activation_function=derivated_sigmoid,
                 loss_function=loss_L2, derivated_loss_function=derivated_loss_L2, *, dtype=np.float64):
        super().__init__(num_inputs, num_outputs, hidden_layers_sizes, activation_function,
                         derivated_activation_function, loss_function, derivated_loss_function, dtype=dtype)
        loss_code = _code_for(loss_function, LOSS_CODES, "loss_function")
        derivative_code = _code_for(derivated_loss_function, LOSS_DERIVATIVE_CODES, "derivated_loss_function")
        self._loss_code = loss_code if loss_code is not None and loss_code == derivative_code else None

    @property
    def fused(self):
        """True when ``train`` runs whole epochs compiled (built-in activations and loss)."""
        return self._loss_code is not None and all(layer.fused for layer in self.layers)

    def _kernel_arguments(self):
        return (tuple(layer._W for layer in self.layers), tuple(layer._b for layer in self.layers),
                np.array([layer._code for layer in self.layers], dtype=np.int64))

    def _buffers(self, rows):
        return tuple(np.empty((rows, layer.size), dtype=self.dtype) for layer in self.layers)

    def _forward_work(self, X, rows):
        """Buffers for forward passes over X, ``rows`` at a time: outputs and each layer's input structure."""
        indices_dtype = index_dtype(max(layer.num_inputs for layer in self.layers))
        hidden = [full_structure(rows, layer.num_inputs, indices_dtype) for layer in self.layers[1:]]
        indptr, indices, values = nonzero_structure(X, indices_dtype)
        return self._buffers(rows), ((indptr, *(s[0] for s in hidden)), (indices, *(s[1] for s in hidden)), values)

    def predict(self, x):
        self._check_layers()
        x = check.as_input("x", x, self.num_inputs, self.dtype)
        if x.ndim == 2 and x.shape[0] > 1 and self._kernel_forward:
            return self._predict_classes(self._forward_work(x, min(EVAL_CHUNK, len(x))))
        return super().predict(x)

    def _predict_classes(self, work):
        """The classes of the rows whose structure is in ``work`` (``_forward_work``).

        Rows are independent, so large inputs are split over threads as the
        indexing is (``structure.in_parts``); each part has its own buffers.
        """
        ys, (indptrs, indices, values) = work
        classes = np.empty(len(indptrs[0]) - 1, dtype=np.int64)
        arguments = self._kernel_arguments()

        def run(start, stop):
            part = (indptrs[0][start:stop + 1], *indptrs[1:])
            buffers = ys if start == 0 else self._buffers(len(ys[0]))
            predict_classes(*arguments, (buffers, (part, indices, values)), classes[start:stop])
        in_parts(run, len(classes), MIN_ROWS_PER_THREAD)
        return classes

    @property
    def _kernel_forward(self):
        return all(layer._code is not None for layer in self.layers)

    def _evaluate_accuracy(self, X_val, y_val, work=None):
        if not self._kernel_forward:
            return super()._evaluate_accuracy(X_val, y_val)
        classes = self._predict_classes(work or self._forward_work(X_val, min(EVAL_CHUNK, len(X_val))))
        # The reference's per-sample loop leaves the last sample's x and y on the layers.
        self._forward(X_val[-1])
        return np.count_nonzero(classes == y_val) / len(X_val)

    def kernels_pay_off(self, batch_size):
        """Whether ``train`` with this batch size runs compiled epochs (else the reference's BLAS loop)."""
        return self.fused and batch_size <= KERNEL_MAX_BATCH and all(
            layer.num_inputs * layer.size <= KERNEL_MAX_HIDDEN_WEIGHTS for layer in self.layers[1:])

    def _train(self, X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate, verbose, callback):
        if not self.fused:
            return super()._train(X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate,
                                  verbose, callback)
        if not self.kernels_pay_off(batch_size):
            for layer in self.layers:
                layer._blas = True
            self.layers[0]._input_gradient_unused = True
            try:
                return super()._train(X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate,
                                      verbose, callback)
            finally:
                for layer in self.layers:
                    layer._blas = layer._input_gradient_unused = False
        weights, biases, codes = self._kernel_arguments()
        scratch = tuple((np.empty(layer.size, dtype=self.dtype), np.empty(layer.size, dtype=self.dtype))
                        for layer in self.layers)
        ys, structures = self._forward_work(X_train, batch_size)
        offsets_dtype = index_dtype(batch_size * max(layer.num_inputs for layer in self.layers) + 1)
        work = (ys, self._buffers(batch_size), tuple(layer._WT for layer in self.layers), structures,
                batch_columns(structures[0][0], structures[1][0], self.num_inputs, batch_size, offsets_dtype),
                tuple(full_columns(batch_size, layer.num_inputs, offsets_dtype) for layer in self.layers), scratch)
        val_work = None if X_val is None else self._forward_work(X_val, min(EVAL_CHUNK, len(X_val)))
        num_batches = len(X_train) // batch_size
        lr = self.dtype.type(learning_rate)
        losses_, accuracies = [], []
        with deferred_sigint() as interrupt:
            finite = True
            for i in range(num_epochs):
                interrupt.check(losses_, accuracies, i)
                if not finite:  # the previous epoch's last step overflowed
                    raise NonFiniteLossError(i, 0, np.nan, losses_, accuracies, weights_finite=False)
                loss_sum, bad_batch, bad_loss, finite = train_epoch(y_train, batch_size, lr, weights, biases, codes,
                                                                    self._loss_code, work)
                if bad_batch >= 0:
                    raise NonFiniteLossError(i, bad_batch, bad_loss, losses_, accuracies, weights_finite=all(
                        np.isfinite(W).all() and np.isfinite(b).all() for W, b in zip(weights, biases)))
                self._keep_last_batch(X_train, batch_size, work)
                epoch_loss = self.dtype.type(loss_sum / num_batches)
                self._end_epoch(i, epoch_loss, X_val, y_val, X_val is not None, losses_, accuracies, verbose,
                                callback, val_work)
            interrupt.check(losses_, accuracies, num_epochs)
        return losses_, accuracies

    def _keep_last_batch(self, X_train, batch_size, work):
        """Leave x, y, dL_dW, dL_db of the epoch's last step on the layers, as the reference does."""
        ys, dzs = work[:2]
        last = len(X_train) // batch_size - 1
        x = X_train[last * batch_size:(last + 1) * batch_size]
        for layer, y, dz in zip(self.layers, ys, dzs):
            layer.x, layer.y = x, y.copy()
            layer._reference_parameter_gradients(x, dz)  # no kernel to compile for a once-per-epoch product
            x = layer.y
