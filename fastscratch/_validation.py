"""Checks at the public boundary, shared by the reference and the drop-in: what the tutorial's network
accepts, in the reference's order.

Arguments are made what the network computes with: a float dtype, C order,
the expected widths; the layers' state (their W and b, the stored batch and
gradients) is checked before a call reads it. Every message names the
argument, what was expected and what was given. Nothing here knows of
compiled code: what only the drop-in needs lives on its side.
"""
import linecache
import math
import numbers
import sys
import warnings
from typing import NamedTuple

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def user_frame():
    """The innermost frame outside this package (``fastscratch`` and its submodules; a user's module named
    ``fastscratch_...`` is outside): the line a warning points the user to."""
    frame = sys._getframe(1)
    while frame.f_back is not None and (frame.f_globals.get("__name__") == "fastscratch"
                                        or frame.f_globals.get("__name__", "").startswith("fastscratch.")):
        frame = frame.f_back
    return frame


def warn_at_user_line(text, category, registry=None):
    """Issue a warning pointing at the user's line (``user_frame``), with that module's registry, as
    ``warnings.warn`` would, or with ``registry``.

    It must work wherever that line runs: a script, the interactive prompt, ``python -c``, ``exec``, a
    Jupyter cell, a thread. ``warnings.warn_explicit`` given the module's globals asks the module's loader
    for the source and raises what the loader raises (``__main__`` at the prompt, under ``-c`` or in
    ``exec`` has the built-in importer, which refuses it); so the source line is left to ``linecache``,
    primed here from those globals as the pure-Python ``warnings`` module primes it (a module whose
    source only its loader knows, such as a zip import), where a loader that cannot give it is no error.
    """
    frame = user_frame()
    filename, lineno, module_globals = frame.f_code.co_filename, frame.f_lineno, frame.f_globals
    try:
        linecache.getlines(filename, module_globals)
    except Exception:  # noqa: BLE001  (a loader's own failure: the warning shows without its source line)
        pass
    if registry is None:
        registry = module_globals.setdefault("__warningregistry__", {})
    warnings.warn_explicit(text, category, filename, lineno, module=module_globals.get("__name__"),
                           registry=registry)


def warn_as_the_tutorial_runs(text):
    """Warn about an argument the tutorial's code accepts silently (the call then does what it does), at the
    user's line (``warn_at_user_line``)."""
    warn_at_user_line(text, UserWarning)


def check_dtype(dtype):
    """Return ``dtype`` as a NumPy float32/float64 dtype or raise."""
    try:
        resolved = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from err
    if resolved not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {resolved}")
    return resolved


def check_size(name, value):
    """Return ``value`` as an int >= 1 or raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def check_count(name, value):
    """Return ``value`` as an int >= 0 or raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 0, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def check_learning_rate(value, name="learning_rate"):
    """Return ``value`` as a finite float > 0 or raise; ``name`` is the caller's argument name."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        rate = float(value)
    except OverflowError:  # an int too large for a float
        rate = math.inf
    if not math.isfinite(rate):
        raise ValueError(f"{name} must be finite, got {value}")
    if rate <= 0:  # the tutorial's step runs: 0 changes nothing, a negative rate climbs the loss
        warn_as_the_tutorial_runs(f"{name} is {value}: " + ("the weights will not change" if rate == 0 else
                                  "each step goes up the gradient, increasing the loss"))
    return rate


def as_real_array(name, data):
    """``np.asarray(data)`` if it holds real numbers (bool counts as 0/1), else raise."""
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError) as err:  # ragged lists and the like
        raise ValueError(f"{name} could not be read as an array: {err}") from err
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {arr.dtype}")
    return arr


def check_parameter_dtype(owner, name, value, dtype):
    """Raise if parameter ``owner.name`` would make NumPy compute this ``dtype`` network in a wider type.

    A float32 network given float64 (or int64) weights would, in NumPy,
    compute that layer and every later one in float64: a network whose dtype
    says one thing and computes another, which breaks the promise ``dtype``
    makes, so both flavours refuse it, naming the remedy. Narrower or equal
    types (float32 weights on a float64 network, bool, int8) compute in the
    network's dtype in NumPy too and are accepted.
    """
    try:
        kind = value.dtype if isinstance(value, np.ndarray) else np.asarray(value).dtype
        promoted = np.promote_types(kind, dtype)
    except (TypeError, ValueError):
        return  # not numbers at all: the product fails as in the tutorial
    if promoted != dtype:
        raise TypeError(f"{owner}.{name} has dtype {kind}, with which NumPy would compute this {dtype} network "
                        f"in {promoted}: assign {name}.astype(np.{dtype}), or build the network with "
                        f"dtype=np.{promoted}")


def all_finite(arr):
    """Whether every element is finite: NaN and inf make the sum non-finite, so a finite sum proves it
    without np.isfinite's full-size temporary (47 MB for MNIST); only a
    non-finite sum, which overflow of large finite values can also cause, needs the elementwise test."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(arr))) or bool(np.isfinite(arr).all())


