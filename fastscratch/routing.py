"""How each call of the drop-in runs: one decision, from the objects as they are at the call (``route``).

``route(network, call, rows, input_finite=..., nonzero_fraction=...)`` looks at
a drop-in network, or a layer called on its own, as the user left it, and
returns a ``Route``: the way the call runs (``Way``) and, for each layer, a
``LayerRoute`` saying how its products, activation, derivative and step run.
Everything downstream (``steps``, ``prediction``, ``train_call``) follows it
and tests no size of its own. The rules, for layer i:

- P: its W and b can be read and stepped in place by the kernels
  (``parameters.in_place``); F: they are finite, looked at only by the calls
  that may skip zero inputs, where a NaN weight could hide behind them
  (*scanned*: ``EPOCH``, ``EPOCH_ACCURACY``, ``PREDICT`` of several rows,
  ``ACCURACY`` unless of fewer than ``config.COMPILED_MIN_ROWS`` finite rows);
  A, D: its activation and derivative are built-ins (``dispatch``, which warns
  once about any other callable).
- forced: a non-finite input, for the calls that run forward passes; for the
  epoch's batch loop, a batch past the crossover (``past_crossover`` of a
  dense input: the batch loop's products are BLAS's).
- R, the reference's expressions: forced, or not P, or scanned and not F.
- ``products`` (forward): BLAS if R or past ``config.KERNEL_MAX_ENTRIES`` input
  entries (one row for the accuracies), else the kernel. ``gradient`` (the
  weight gradient of a backward pass: ``BACKWARD``, the epoch's batch loop):
  the kernel over the input's nonzero entries for the first layer, where its
  products are the kernel's and its input is sparse (at most
  ``config.KERNEL_SPARSE_INPUT`` nonzero) and of at most
  ``config.KERNEL_MAX_BACKWARD_ROWS`` rows; else BLAS (a hidden layer's input
  is an activation, dense, where BLAS is faster). ``activation``: the user's
  unless A; NumPy's with BLAS products; else the kernel's, fused into the
  product. ``derivative``: the user's unless D; NumPy's if R; else the
  kernel's. ``step``: the kernel on W and b in place if P, else the
  reference's ``W -= epsilon * dL_dW``.
- The way: ``LAYERS`` for ``FORWARD``, ``BACKWARD``, ``OPTIMIZE`` and
  ``PREDICT`` of one row. ``PREDICT`` of several rows and the accuracies run
  ``COMPILED_ROWS`` if scanned with no R and every A, else ``LAYERS`` or
  ``ROW_BY_ROW``. An epoch runs ``COMPILED_EPOCH`` for a finite input, built-in
  pairs everywhere, every P and F, no two parameters sharing memory
  (``_tied``) and not past the crossover at the input's density; else
  ``BATCH_LOOP``, its layers routed under the batch loop's forced.

The routes of the calls that are not scanned (the per-call API) are kept on
the network (``RouteCache``) while the objects they were decided from are the
same ones; a scanned call, at most once per epoch or per call over many rows,
decides afresh.
"""
import enum
import operator
from typing import NamedTuple

import numpy as np

from fastscratch import _validation, config
from fastscratch.dispatch import activation_code, derivative_code, loss_code
from fastscratch.kernels import activations
from fastscratch.parameters import in_place


class Call(enum.Enum):
    FORWARD = "forward"
    BACKWARD = "backward"
    OPTIMIZE = "optimize"
    PREDICT = "predict"
    ACCURACY = "evaluate_accuracy"
    EPOCH = "an epoch of train"
    EPOCH_ACCURACY = "train's evaluation after an epoch"  # its X_val's structure kept across epochs


class Way(enum.Enum):
    LAYERS = "layer after layer"  # each as its LayerRoute says
    ROW_BY_ROW = "row by row"  # the reference's per-sample loop of evaluate_accuracy, through LAYERS
    COMPILED_ROWS = "compiled rows"  # predict_classes over X's structure, in threads
    BATCH_LOOP = "batch loop"  # the reference's batch loop of train, each layer as its LayerRoute says
    COMPILED_EPOCH = "compiled epoch"  # kernels.training.train_epoch, one call per epoch


