"""How a layer and a network run in this call: kernels or the reference's NumPy expressions, per piece.

A plan is decided from the objects as the user left them (every epoch of
``train``, so after the callback; and for the per-call API, again whenever
one of the objects it read is replaced: ``call_plan``). It says

- which functions run as kernels (``dispatch``) and which of W and b the
  kernels read and update in place (``parameters``); a layer whose W or b
  they cannot runs the reference's expressions on the user's objects;
- whether a layer's products run as kernels or as the reference's NumPy
  expressions: by size (``config.KERNEL_MAX_ENTRIES``; in ``train``, past the
  measured crossover, ``past_crossover``), and for non-finite parameters or
  inputs, whose NaN the compiled passes' skipping of zero inputs would hide;
- whether an epoch of ``train`` can run as one compiled call
  (``compiled_epoch``).
"""
import operator
from typing import NamedTuple

import numpy as np

from fastscratch import _validation as check
from fastscratch import config
from fastscratch.callables import checked_result
from fastscratch.dispatch import activation_code, derivative_code, loss_code
from fastscratch.kernels import activations
from fastscratch.kernels.activations import times_derivative
from fastscratch.kernels.dense_forward import dense_forward
from fastscratch.kernels.sgd import sgd_step
from fastscratch.kernels.structure import full_structure, index_dtype
from fastscratch.parameters import in_place, kernel_array

class LayerPlan(NamedTuple):
    """How one layer runs in this call."""
    layer: object
    W: np.ndarray  # the user's W and b, which kernels read and update in place (``parameters.in_place``), or
    b: np.ndarray  # None: then the layer runs the reference's expressions on the user's objects (``numpy``)
    activation: object  # kernel code, or None: ``layer.activation_function`` through NumPy
    derivative: object  # likewise for ``layer.derivated_activation_function``
    numpy: bool  # products as the reference's NumPy expressions instead of kernels

    @property
    def fused(self):
        return self.activation is not None and self.activation == self.derivative


def layer_plan(layer, dtype, numpy=False, where="network", scan=True):
    """The ``LayerPlan`` of ``layer`` as it is now (shapes already checked by the layer). ``scan`` looks at W
    and b: non-finite ones run the reference's expressions, as the compiled passes that skip zero inputs
    (``compiled_forward``, ``compiled_epoch``) would hide 0 * NaN; without it (``call_plan``), the caller
    runs nothing that skips zeros."""
    W, b = in_place(layer.W, dtype), in_place(layer.b, dtype)
    numpy = numpy or W is None or b is None or scan and not (check.all_finite(W) and check.all_finite(b))
    return LayerPlan(layer, W, b, activation_code(layer.activation_function, where),
                     derivative_code(layer.derivated_activation_function, where), numpy)


def _dense(rows, full):
    """The structure of ``rows`` listing every entry (``full``: a dict of ``full_structure`` by shape, kept by
    the caller)."""
    structure = full.get(rows.shape)
    if structure is None:
        if len(full) >= config.DENSE_STRUCTURES_KEPT:  # calls of ever new sizes: keep the recent ones only
            full.clear()
        structure = full[rows.shape] = full_structure(rows.shape[0], rows.shape[1], index_dtype(rows.shape[1]))
    return (*structure, rows.reshape(-1))


def forward(plan, x, dtype, full=None):
    """``y = f(x @ W + b)`` for x (n, n_in) or (n_in,), kept on the layer with x as the reference keeps them:
    a kernel up to ``config.KERNEL_MAX_ENTRIES`` input entries, else the reference's expression. ``full``: structures
    kept between calls (see ``_dense``)."""
    layer = plan.layer
    if plan.numpy or x.size > config.KERNEL_MAX_ENTRIES:
        y = layer.activation_function(np.dot(x, layer.W) + layer.b)
        if plan.activation is None:
            y = checked_result(layer.activation_function, "activation_function", y, x.shape[:-1] + (layer.size,),
                               dtype)
    else:
        rows = x[np.newaxis] if x.ndim == 1 else x
        y = np.empty((rows.shape[0], layer.size), dtype=dtype)
        code = activations.IDENTITY if plan.activation is None else plan.activation
        dense_forward(*_dense(rows, {} if full is None else full), 0, plan.W, plan.b, code, y)
        if x.ndim == 1:
            y = y[0]
        if plan.activation is None:
            y = checked_result(layer.activation_function, "activation_function", layer.activation_function(y),
                               y.shape, dtype)
    layer.y, layer.x = y, x
    return y