def first_non_finite(arr):
    """The index of the first NaN or inf of ``arr``, as a tuple."""
    return tuple(np.argwhere(~np.isfinite(arr))[0].tolist())


def check_finite(name, arr):
    if arr.dtype.kind == "f" and not all_finite(arr):
        raise ValueError(f"{name} contains non-finite values (NaN or inf), first at index {first_non_finite(arr)}")


def converted(name, arr, dtype):
    """Return a C-contiguous ``dtype`` copy of ``arr`` (or ``arr`` itself when it already is one).

    A narrowing conversion must not turn large values into inf: narrowed, the
    copy is finite exactly when the source is and nothing overflowed, so its
    one check (on the smaller array) reports the source's own NaN or inf
    first, as ``check_finite`` would, else the first value too large. Other
    conversions leave NaN and inf to the caller.
    """
    narrowing = arr.dtype.kind == "f" and arr.dtype.itemsize > np.dtype(dtype).itemsize
    with np.errstate(over="ignore"):
        result = np.ascontiguousarray(arr, dtype=dtype)
    if narrowing and not all_finite(result):
        check_finite(name, arr)
        raise ValueError(f"{name} holds values too large for {result.dtype}, first at index "
                         f"{first_non_finite(result)}")
    return result


def as_input(name, data, num_inputs, dtype):
    """Return ``data`` as a C-contiguous ``dtype`` array of shape (n, num_inputs) or (num_inputs,)
    (``input_array``, then ``converted``: NaN and inf are the caller's to check)."""
    return converted(name, input_array(name, data, num_inputs), dtype)


def input_array(name, data, num_inputs):
    """Return ``data`` as an array of real numbers of shape (n, num_inputs) or (num_inputs,), not converted.

    A 1-D input is one sample, as in the tutorial's ``predict(X_val[i])``; the
    returned array keeps the caller's dimensionality so results have the same
    shape as the reference's.
    """
    arr = as_real_array(name, data)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D (one sample) or 2-D (samples, {num_inputs}), "
                         f"got an array of shape {arr.shape}")
    if arr.shape[-1] != num_inputs:
        raise ValueError(f"{name} has {arr.shape[-1]} features per sample but {num_inputs} "
                         f"are expected (shape {arr.shape})")
    if arr.ndim == 2 and arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    return arr


def check_rows(name, arr, num_inputs):
    """Raise unless ``arr`` (from ``as_input``) is 2-D, samples by inputs: ``train``'s X_train and X_val."""
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, {num_inputs}), got shape {arr.shape}")


def warn_unless_finite(name, arr):
    """Whether ``arr`` is finite; if not, a warning that the results are what NumPy makes of its NaN or inf."""
    finite = all_finite(arr)
    if not finite:
        warn_as_the_tutorial_runs(f"{name} contains non-finite values (NaN or inf), first at index "
                                  f"{first_non_finite(arr)}: the results are what NumPy makes of them")
    return finite


def read_input(name, data, num_inputs, dtype):
    """``as_input`` for the calls the tutorial answers whatever the values (``forward``, ``predict``,
    ``backward``, ``evaluate_accuracy``): NaN or inf is warned about, not refused (the tutorial's NumPy returns
    NaN where it spreads)."""
    arr = as_input(name, data, num_inputs, dtype)
    warn_unless_finite(name, arr)
    return arr