class Products(enum.Enum):
    # forward: blocked_forward over every entry, the rows in threads (the activation fused in when Function.KERNEL);
    # the weight gradient: weight_gradients over the input's nonzero entries
    KERNEL = "kernel"
    BLAS = "BLAS"  # np.dot, as the reference writes it


class Function(enum.Enum):
    KERNEL = "kernel"  # the built-in's kernel code: fused into the product, or times_derivative
    NUMPY = "NumPy"  # the built-in, called as the reference calls it: NumPy's bits
    USERS = "the user's"  # the user's callable, its result checked (callables.checked_result)


class Step(enum.Enum):
    KERNEL = "kernel"  # sgd_step on the user's W and b in place
    NUMPY = "NumPy"  # the reference's W -= epsilon * dL_dW on the user's objects


class LayerRoute(NamedTuple):
    """How one layer runs in this call, layer by layer (``steps``); the compiled ways run every layer's kernels
    with its ``activation_code`` instead, and read its W and b here."""
    layer: object
    W: np.ndarray  # the user's W and b, read and stepped in place by the kernels (P), else None
    b: np.ndarray
    products: Products  # of the forward pass
    gradient: Products  # of the weight gradient, in a backward pass; the input gradient is BLAS's
    activation: Function
    derivative: Function
    step: Step
    activation_code: int  # the built-in's code (the compiled ways and kernel products fuse it), else IDENTITY
    derivative_code: int  # the built-in derivative's code, or None (meaningful when derivative is KERNEL)


class Route(NamedTuple):
    """How a call runs: its way, each layer's route, and what the compiled ways take."""
    way: Way
    layers: tuple
    loss: Function  # KERNEL for a built-in pair, else USERS; None for a lone layer
    loss_code: int  # the pair's kernel code, or None
    dtype: np.dtype
    builtin_functions: bool  # every activation and derivative a built-in pair (and the loss, in a network)
    reason: str  # why this way, in words (tests, docs, progress lines)

    @property
    def lone(self):
        """Whether the route is a lone layer's (``layer.forward``), which has no loss."""
        return self.loss is None

    @property
    def weights(self):
        return tuple(layer.W for layer in self.layers)

    @property
    def biases(self):
        return tuple(layer.b for layer in self.layers)

    @property
    def activation_codes(self):
        return np.array([layer.activation_code for layer in self.layers], dtype=np.int64)


class RouteCache:
    """The routes of one network's per-call API, kept while the objects they were decided from are the same
    ones; on the network as ``_routes``. Copies and pickles start empty."""

    def __init__(self):
        # (the objects decided from, {(call, input finite, rows or 0 if no layer is past the size test): Route},
        # the widest layer's inputs), replaced in one assignment
        self.entry = None

    def __reduce__(self):
        return type(self), ()


_FORWARD_PASSES = (Call.FORWARD, Call.PREDICT, Call.ACCURACY, Call.EPOCH_ACCURACY)
_BACKWARD_PASSES = (Call.BACKWARD, Call.EPOCH)
_ONE_ROW_PRODUCTS = (Call.ACCURACY, Call.EPOCH_ACCURACY)


def route(network, call, rows=1, *, input_finite=True, nonzero_fraction=1.0):
    """The ``Route`` of ``call`` on ``network`` (a drop-in ``SimpleNetwork`` whose layers are checked, or a lone
    ``FullyConnectedLayer``) as it is now, for an input of ``rows`` rows (1 for a 1-D x; the stored batch's for
    ``BACKWARD``; the batch size for an epoch), finite or not (``input_finite``), with this fraction of nonzero
    entries (the first layer's stored input for ``BACKWARD``; the training data for an epoch)."""
    if _scanned(call, rows, input_finite):
        return _decide(network, call, rows, input_finite, nonzero_fraction, True)
    cache = network.__dict__.get("_routes")
    if cache is None:
        cache = network.__dict__.setdefault("_routes", RouteCache())  # a layer made by from_reference
    objects = _decided_from(network)
    product_rows = 1 if call is _ACCURACY else 0 if call is _OPTIMIZE else rows
    entry = cache.entry  # one read: another thread may store a new entry meanwhile
    if entry is not None and len(entry[0]) == len(objects) and all(map(operator.is_, entry[0], objects)):
        routes, widest = entry[1], entry[2]
        found = routes.get((call, input_finite, _sizes(call, product_rows, widest, nonzero_fraction)))
        if found is not None:
            return found
    else:
        routes, widest = {}, max(layer.num_inputs for layer in _layers_of(network))
    decided = _decide(network, call, rows, input_finite, nonzero_fraction, False)
    key = call, input_finite, _sizes(call, product_rows, widest, nonzero_fraction)
    cache.entry = (objects, {**routes, key: decided} if len(routes) < config.ROUTES_KEPT else {key: decided},
                   widest)
    return decided