def backward(plan, dL_dy, dtype, input_gradient_needed=True):
    """Set the layer's dL_dW and dL_db from dL_dy (shaped like y) and return dL_dx (None if not needed).

    dL_dz comes from a kernel for a built-in derivative (one pass instead of NumPy's temporaries); the
    products are the reference's BLAS expressions, which the kernels did not beat at any size measured.
    """
    layer = plan.layer
    x, y = kernel_array("x", layer.x, dtype), kernel_array("y", layer.y, dtype)
    derivative = layer.derivated_activation_function
    if plan.derivative is None:
        dL_dz = dL_dy * checked_result(derivative, "derivated_activation_function", derivative(y), y.shape, dtype,
                                       broadcast=True)
    elif plan.numpy:
        dL_dz = dL_dy * derivative(y)  # the reference's expression
    else:
        dL_dz = np.empty(y.shape, dtype=dtype)
        times_derivative(dL_dy, y, plan.derivative, dL_dz)
    parameter_gradients(layer, x, dL_dz)
    return np.dot(dL_dz, np.asarray(layer.W).T) if input_gradient_needed else None


def optimize(plan, epsilon, dtype, owner="layer"):
    """One SGD step with the layer's stored gradients: the reference's ``W -= epsilon * dL_dW``, then ``b``'s.

    Where W and b can be stepped in place now (``parameters.in_place``: a kept plan's arrays may have been
    made read-only since), one kernel pass gives NumPy's bits. Otherwise the reference's own expressions
    step the user's objects, in its order: a view steps the memory it shares with another layer's
    parameters after that layer's step, and a ``W`` (``b``) that cannot store the update fails where the
    reference's ``-=`` fails (``W`` before any update of this layer, ``b`` after ``W``'s), with a message
    naming it; nothing is truncated into an int or bool array.
    """
    layer = plan.layer
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
    cannot store a ``dtype`` update (int, bool), where NumPy refuses the cast, or a read-only one. The reference
    raises NumPy's own errors; the drop-in, whose kernels would write anyway, must check first."""
    if isinstance(value, np.ndarray) and not np.can_cast(dtype, value.dtype, "same_kind"):
        raise TypeError(f"{owner}.{name} has dtype {value.dtype}, which cannot hold the {np.dtype(dtype)} update "
                        f"{name} -= epsilon * dL_d{name} (NumPy refuses the cast, as in the tutorial): give the "
                        f"layer float weights, e.g. {name}.astype(np.float64)")
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        raise ValueError(f"{owner}.{name} is read-only: the update {name} -= epsilon * dL_d{name} cannot be "
                         f"stored (output array is read-only)")


def parameter_gradients(layer, x, dL_dz):
    """Set dL_dW and dL_db with the reference's own expressions (NumPy's BLAS): the same bits."""
    layer.dL_dW = np.dot(x.T, dL_dz)
    layer.dL_db = np.dot(np.ones(len(dL_dz), dtype=dL_dz.dtype), dL_dz)


class NetworkPlan(NamedTuple):
    """How the network runs in this call: its layers' plans, and the loss's kernel code (or None)."""
    layers: tuple
    loss: object
    dtype: np.dtype
    full: dict = None  # dense input structures kept between calls (``_dense``), or None

    def forward(self, x):
        for layer in self.layers:
            x = forward(layer, x, self.dtype, self.full)
        return x

    def backward(self, dL_dy, input_gradient_needed=True):
        """dL_dx of the network; ``input_gradient_needed`` false skips the first layer's (train discards it)."""
        for i in range(len(self.layers) - 1, -1, -1):
            dL_dy = backward(self.layers[i], dL_dy, self.dtype, input_gradient_needed or i > 0)
        return dL_dy

    def optimize(self, epsilon):
        for i, layer in enumerate(self.layers):
            optimize(layer, epsilon, self.dtype, f"layers[{i}]")

    @property
    def compiled_forward(self):
        """Whether whole forward passes can run compiled (``prediction.predict``)."""
        return all(layer.activation is not None and not layer.numpy for layer in self.layers)

    @property
    def fused(self):
        """Whether every function is a built-in pair, as a compiled epoch needs."""
        return self.loss is not None and all(layer.fused for layer in self.layers)

    def arguments(self):
        """Weights, biases and activation codes as the compiled kernels take them."""
        return (tuple(layer.W for layer in self.layers), tuple(layer.b for layer in self.layers),
                np.array([layer.activation for layer in self.layers], dtype=np.int64))


