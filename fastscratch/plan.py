"""How each call of the drop-in runs, decided from the network as it is at that call.

Nothing about how to run is kept on the layers or the network. Every public
method, and every epoch of ``train`` (so after the callback), reads the
objects as the user left them and decides:

- which functions are built-ins, run as kernels by their code
  (``functions.BUILTINS``), and which are user callables, run through NumPy
  with their results checked (shape and dtype) before a kernel reads them;
- which arrays the kernels read and update: each layer's own ``W`` and ``b``
  when they are C-contiguous, writable arrays of the network's dtype, else a
  converted copy whose updates are written back into the user's object
  after each step;
- whether a layer's products run as kernels or as the reference's NumPy
  expressions: NumPy past the measured crossover (``past_crossover``), and
  for non-finite parameters, whose NaN
  the kernels' skipping of zero inputs would hide;
- whether an epoch of ``train`` runs as one compiled call (``train_epoch``),
  or batch by batch in the reference's loop.

``Training`` holds what one ``train`` call keeps across its epochs: the
indexed training and validation sets and the buffers, as named tuples.
"""
import threading
import warnings
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numba import config

from fastscratch import _validation as check
from fastscratch.functions import builtin
from fastscratch.reference import Steps
from fastscratch.kernels import activations
from fastscratch.kernels.activations import times_derivative
from fastscratch.kernels.dense_backward import input_gradient, weight_gradient
from fastscratch.kernels.dense_forward import dense_forward
from fastscratch.kernels.evaluation import ForwardWork, predict_classes
from fastscratch.kernels.sgd import sgd_step
from fastscratch.kernels.structure import (MIN_ROWS_PER_THREAD, Structure, batch_structure, full_columns,
                                          full_structure, in_parts, index_dtype, nonzero_structure,
                                          structure_matches)
from fastscratch.kernels.training import EpochWork, train_epoch

#: Rows per compiled forward pass in ``evaluate_accuracy`` and batched ``predict``.
EVAL_CHUNK = 256

#: Where the compiled epoch stops paying off (measured: benchmarks/crossover.py), so that ``train``
#: runs the reference's NumPy products instead, with identical results: a hidden layer of more than
#: KERNEL_MAX_HIDDEN_WEIGHTS weights, whose dense products BLAS's blocked GEMM does faster at any batch
#: size; or batches of more than KERNEL_MAX_BATCH rows, unless the hidden layers are small (at most
#: KERNEL_SMALL_HIDDEN_WEIGHTS weights each) and the input sparse (at most KERNEL_SPARSE_INPUT of its
#: entries nonzero): then the first layer's skipped zeros keep the kernels ahead at every batch size
#: measured (up to 1024 rows). The kernels' time grows with the nonzeros, BLAS's does not: at batch 256
#: the kernels still led at 40% nonzero and lost or tied at 50% (Fashion-MNIST is 50%).
KERNEL_MAX_BATCH = 127
KERNEL_SMALL_HIDDEN_WEIGHTS = 128 * 64
KERNEL_SPARSE_INPUT = 0.4
KERNEL_MAX_HIDDEN_WEIGHTS = 256 * 256


class FallbackWarning(UserWarning):
    """A custom callable makes that piece run through NumPy instead of a kernel."""


# The callables already warned about. Weak references, so that a callable that dies is forgotten
# rather than mistaken for a new one that Python gives the same id().
_warned = weakref.WeakSet()
_warned_strongly = set()  # hashable callables that take no weak reference (some built-in types)


def _warn_once(function, role):
    if not callable(function):
        return  # calling it fails, as in the reference
    try:
        if function in _warned:
            return
        _warned.add(function)
    except TypeError:
        try:
            if function in _warned_strongly:
                return
            _warned_strongly.add(function)
        except TypeError:
            pass  # neither weakly referable nor hashable: warned at each call
    warnings.warn(f"{role} {_name(function)!r} is not one of fastscratch's built-ins; it runs through NumPy "
                  f"(slower), and training uses the per-batch Python loop", FallbackWarning, stacklevel=5)