_PREDICT, _ACCURACY, _BACKWARD, _OPTIMIZE = Call.PREDICT, Call.ACCURACY, Call.BACKWARD, Call.OPTIMIZE


def _sizes(call, rows, widest, nonzero_fraction):
    """The outcome of the size tests, as a kept route's key: the rows where some layer is past
    ``config.KERNEL_MAX_ENTRIES`` (else 0: every row count under the widest layer's limit shares one route),
    and whether a backward pass's weight gradient may run as the kernel (``_sparse_gradient``)."""
    return (rows if rows * widest > config.KERNEL_MAX_ENTRIES else 0,
            call is _BACKWARD and _sparse_gradient(call, rows, nonzero_fraction))


def _sparse_gradient(call, rows, nonzero_fraction):
    """Whether the first layer's weight gradient in this backward pass may run over its input's nonzero entries
    (``dense_backward.weight_gradients``): where they are few, in batches that its scratch holds."""
    return (call in _BACKWARD_PASSES and rows <= config.KERNEL_MAX_BACKWARD_ROWS
            and nonzero_fraction <= config.KERNEL_SPARSE_INPUT)


def _scanned(call, rows, input_finite):
    """Whether the call may skip zero inputs, so that its route looks at W's and b's values."""
    if call is _PREDICT:
        return rows > 1
    if call is _ACCURACY:
        return not input_finite or rows >= config.COMPILED_MIN_ROWS  # indexing a few rows costs more than it saves
    return call is Call.EPOCH or call is Call.EPOCH_ACCURACY


def _layers_of(network):
    layers = getattr(network, "layers", None)
    return (network,) if layers is None else tuple(layers)


def _decided_from(network):
    """The objects a kept route is decided from, compared by identity (for a lone layer: its own)."""
    layers = getattr(network, "layers", None)
    if layers is None:
        return [network, network.W, network.b, network.activation_function, network.derivated_activation_function]
    objects = [network.loss_function, network.derivated_loss_function]
    for layer in layers:
        objects += (layer, layer.W, layer.b, layer.activation_function, layer.derivated_activation_function)
    return objects


class _Layer(NamedTuple):
    """What ``_decide`` finds of one layer."""
    layer: object
    W: np.ndarray  # in place, or None
    b: np.ndarray
    finite: bool  # W and b finite; True where not looked at
    activation_code: int  # or None: not a built-in
    derivative_code: int

    @property
    def in_place(self):
        return self.W is not None and self.b is not None