def as_targets(name, data, num_outputs, num_samples, dtype):
    """Return training targets as a (num_samples, num_outputs) ``dtype`` array.

    Targets may be given one-hot (or any real-valued rows of width
    ``num_outputs``), as the tutorial does, or as a 1-D array of integer class
    labels in ``[0, num_outputs)``, which are one-hot encoded here exactly as
    ``np.eye(num_outputs)[labels]`` would.
    """
    arr = as_real_array(name, data)
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer) and num_outputs > 1:
        check_labels(name, arr, num_outputs)
        arr = np.eye(num_outputs, dtype=dtype)[arr]
    elif arr.ndim == 1 and num_outputs == 1:
        raise ValueError(f"{name} has shape {arr.shape}; the network has 1 output, so targets must be rows of "
                         f"width 1: pass {name}.reshape(-1, 1)")
    elif arr.ndim == 1:
        raise ValueError(f"{name} is 1-D with dtype {arr.dtype}; targets must be one-hot rows of width "
                         f"{num_outputs} or integer class labels (e.g. np.eye({num_outputs})[labels])")
    if arr.ndim != 2 or arr.shape[1] != num_outputs:
        raise ValueError(f"{name} must have shape (samples, {num_outputs}) to match the network's "
                         f"{num_outputs} outputs, got shape {arr.shape}")
    if arr.shape[0] != num_samples:
        raise ValueError(f"{name} has {arr.shape[0]} rows but the inputs have {num_samples} samples")
    arr = converted(name, arr, dtype)
    check_finite(name, arr)
    return arr


def check_labels(name, labels, num_classes):
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{name} holds class labels outside [0, {num_classes}): "
                         f"min {labels.min()}, max {labels.max()}")


def as_labels(name, data, num_outputs, num_samples):
    """Return validation labels as a 1-D int64 array of class ids.

    Accepts integer labels (the tutorial's ``y_test``) or one-hot rows, which
    are turned into labels with ``argmax``.
    """
    arr = as_real_array(name, data)
    if arr.ndim == 2 and arr.shape[1] == num_outputs:
        check_finite(name, arr)
        arr = arr.argmax(axis=1)
    elif arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels or one-hot rows of width {num_outputs}, "
                         f"got shape {arr.shape}")
    elif arr.dtype.kind == "b":
        raise TypeError(f"{name} must hold integer class labels, got booleans")
    elif not np.issubdtype(arr.dtype, np.integer):
        if not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise ValueError(f"{name} must hold integer class labels, got non-integer values")
    if arr.shape[0] != num_samples:
        raise ValueError(f"{name} has {arr.shape[0]} labels but the inputs have {num_samples} samples")
    arr = arr.astype(np.int64)
    check_labels(name, arr, num_outputs)
    return arr


class TrainArguments(NamedTuple):
    """``train``'s arguments, checked and converted."""
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    batch_size: int
    num_epochs: int
    learning_rate: float
    print_frequency: int


def train_arguments(num_inputs, num_outputs, dtype, X_train, y_train, X_val, y_val, batch_size, num_epochs,
                    learning_rate, print_frequency):
    """``train``'s arguments checked, in the reference's order, and converted to ``dtype`` (``TrainArguments``)."""
    X_train = as_input("X_train", X_train, num_inputs, dtype)
    check_finite("X_train", X_train)
    check_rows("X_train", X_train, num_inputs)
    y_train = as_targets("y_train", y_train, num_outputs, len(X_train), dtype)
    batch_size, num_epochs, learning_rate = check_train_args(len(X_train), batch_size, num_epochs, learning_rate)
    X_val, y_val = validation_pair(X_val, y_val)
    if X_val is not None:
        X_val = as_input("X_val", X_val, num_inputs, dtype)
        check_finite("X_val", X_val)
        check_rows("X_val", X_val, num_inputs)
        y_val = as_labels("y_val", y_val, num_outputs, len(X_val))
    return TrainArguments(X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate,
                          check_size("print_frequency", print_frequency))


def validation_pair(X_val, y_val):
    """``(X_val, y_val)``, or ``(None, None)`` with a warning when only one is given: the tutorial validates
    only with both."""
    if (X_val is None) != (y_val is None):
        given, missing = ("X_val", "y_val") if y_val is None else ("y_val", "X_val")
        warn_as_the_tutorial_runs(f"{given} was given without {missing}: training runs without validation "
                                  f"(pass both to evaluate)")
        return None, None
    return X_val, y_val


def check_train_args(num_samples, batch_size, num_epochs, learning_rate):
    batch_size = check_size("batch_size", batch_size)
    if batch_size > num_samples:
        raise ValueError(f"batch_size ({batch_size}) is larger than the training set ({num_samples} samples)")
    if isinstance(num_epochs, numbers.Integral) and not isinstance(num_epochs, (bool, np.bool_)) and num_epochs < 0:
        warn_as_the_tutorial_runs(f"num_epochs is {num_epochs}: no epoch runs (the tutorial's range() is empty)")
        num_epochs = 0
    num_epochs = check_count("num_epochs", num_epochs)
    learning_rate = check_learning_rate(learning_rate)
    return batch_size, num_epochs, learning_rate