def _name(function):
    return getattr(function, "__qualname__", repr(function))


def activation_code(function):
    """The kernel code of a built-in activation, or None (after a one-time warning) for any other callable."""
    entry = builtin(function, "activation")
    if entry is None:
        _warn_once(function, "activation_function")
    return None if entry is None else entry.code


def derivative_code(function):
    """The kernel code of a built-in activation's derivative, or None (warned once) for any other callable."""
    if function is None:  # a layer built without one: backward() says so
        return None
    entry = builtin(function, "activation", "derivative")
    if entry is None:
        _warn_once(function, "derivated_activation_function")
    return None if entry is None else entry.code


def loss_code(network):
    """The kernel code of the network's loss when it and its derivative are one built-in pair, else None."""
    entry = builtin(network.loss_function, "loss")
    derivative = builtin(network.derivated_loss_function, "loss", "derivative")
    if entry is None:
        _warn_once(network.loss_function, "loss_function")
    if derivative is None:
        _warn_once(network.derivated_loss_function, "derivated_loss_function")
    return entry.code if entry is not None and entry == derivative else None


# -- what a user callable returns ------------------------------------------------------------

def returned(function, role, value, shape, dtype, broadcast=False):
    """``value``, returned by the user's ``function``, as a C-contiguous ``dtype`` array of ``shape``.

    Booleans and integers count as numbers, as in NumPy. ``broadcast``: a
    derivative may return anything that broadcasts to ``shape`` (the
    reference multiplies it in), such as a scalar.
    """
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{role} {_name(function)!r} returned {type(value).__name__}, not an array: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{role} {_name(function)!r} must return real numbers, returned dtype {arr.dtype}")
    try:
        fits = arr.shape == shape or broadcast and np.broadcast_shapes(arr.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{role} {_name(function)!r} returned shape {arr.shape}; expected {shape}"
                         + (" (or a shape that broadcasts to it)" if broadcast else ""))
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(np.broadcast_to(arr, shape), dtype=dtype)


def _checked_loss(function):
    def loss(predictions, targets):
        value = function(predictions, targets)
        if np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "biuf":
            raise ValueError(f"loss_function {_name(function)!r} must return a real scalar, returned "
                             f"{type(value).__name__} of shape {np.shape(value)}")
        return value
    return loss


def _checked_loss_derivative(function, dtype):
    def derivative(predictions, targets):
        return returned(function, "derivated_loss_function", function(predictions, targets), predictions.shape,
                        dtype, broadcast=True)
    return derivative


# -- parameters --------------------------------------------------------------------------------

def _as_array(name, value, dtype):
    """A public array attribute as the kernels need it: C-contiguous, ``dtype`` (shapes checked by the caller)."""
    arr = check._as_real_array(name, value)
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(arr, dtype=dtype)


def _parameter(layer, name, dtype, copies):
    """``layer.W`` or ``layer.b`` itself if the kernels can update it in place, else one converted copy.

    ``copies`` maps the id of a source object to its copy, so that parameters
    tied by assignment (``l1.W = l2.W``) share one copy within a plan.
    """
    value = getattr(layer, name)
    if id(value) in copies:
        return copies[id(value)]
    arr = _as_array(name, value, dtype)
    if arr is value and not arr.flags.writeable:  # the update fails, as in the reference, at write-back
        arr = arr.copy()
    copies[id(value)] = arr
    return arr


def _write_back(layer, name, arr):
    """After a step on a converted copy, put it into the user's object, as the reference's ``-=`` would."""
    value = getattr(layer, name)
    if value is arr:
        return
    if isinstance(value, np.ndarray):
        value[...] = arr
        arr[...] = value  # what the user's dtype kept is what the next step starts from
    else:  # a list: the reference's ``W -= ...`` makes it an array too
        setattr(layer, name, arr)