def network_plan(network, numpy=False, scan=True):
    """The ``NetworkPlan`` of ``network`` as it is now (its layers already checked by ``check_layers``)."""
    return NetworkPlan(tuple(layer_plan(layer, network.dtype, numpy, scan=scan) for layer in network.layers),
                       loss_code(network), network.dtype)


class PlanCache:
    """The last per-call plan of one network (``call_plan``) and the dense input structures of its calls,
    kept on the network; copies and pickles start empty."""

    def __init__(self):
        self.entry, self.full = None, {}  # entry: (the objects decided from, the plan), set in one store

    def __reduce__(self):
        return type(self), ()


def _decided_from(network):
    """The objects a per-call plan is decided from, compared by identity (for a lone layer: its own)."""
    layers = getattr(network, "layers", None)
    if layers is None:
        return [network, network.W, network.b, network.activation_function, network.derivated_activation_function]
    objects = [network.loss_function, network.derivated_loss_function]
    for layer in layers:
        objects += (layer, layer.W, layer.b, layer.activation_function, layer.derivated_activation_function)
    return objects


def _lone_layer_plan(layer):
    """A one-layer ``NetworkPlan`` of a layer called on its own (no loss: it has none)."""
    return NetworkPlan((layer_plan(layer, layer.dtype, where="layer", scan=False),), None, layer.dtype)


def call_plan(network, cache):
    """The ``NetworkPlan`` of ``network`` (or of a lone layer) for ``forward``, ``backward``, ``optimize`` and
    ``predict`` of one row: decided once and reused while the objects it read are the same ones (the layers,
    their own W and b, their functions, the loss pair). W's finiteness is not part of it: nothing it runs
    skips zero inputs; whether W is still writable is ``optimize``'s to see. It holds no copy of any array,
    so it is kept whatever forms W and b have."""
    objects = _decided_from(network)
    entry = cache.entry  # one read: another thread may store a new entry meanwhile
    if entry is not None and len(entry[0]) == len(objects) and all(map(operator.is_, entry[0], objects)):
        return entry[1]
    plan = _lone_layer_plan(network) if getattr(network, "layers", None) is None else network_plan(network, scan=False)
    plan = plan._replace(full=cache.full)
    cache.entry = objects, plan
    return plan


def sizes_of(network):
    """The layer widths, input first."""
    return (network.num_inputs, *(layer.size for layer in network.layers))


def past_crossover(network, batch_size, nonzero_fraction=1.0):
    """Whether training with this batch size runs NumPy's products rather than kernels, for an input with
    this fraction of nonzero entries (``nonzero_fraction``; unknown, it counts as dense)."""
    hidden = max((layer.num_inputs * layer.size for layer in network.layers[1:]), default=0)
    return hidden > config.KERNEL_MAX_HIDDEN_WEIGHTS or batch_size > config.KERNEL_MAX_BATCH and (
        hidden > config.KERNEL_SMALL_HIDDEN_WEIGHTS or nonzero_fraction > config.KERNEL_SPARSE_INPUT)


def nonzero_fraction(X):
    """The fraction of X's entries that are nonzero, in about ``config.DENSITY_SAMPLE_ROWS`` of its rows taken
    evenly, for ``past_crossover``."""
    sample = X[::max(1, len(X) // config.DENSITY_SAMPLE_ROWS)]
    return np.count_nonzero(sample) / max(sample.size, 1)


def _tied(plan):
    """Whether two parameters share memory (``l1.W = l2.W``): the compiled epoch steps each layer right
    after its backward pass, which is the reference's order only for independent parameters."""
    arrays = [a for layer in plan.layers for a in (layer.W, layer.b)]
    return any(np.may_share_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])


def compiled_epoch(plan, network, batch_size, nonzero_fraction=1.0):
    """Whether an epoch can run as one compiled call: built-in functions, finite parameters the kernels
    update in place, independent of each other, and sizes below the crossover (``past_crossover``)."""
    return (plan.fused and not past_crossover(network, batch_size, nonzero_fraction)
            and all(not layer.numpy for layer in plan.layers) and not _tied(plan))