# --- The layers' state, checked before a call reads it ---------------------------------------------------------

def _check_shapes(W, b, W_shape, b_shape, what):
    # W and b are public and can be replaced or reshaped in place.
    if np.shape(W) != W_shape or np.shape(b) != b_shape:
        raise ValueError(f"W {np.shape(W)} and b {np.shape(b)} no longer have this {what}'s shapes "
                         f"{W_shape} and {b_shape}")


def check_neuron_parameters(neuron):
    """Raise unless the neuron's W and b have its shapes and a dtype it computes with (``check_parameter_dtype``)."""
    _check_shapes(neuron.W, neuron.b, (neuron.num_inputs,), (1,), "neuron")
    check_parameter_dtype("neuron", "W", neuron.W, neuron.dtype)
    check_parameter_dtype("neuron", "b", neuron.b, neuron.dtype)


def check_layer_parameters(layer, owner="layer"):
    """Raise unless the layer's W and b have its shapes and a dtype it computes with; ``owner`` names the layer
    in messages (``layers[1]``)."""
    _check_shapes(layer.W, layer.b, (layer.num_inputs, layer.size), (layer.size,), "layer")
    check_parameter_dtype(owner, "W", layer.W, layer.dtype)
    check_parameter_dtype(owner, "b", layer.b, layer.dtype)


def check_network(network):
    """Raise unless ``network.layers`` (a public list) still chains, each layer in the network's dtype with
    parameters of its shapes."""
    layers = network.layers
    if not layers:
        raise ValueError("the network has no layers")
    for i, layer in enumerate(layers):
        if i and layer.num_inputs != layers[i - 1].size:
            raise ValueError(f"layer {i} takes {layer.num_inputs} inputs but layer {i - 1} "
                             f"gives {layers[i - 1].size} outputs")
        if layer.dtype != network.dtype:
            raise TypeError(f"layers[{i}] computes in {layer.dtype}, the network in {network.dtype}: build the "
                            f"layer with dtype=np.{network.dtype}")
        check_layer_parameters(layer, f"layers[{i}]")


def check_stored_batch(layer, rows=None):
    """Raise unless the layer holds a forward pass's batch (x and y) that ``backward`` can use: of ``rows`` rows
    when given (a network's layers hold one batch), and a derivative to apply."""
    if layer.y is None:
        raise RuntimeError("backward() needs a forward() call first")
    check_layer_parameters(layer)
    if np.ndim(layer.x) == 1:
        raise ValueError("backward() needs the last forward() input as a 2-D batch; "
                         "pass a single sample as x.reshape(1, -1)")
    # x and y are public: make sure they still fit this layer (and, in a network, each other).
    if rows is None:
        rows = np.shape(layer.x)[0] if np.ndim(layer.x) else None  # x = None or a scalar fits no batch
    if np.shape(layer.x) != (rows, layer.num_inputs) or np.shape(layer.y) != (rows, layer.size):
        raise ValueError(f"the stored x {np.shape(layer.x)} and y {np.shape(layer.y)} do not fit a batch of "
                         f"{rows} through this {layer.num_inputs}->{layer.size} layer; call forward() again")
    if layer.derivated_activation_function is None:
        raise RuntimeError("backward() needs derivated_activation_function, which this layer was "
                           "built without")


def check_output_gradient(layer, dL_dy):
    """``dL_dy`` as the layer's ``backward`` takes it: read as an input (``read_input``), shaped like its y."""
    dL_dy = read_input("dL_dy", dL_dy, layer.size, layer.dtype)
    if dL_dy.shape != np.shape(layer.y):
        raise ValueError(f"dL_dy must have the shape of the last output {np.shape(layer.y)}, "
                         f"got {dL_dy.shape}")
    return dL_dy


def check_stored_gradients(layer):
    """Raise unless the layer holds gradients (from ``backward``) of its W's and b's shapes."""
    if layer.dL_dW is None:
        raise RuntimeError("optimize() needs a backward() call first")
    check_layer_parameters(layer)
    if np.shape(layer.dL_dW) != np.shape(layer.W) or np.shape(layer.dL_db) != np.shape(layer.b):
        raise ValueError(f"the stored dL_dW {np.shape(layer.dL_dW)} and dL_db {np.shape(layer.dL_db)} must have "
                         f"the shapes of W {np.shape(layer.W)} and b {np.shape(layer.b)}; call backward() again")