class LayerPlan(NamedTuple):
    """How one layer runs in this call."""
    layer: object
    W: np.ndarray  # the arrays kernels read and update (see ``_parameter``)
    b: np.ndarray
    activation: object  # kernel code, or None: ``layer.activation_function`` through NumPy
    derivative: object  # likewise for ``layer.derivated_activation_function``
    numpy: bool  # products as the reference's NumPy expressions instead of kernels

    @property
    def fused(self):
        return self.activation is not None and self.activation == self.derivative


def layer_plan(layer, dtype, copies=None, numpy=False):
    """The ``LayerPlan`` of ``layer`` as it is now (shapes already checked by ``_check_parameters``)."""
    copies = {} if copies is None else copies
    W, b = _parameter(layer, "W", dtype, copies), _parameter(layer, "b", dtype, copies)
    finite = check._all_finite(W) and check._all_finite(b)
    return LayerPlan(layer, W, b, activation_code(layer.activation_function),
                     derivative_code(layer.derivated_activation_function), numpy or not finite)


# -- one layer ---------------------------------------------------------------------------------

def forward(plan, x, dtype):
    """``y = f(x @ W + b)`` for x (n, n_in) or (n_in,), kept on the layer with x as the reference keeps them."""
    layer = plan.layer
    if plan.numpy:
        y = layer.activation_function(np.dot(x, plan.W) + plan.b)
        if plan.activation is None:
            y = returned(layer.activation_function, "activation_function", y, x.shape[:-1] + (layer.size,), dtype)
    else:
        rows = x[np.newaxis] if x.ndim == 1 else x
        y = np.empty((rows.shape[0], layer.size), dtype=dtype)
        code = activations.IDENTITY if plan.activation is None else plan.activation
        dense_forward(*nonzero_structure(rows), 0, plan.W, plan.b, code, y)
        if x.ndim == 1:
            y = y[0]
        if plan.activation is None:
            y = returned(layer.activation_function, "activation_function", layer.activation_function(y), y.shape,
                         dtype)
    layer.y, layer.x = y, x
    return y


def backward(plan, dL_dy, dtype, input_gradient_needed=True):
    """Set the layer's dL_dW and dL_db from dL_dy (shaped like y) and return dL_dx (None if not needed)."""
    layer = plan.layer
    x, y = _as_array("x", layer.x, dtype), _as_array("y", layer.y, dtype)
    derivative = layer.derivated_activation_function
    if plan.derivative is None:
        dL_dz = dL_dy * returned(derivative, "derivated_activation_function", derivative(y), y.shape, dtype,
                                 broadcast=True)
    elif plan.numpy:
        dL_dz = dL_dy * derivative(y)  # the reference's expression
    else:
        dL_dz = np.empty(y.shape, dtype=dtype)
        times_derivative(dL_dy, y, plan.derivative, dL_dz)
    if plan.numpy:
        parameter_gradients(layer, x, dL_dz)
        return np.dot(dL_dz, plan.W.T) if input_gradient_needed else None
    layer.dL_dW, layer.dL_db = np.empty_like(plan.W), np.empty_like(plan.b)
    weight_gradient(x, dL_dz, layer.dL_dW, layer.dL_db)
    if not input_gradient_needed:
        return None
    dL_dx = np.empty(x.shape, dtype=dtype)
    input_gradient(dL_dz, plan.W, np.empty((layer.size, layer.num_inputs), dtype=dtype), dL_dx)
    return dL_dx


def optimize(plan, epsilon, dtype):
    """One SGD step with the layer's stored gradients: the reference's ``W -= epsilon * dL_dW`` in one pass."""
    layer = plan.layer
    sgd_step(plan.W, plan.b, _as_array("dL_dW", layer.dL_dW, dtype), _as_array("dL_db", layer.dL_db, dtype),
             dtype.type(epsilon))
    _write_back(layer, "W", plan.W)
    _write_back(layer, "b", plan.b)