def _decide(network, call, rows, input_finite, nonzero_fraction, scanned):
    lone = getattr(network, "layers", None) is None
    dtype, where = network.dtype, "layer" if lone else "network"
    found = []
    for layer in _layers_of(network):
        W, b = in_place(layer.W, dtype), in_place(layer.b, dtype)
        finite = not (scanned and W is not None and b is not None) or (_validation.all_finite(W)
                                                                       and _validation.all_finite(b))
        found.append(_Layer(layer, W, b, finite, activation_code(layer.activation_function, where),
                            derivative_code(layer.derivated_activation_function, where)))
    code = None if lone else loss_code(network)
    builtin = (lone or code is not None) and all(
        layer.activation_code is not None and layer.activation_code == layer.derivative_code for layer in found)
    if call is Call.EPOCH:
        reason = _why_not_compiled(network, found, rows, input_finite, nonzero_fraction, builtin)
        way = Way.COMPILED_EPOCH if reason is None else Way.BATCH_LOOP
        forced = way is Way.BATCH_LOOP and past_crossover(network, rows)
    else:
        forced = not input_finite and call in _FORWARD_PASSES
    product_rows = 1 if call in _ONE_ROW_PRODUCTS else rows
    sparse = _sparse_gradient(call, rows, nonzero_fraction)
    layers, reference = [], []
    for i, layer in enumerate(found):
        expressions = forced or not layer.in_place or not layer.finite
        layers.append(_layer_route(layer, expressions, product_rows, sparse and i == 0))
        reference.append(expressions)
    if call is Call.EPOCH:
        reason = reason or "every layer compiled"
    elif call in _FORWARD_PASSES[1:] and (call is not Call.PREDICT or rows > 1):
        compiled = scanned and not any(reference) and all(layer.activation_code is not None for layer in found)
        way = Way.COMPILED_ROWS if compiled else Way.LAYERS if call is Call.PREDICT else Way.ROW_BY_ROW
        reason = "compiled over the rows" if compiled else _why_not_rows(found, forced, scanned)
    else:
        way, reason = Way.LAYERS, "one call per layer"
    return Route(way, tuple(layers), None if lone else Function.KERNEL if code is not None else Function.USERS,
                 code, dtype, builtin, reason)


def _layer_route(layer, expressions, product_rows, sparse_gradient):
    blas = expressions or product_rows * layer.layer.num_inputs > config.KERNEL_MAX_ENTRIES
    gradient = Products.KERNEL if sparse_gradient and not blas else Products.BLAS
    activation = (Function.USERS if layer.activation_code is None else Function.NUMPY if blas else Function.KERNEL)
    derivative = (Function.USERS if layer.derivative_code is None else Function.NUMPY if expressions
                  else Function.KERNEL)
    return LayerRoute(layer.layer, layer.W, layer.b, Products.BLAS if blas else Products.KERNEL, gradient, activation,
                      derivative, Step.KERNEL if layer.in_place else Step.NUMPY,
                      activations.IDENTITY if layer.activation_code is None else layer.activation_code,
                      layer.derivative_code)


def _why_not_compiled(network, found, batch_size, input_finite, nonzero_fraction, builtin):
    """Why an epoch cannot run as one compiled call, or None if it can."""
    if not input_finite:
        return "the training data was made non-finite"
    if not builtin:
        return "a function other than a built-in pair"
    if past_crossover(network, batch_size, nonzero_fraction):
        return "past the crossover"
    if not all(layer.in_place for layer in found):
        return "parameters the kernels cannot step in place"
    if not all(layer.finite for layer in found):
        return "non-finite parameters"
    if _tied(found):
        return "parameters that share memory"
    return None


def _why_not_rows(found, forced, scanned):
    if forced:
        return "a non-finite input"
    if not scanned:
        return "too few rows to index"
    if not all(layer.activation_code is not None for layer in found):
        return "an activation other than a built-in"
    if not all(layer.in_place for layer in found):
        return "parameters the kernels cannot read in place"
    return "non-finite parameters"


def _tied(found):
    """Whether two parameters share memory (``l1.W = l2.W``): the compiled epoch steps each layer right
    after its backward pass, which is the reference's order only for independent parameters."""
    arrays = [a for layer in found for a in (layer.W, layer.b)]
    return any(np.may_share_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])


def past_crossover(network, batch_size, nonzero_fraction=1.0):
    """Whether training with this batch size runs NumPy's products rather than kernels, for an input with
    this fraction of nonzero entries (``nonzero_fraction``; unknown, it counts as dense): the crossover
    measured by benchmarks/crossover.py (``config.KERNEL_*``)."""
    hidden = max((layer.num_inputs * layer.size for layer in network.layers[1:]), default=0)
    return hidden > config.KERNEL_MAX_HIDDEN_WEIGHTS or batch_size > config.KERNEL_MAX_BATCH and (
        hidden > config.KERNEL_SMALL_HIDDEN_WEIGHTS or nonzero_fraction > config.KERNEL_SPARSE_INPUT)
