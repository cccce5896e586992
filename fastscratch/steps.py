"""Forward, backward and optimize of a layer or a network, each layer as its ``routing.LayerRoute`` says.

The products are a kernel over every entry or the reference's BLAS expression;
the activation and derivative are a kernel, the built-in called as the
reference calls it, or the user's callable with its result checked; the step
is one kernel pass on the user's W and b in place (NumPy's bits) or the
reference's ``W -= epsilon * dL_dW`` on the user's objects. Nothing here tests a
size: the route did.
"""
import numpy as np

from fastscratch import config
from fastscratch.callables import checked_result
from fastscratch.kernels.activations import times_derivative
from fastscratch.kernels.dense_backward import weight_gradients
from fastscratch.kernels.dense_forward import blocked_forward
from fastscratch.kernels.sgd import sgd_step
from fastscratch.kernels.structure import in_parts
from fastscratch.parameters import in_place, kernel_array
from fastscratch.routing import Function, Products, Step


def forward(route, x):
    """The output of the route's layers for x (n, n_in) or (n_in,), each layer keeping its x and y as the
    reference's forward keeps them."""
    for layer in route.layers:
        x = _layer_forward(layer, x, route.dtype)
    return x


def _layer_forward(route, x, dtype):
    """``y = f(x @ W + b)`` of one layer, as its ``LayerRoute`` says."""
    layer = route.layer
    if route.products is Products.BLAS:
        y = layer.activation_function(np.dot(x, layer.W) + layer.b)
        if route.activation is Function.USERS:
            y = checked_result(layer.activation_function, "activation_function", y, x.shape[:-1] + (layer.size,),
                               dtype)
    else:
        rows = x[np.newaxis] if x.ndim == 1 else x
        y = np.empty((rows.shape[0], layer.size), dtype=dtype)
        W, b, code, group = route.W, route.b, route.activation_code, config.EVAL_GROUP
        if len(rows) < 2 * config.MIN_ROWS_PER_THREAD:
            blocked_forward(rows, W, b, code, y, group)
        else:  # rows are independent: parts of them in threads (the kernel releases the GIL)
            in_parts(lambda start, stop: blocked_forward(rows[start:stop], W, b, code, y[start:stop], group),
                     len(rows), config.MIN_ROWS_PER_THREAD)
        if x.ndim == 1:
            y = y[0]
        if route.activation is Function.USERS:
            y = checked_result(layer.activation_function, "activation_function", layer.activation_function(y),
                               y.shape, dtype)
    layer.y, layer.x = y, x
    return y


def backward(route, dL_dy, input_gradient_needed=True):
    """Set each layer's dL_dW and dL_db from dL_dy (shaped like the last y) and return dL_dx;
    ``input_gradient_needed`` false skips the first layer's (``train`` discards it) and returns None."""
    for i in range(len(route.layers) - 1, -1, -1):
        dL_dy = _layer_backward(route.layers[i], dL_dy, route.dtype, input_gradient_needed or i > 0)
    return dL_dy


def _layer_backward(route, dL_dy, dtype, input_gradient_needed):
    """dL_dz from the derivative as the route says (a kernel: one pass instead of NumPy's temporaries); dL_dW and
    dL_db as the route's ``gradient`` says; dL_dx by the reference's BLAS expression, which no kernel beat."""
    layer = route.layer
    x, y = kernel_array("x", layer.x, dtype), kernel_array("y", layer.y, dtype)
    derivative = layer.derivated_activation_function
    if route.derivative is Function.USERS:
        dL_dz = dL_dy * checked_result(derivative, "derivated_activation_function", derivative(y), y.shape, dtype,
                                       broadcast=True)
    elif route.derivative is Function.NUMPY:
        dL_dz = dL_dy * derivative(y)  # the reference's expression
    else:
        dL_dz = np.empty(y.shape, dtype=dtype)
        times_derivative(dL_dy, y, route.derivative_code, dL_dz)
    if route.gradient is Products.KERNEL:
        n, n_in = x.shape
        dL_dW, dL_db = np.empty((n_in, layer.size), dtype=dtype), np.empty(layer.size, dtype=dtype)
        weight_gradients(x, dL_dz, np.empty(n * n_in, dtype=np.int32), np.empty(n * n_in, dtype=np.int32),
                         np.empty(n_in, dtype=np.int32), dL_dW, dL_db)
        layer.dL_dW, layer.dL_db = dL_dW, dL_db
    else:
        parameter_gradients(layer, x, dL_dz)
    return np.dot(dL_dz, np.asarray(layer.W).T) if input_gradient_needed else None


def parameter_gradients(layer, x, dL_dz):
    """Set dL_dW and dL_db with the reference's own expressions (NumPy's BLAS): the same bits."""
    layer.dL_dW = np.dot(x.T, dL_dz)
    layer.dL_db = np.dot(np.ones(len(dL_dz), dtype=dL_dz.dtype), dL_dz)


def optimize(route, epsilon):
    """One SGD step of every layer with its stored gradients, in the layers' order (a lone layer's messages name
    it ``layer``, a network's ``layers[i]``)."""
    for i, layer in enumerate(route.layers):
        _step(layer, epsilon, route.dtype, "layer" if route.lone else f"layers[{i}]")


def _step(route, epsilon, dtype, owner):
    """The reference's ``W -= epsilon * dL_dW``, then ``b``'s.

    Where the route steps in place and W and b still can be (a kept route's arrays may have been made
    read-only since), one kernel pass gives NumPy's bits. Otherwise the reference's own expressions step the
    user's objects, in its order: a view steps the memory it shares with another layer's parameters after
    that layer's step, and a ``W`` (``b``) that cannot store the update fails where the reference's ``-=``
    fails (``W`` before any update of this layer, ``b`` after ``W``'s), with a message naming it; nothing is
    truncated into an int or bool array.
    """
    layer = route.layer
    if route.step is Step.KERNEL:
        W, b = in_place(layer.W, dtype), in_place(layer.b, dtype)
        if W is not None and b is not None:
            sgd_step(W, b, kernel_array("dL_dW", layer.dL_dW, dtype), kernel_array("dL_db", layer.dL_db, dtype),
                     dtype.type(epsilon))
            return
    _check_update(owner, "W", layer.W, dtype)
    layer.W -= epsilon * layer.dL_dW
    _check_update(owner, "b", layer.b, dtype)
    layer.b -= epsilon * layer.dL_db


def _check_update(owner, name, value, dtype):
    """Raise where the reference's ``name -= ...`` would, with a message naming ``owner.name``: an array that
    cannot store a ``dtype`` update (int, bool), where NumPy refuses the cast, or a read-only one. The
    reference raises NumPy's own errors; the drop-in, whose kernels would write anyway, must check first."""
    if isinstance(value, np.ndarray) and not np.can_cast(dtype, value.dtype, "same_kind"):
        raise TypeError(f"{owner}.{name} has dtype {value.dtype}, which cannot hold the {np.dtype(dtype)} update "
                        f"{name} -= epsilon * dL_d{name} (NumPy refuses the cast, as in the tutorial): give the "
                        f"layer float weights, e.g. {name}.astype(np.float64)")
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        raise ValueError(f"{owner}.{name} is read-only: the update {name} -= epsilon * dL_d{name} cannot be "
                         f"stored (output array is read-only)")