def parameter_gradients(layer, x, dL_dz):
    """Set dL_dW and dL_db with the reference's own expressions (NumPy's BLAS): the same bits."""
    layer.dL_dW = np.dot(x.T, dL_dz)
    layer.dL_db = np.dot(np.ones(len(dL_dz), dtype=dL_dz.dtype), dL_dz)


# -- the network -------------------------------------------------------------------------------

class NetworkPlan(NamedTuple):
    """How the network runs in this call: its layers' plans, and the loss's kernel code (or None)."""
    layers: tuple
    loss: object
    dtype: np.dtype

    def forward(self, x):
        for layer in self.layers:
            x = forward(layer, x, self.dtype)
        return x

    def backward(self, dL_dy, input_gradient_needed=True):
        """dL_dx of the network; ``input_gradient_needed`` false skips the first layer's (train discards it)."""
        for i in range(len(self.layers) - 1, -1, -1):
            dL_dy = backward(self.layers[i], dL_dy, self.dtype, input_gradient_needed or i > 0)
        return dL_dy

    def optimize(self, epsilon):
        for layer in self.layers:
            optimize(layer, epsilon, self.dtype)

    @property
    def compiled_forward(self):
        """Whether whole forward passes can run compiled (``predict_classes``)."""
        return all(layer.activation is not None and not layer.numpy for layer in self.layers)

    def arguments(self):
        """Weights, biases and activation codes as the compiled kernels take them."""
        return (tuple(layer.W for layer in self.layers), tuple(layer.b for layer in self.layers),
                np.array([layer.activation for layer in self.layers], dtype=np.int64))


def past_crossover(network, batch_size, nonzero_fraction=1.0):
    """Whether training with this batch size runs NumPy's products rather than kernels, for an input with
    this fraction of nonzero entries (``nonzero_fraction``; unknown, it counts as dense)."""
    hidden = max((layer.num_inputs * layer.size for layer in network.layers[1:]), default=0)
    return hidden > KERNEL_MAX_HIDDEN_WEIGHTS or batch_size > KERNEL_MAX_BATCH and (
        hidden > KERNEL_SMALL_HIDDEN_WEIGHTS or nonzero_fraction > KERNEL_SPARSE_INPUT)


def nonzero_fraction(X, rows=1024):
    """The fraction of X's entries that are nonzero, in about ``rows`` of its rows taken evenly (0.3 ms for
    MNIST), for ``past_crossover``."""
    sample = X[::max(1, len(X) // rows)]
    return np.count_nonzero(sample) / max(sample.size, 1)


def network_plan(network, numpy=False):
    """The ``NetworkPlan`` of ``network`` as it is now (its layers already checked by ``_check_layers``)."""
    copies = {}
    return NetworkPlan(tuple(layer_plan(layer, network.dtype, copies, numpy) for layer in network.layers),
                       loss_code(network), network.dtype)


def batch_steps(network, batch_size):
    """The five steps of the reference's batch loop, for one epoch, as this network runs them now."""
    plan = network_plan(network, numpy=past_crossover(network, batch_size))
    return Steps(plan.forward, _checked_loss(network.loss_function),
                 _checked_loss_derivative(network.derivated_loss_function, network.dtype),
                 lambda dL_dy: plan.backward(dL_dy, input_gradient_needed=False), plan.optimize)


def _tied(plan):
    """Whether two parameters share memory (``l1.W = l2.W``): the compiled epoch steps each layer right
    after its backward pass, which is the reference's order only for independent parameters."""
    arrays = [a for layer in plan.layers for a in (layer.W, layer.b)]
    return any(np.may_share_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1:])


def compiled_epoch(plan, network, batch_size, nonzero_fraction=1.0):
    """Whether an epoch can run as one compiled call: built-in functions, the layers' own finite arrays,
    independent parameters, and sizes below the crossover (``past_crossover``)."""
    return (plan.loss is not None and not past_crossover(network, batch_size, nonzero_fraction)
            and all(layer.fused and not layer.numpy and layer.W is layer.layer.W and layer.b is layer.layer.b
                    for layer in plan.layers)
            and not _tied(plan))


# -- the indexed data sets ------------------------------------------------------------------------

class Indexed(NamedTuple):
    """X's CSR structure, and the column structures of its batches for the last batch size trained, as
    ``{(batch_size, offsets dtype): Columns}``."""
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    batches: dict


#: The last few data sets indexed, by shape, dtype and index dtype. Indexing MNIST costs about half an
#: epoch, which a loop of ``train(num_epochs=1)`` calls would pay every epoch. An entry is used only
#: after a full comparison of X with it (``structure_matches``: one read of X, which also proves X
#: finite), so an array changed in place, or another array of the same shape, is indexed anew.
#: It holds about 10 bytes per nonzero entry (for MNIST's training set 90 MB, and 30 MB of batches).
_INDEXED = OrderedDict()
INDEXED_ENTRIES = 2
_INDEXED_LOCK = threading.Lock()


def _key(X, indices_dtype):
    return X.shape, X.dtype.str, np.dtype(indices_dtype).str


def _kept(X, indices_dtype):
    """The kept ``Indexed`` structure of an array of X's shape and dtype, not yet compared with X, or None."""
    with _INDEXED_LOCK:
        return _INDEXED.get(_key(X, indices_dtype))


def _describes(entry, X, threads=None):
    return structure_matches(X, entry.indptr, entry.indices, entry.values, threads)


#: Rows of X compared with a kept structure at once, at the start, the middle and the end, before the
#: structure is trusted to run ahead (``Training``): a data set of the same shape with other contents
#: (shuffled, or new) is then indexed at once rather than found out after an epoch run in vain.
SAMPLE_ROWS = 16


def _candidate(X, indices_dtype):
    """The kept ``Indexed`` structure of an array of X's shape and dtype if X's sampled rows match it, else None."""
    entry = _kept(X, indices_dtype)
    if entry is None:
        return None
    n = len(X)
    for start in sorted({0, max(0, n // 2 - SAMPLE_ROWS // 2), max(0, n - SAMPLE_ROWS)}):
        stop = min(n, start + SAMPLE_ROWS)
        if not structure_matches(X[start:stop], entry.indptr[start:stop + 1] - entry.indptr[start],
                                 entry.indices[entry.indptr[start]:entry.indptr[stop]],
                                 entry.values[entry.indptr[start]:entry.indptr[stop]], threads=1):
            return None
    return entry


def indexed(X, indices_dtype, known=None):
    """The ``Indexed`` structure of the finite 2-D array X: ``known`` (a kept one already compared with X in
    this call), or a kept one that still describes X, or a new one, which is kept."""
    if known is None or known.indices.dtype != indices_dtype:
        known = _kept(X, indices_dtype)
        if known is not None and not _describes(known, X):
            known = None
    entry = known or Indexed(*nonzero_structure(X, indices_dtype), {})
    key = _key(X, indices_dtype)
    with _INDEXED_LOCK:
        _INDEXED[key] = entry
        _INDEXED.move_to_end(key)
        while len(_INDEXED) > INDEXED_ENTRIES:
            _INDEXED.popitem(last=False)
    return entry


def indexed_batches(entry, n_in, batch_size, offsets_dtype):
    """The ``batch_structure`` of an ``Indexed`` structure, kept with it."""
    key = (batch_size, np.dtype(offsets_dtype).str)
    columns = entry.batches.get(key)
    if columns is None:
        columns = batch_structure(entry.indptr, entry.indices, n_in, batch_size, offsets_dtype)
        entry.batches.clear()  # one batch size kept: each costs about a third of the structure
        entry.batches[key] = columns
    return columns


# -- compiled forward passes and epochs ----------------------------------------------------------

def _indices_dtype(sizes):
    return index_dtype(max(sizes[:-1]))


def _structure(X, sizes, rows, known=None):
    """The ``Structure`` of X for forward passes ``rows`` at a time through layers of ``sizes``, and X's
    ``Indexed`` (``known``: see ``indexed``)."""
    indices_dtype = _indices_dtype(sizes)
    hidden = [full_structure(rows, width, indices_dtype) for width in sizes[1:-1]]
    entry = indexed(X, indices_dtype, known)
    return Structure((entry.indptr, *(s[0] for s in hidden)), (entry.indices, *(s[1] for s in hidden)),
                     entry.values), entry


def _outputs(sizes, rows, dtype):
    return tuple(np.empty((rows, size), dtype=dtype) for size in sizes[1:])


def sizes_of(network):
    return (network.num_inputs, *(layer.size for layer in network.layers))


def forward_work(X, sizes, dtype, known=None):
    """The ``ForwardWork`` of ``predict_classes`` for X, ``EVAL_CHUNK`` rows at a time (``known``: see ``indexed``)."""
    rows = min(EVAL_CHUNK, len(X))
    return ForwardWork(_outputs(sizes, rows, dtype), _structure(X, sizes, rows, known)[0])


def predict(plan, work):
    """The classes of the rows whose structure is in ``work`` (``forward_work``).

    Rows are independent, so large inputs are split over threads as the
    indexing is (``structure.in_parts``); each part has its own buffers.
    """
    structure = work.structure
    classes = np.empty(len(structure.indptrs[0]) - 1, dtype=np.int64)
    arguments = plan.arguments()

    def run(start, stop):
        part = Structure((structure.indptrs[0][start:stop + 1], *structure.indptrs[1:]), structure.indices,
                         structure.values)
        ys = work.ys if start == 0 else tuple(np.empty_like(y) for y in work.ys)
        predict_classes(*arguments, ForwardWork(ys, part), classes[start:stop])
    in_parts(run, len(classes), MIN_ROWS_PER_THREAD)
    return classes


class Training:
    """What one ``train`` call keeps across epochs, built when first needed and rebuilt if the layer
    sizes change: X's structures and the epoch's buffers, and the validation set's structure."""

    def __init__(self, network, X_train, X_val, batch_size):
        """X_train's and X_val's finiteness is this object's to prove: by the comparison with a kept structure
        during the first epoch (``epoch``, ``settle``), or, where no kept structure may match, here."""
        self.network, self.X_train, self.X_val, self.batch_size = network, X_train, X_val, batch_size
        self._work = self._val_work = self._known = self._val_known = None
        self.nonzero_fraction = nonzero_fraction(X_train)
        indices_dtype = _indices_dtype(sizes_of(network))
        self._candidate = _candidate(X_train, indices_dtype)
        self._val_candidate = None if X_val is None else _candidate(X_val, indices_dtype)
        if self._candidate is None:
            check._check_finite("X_train", X_train)
        if X_val is not None and self._val_candidate is None and not check._all_finite(X_val):
            self.settle()  # X_train's error, if it has one, comes first, as in the reference
            check._check_finite("X_val", X_val)

    def settle(self):
        """Finish the checks of X_train and X_val before anything reads them: compare each with its candidate
        structure, and test its values directly if that differs."""
        same, val_same = self._compare(self._candidate, self._val_candidate)
        self._settled(same, val_same)

    def _compare(self, candidate, val_candidate, threads=None):
        """Whether X_train and X_val still match their candidates (True where there is none)."""
        return (candidate is None or _describes(candidate, self.X_train, threads),
                val_candidate is None or _describes(val_candidate, self.X_val, threads))

    def _settled(self, same, val_same):
        """Take the comparisons' outcome: keep the structures that matched, check the values of the others
        (raising the reference's error for a non-finite one, X_train's first)."""
        candidate, val_candidate = self._candidate, self._val_candidate
        self._candidate = self._val_candidate = None
        if candidate is not None and same:
            self._known = candidate
        if val_candidate is not None and val_same:
            self._val_known = val_candidate
        if candidate is not None and not same:
            check._check_finite("X_train", self.X_train)
        if val_candidate is not None and not val_same:
            check._check_finite("X_val", self.X_val)

    def epoch_plan(self):
        """The network's plan for the next epoch, and whether that epoch runs compiled."""
        self.network._check_layers()  # a callback may have replaced layers
        plan = network_plan(self.network)
        return plan, compiled_epoch(plan, self.network, self.batch_size, self.nonzero_fraction)

    def work(self):
        sizes, dtype, batch_size = sizes_of(self.network), self.network.dtype, self.batch_size
        if self._work is None or self._work[0] != sizes:
            structure, entry = _structure(self.X_train, sizes, batch_size, self._known)
            offsets_dtype = index_dtype(batch_size * max(sizes[:-1]) + 1)
            work = EpochWork(
                _outputs(sizes, batch_size, dtype), _outputs(sizes, batch_size, dtype),
                tuple(np.empty((b, a), dtype=dtype) for a, b in zip(sizes[:-1], sizes[1:])), structure,
                indexed_batches(entry, sizes[0], batch_size, offsets_dtype),
                tuple(full_columns(batch_size, width, offsets_dtype) for width in sizes[:-1]),
                tuple(np.empty(size, dtype=dtype) for size in sizes[1:]))
            self._work = sizes, work
        return self._work[1]

    def val_work(self):
        sizes = sizes_of(self.network)
        if self._val_work is None or self._val_work[0] != sizes:
            self._val_work = sizes, forward_work(self.X_val, sizes, self.network.dtype, self._val_known)
        return self._val_work[1]

    def epoch(self, plan, y_train, learning_rate):
        """Run one compiled epoch; ``train_epoch``'s result.

        The first one may start on a candidate structure, which the epoch reads instead of X, while the
        other core compares X_train, then X_val, with their candidates (``settle``), within an epoch: no
        time of a one-epoch call goes to proving that they have not changed (with ``NUMBA_NUM_THREADS=1``,
        the comparisons come first). If X_train has changed, or X_val has and is not finite, the weights
        are put back, as if the epoch had not run, and the reference's checks follow: an error, or X
        indexed anew and the epoch run again.
        """
        if (self._candidate is not None or self._val_candidate is not None) and config.NUMBA_NUM_THREADS < 2:
            self.settle()  # one thread allowed: compare first
        if self._candidate is None and self._val_candidate is None:
            return self._run(plan, y_train, learning_rate)
        saved = [(layer.W.copy(), layer.b.copy()) for layer in plan.layers]
        if self._candidate is not None:
            self._known = self._candidate
        with ThreadPoolExecutor(1) as pool:
            comparison = pool.submit(self._compare, self._candidate, self._val_candidate, 1)
            try:
                result = self._run(plan, y_train, learning_rate)
            finally:
                same, val_same = comparison.result()
        if not same:
            self._known = self._work = None
        val_finite = val_same or check._all_finite(self.X_val)
        if not val_same and val_finite:
            self._val_candidate = None  # changed, but finite: indexed anew when evaluated
        if same and val_finite:
            self._settled(same, val_same)
            return result
        for layer, (W, b) in zip(plan.layers, saved):
            layer.W[...], layer.b[...] = W, b
        self._settled(same, val_same)
        return self._run(plan, y_train, learning_rate)

    def _run(self, plan, y_train, learning_rate):
        return train_epoch(y_train, self.batch_size, plan.dtype.type(learning_rate), *plan.arguments(), plan.loss,
                           self.work())

    def keep_last_batch(self, plan):
        """Leave the epoch's last step's x, y, dL_dW and dL_db on the layers, as the reference leaves them."""
        work = self.work()
        last = len(self.X_train) // self.batch_size - 1
        x = self.X_train[last * self.batch_size:(last + 1) * self.batch_size]
        for layer, y, dz in zip(plan.layers, work.ys, work.dzs):
            layer.layer.x, layer.layer.y = x, y.copy()
            parameter_gradients(layer.layer, x, dz)  # no kernel to compile for a once-per-epoch product
            x = layer.layer.y
