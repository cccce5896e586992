"""Checks at the public boundary, shared by the reference and the JIT network.

Numba kernels do no bounds checking, so everything that reaches them is made
right here: a known float dtype, C order, the expected widths, finite values.
Every message names the argument, what was expected and what was given.
"""
import linecache
import math
import numbers
import sys
import warnings

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
    says one thing and computes another. The drop-in cannot follow that
    promotion inside its kernels, so both flavours refuse it, naming the
    remedy. Narrower or equal types (float32 weights on a float64 network,
    bool, int8) compute in the network's dtype in NumPy too and are accepted.
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


def check_update_fits(owner, name, value, dtype):
    """Raise if ``owner.name`` is an array that cannot store an SGD update of ``dtype`` (an int or bool array).

    The tutorial's ``W -= epsilon * dL_dW`` raises NumPy's casting error for
    it; the drop-in, which updates a float copy, must not truncate the update
    into it silently.
    """
    if isinstance(value, np.ndarray) and not np.can_cast(dtype, value.dtype, "same_kind"):
        raise TypeError(f"{owner}.{name} has dtype {value.dtype}, which cannot hold the {np.dtype(dtype)} update "
                        f"{name} -= epsilon * dL_d{name} (NumPy refuses the cast, as in the tutorial): give the "
                        f"layer float weights, e.g. {name}.astype(np.float64)")


def all_finite(arr):
    """Whether every element is finite: NaN and inf make the sum non-finite, so a finite sum proves it
    without np.isfinite's full-size temporary (47 MB for MNIST); only a
    non-finite sum, which overflow of large finite values can also cause, needs the elementwise test."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.sum(arr))) or bool(np.isfinite(arr).all())


def check_finite(name, arr):
    if arr.dtype.kind == "f" and not all_finite(arr):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(f"{name} contains non-finite values (NaN or inf), first at index {tuple(bad.tolist())}")


def _to_dtype(name, arr, dtype, finite=True):
    """Return a C-contiguous ``dtype`` copy of ``arr`` (or ``arr`` itself when it already is one).

    ``finite`` false leaves checking for NaN and inf to the caller, except
    after a narrowing conversion, whose overflow can be found only here.
    """
    narrowing = arr.dtype.kind == "f" and arr.dtype.itemsize > np.dtype(dtype).itemsize
    if finite and not narrowing:
        check_finite(name, arr)
    with np.errstate(over="ignore"):
        converted = np.ascontiguousarray(arr, dtype=dtype)
    # Narrowed, the copy is finite exactly when the source is and nothing overflowed: one check, on the
    # smaller array; the source's own NaN or inf is reported first, as without narrowing.
    if narrowing and not all_finite(converted):
        check_finite(name, arr)
        bad = np.argwhere(~np.isfinite(converted))[0]
        raise ValueError(f"{name} holds values too large for {converted.dtype}, first at index "
                         f"{tuple(bad.tolist())}")
    return converted


def as_input(name, data, num_inputs, dtype, finite=True):
    """Return ``data`` as a C-contiguous ``dtype`` array of shape (n, num_inputs) or (num_inputs,).

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
    return _to_dtype(name, arr, dtype, finite)


def read_input(name, data, num_inputs, dtype):
    """``as_input`` for the calls the tutorial answers whatever the values (``forward``, ``predict``,
    ``backward``, ``evaluate_accuracy``): NaN or inf is warned about, not refused (the tutorial's NumPy returns
    NaN where it spreads). Returns the array and whether it is finite."""
    arr = as_input(name, data, num_inputs, dtype, finite=False)
    finite = all_finite(arr)
    if not finite:
        bad = np.argwhere(~np.isfinite(arr))[0]
        warn_as_the_tutorial_runs(f"{name} contains non-finite values (NaN or inf), first at index "
                                  f"{tuple(bad.tolist())}: the results are what NumPy makes of them")
    return arr, finite


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
    return _to_dtype(name, arr, dtype)


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


def train_arguments(num_inputs, num_outputs, dtype, X_train, y_train, X_val, y_val, batch_size, num_epochs,
                    learning_rate, finite_X=True, finite_X_val=True):
    """``train``'s arguments checked, in the reference's order, and converted to ``dtype``.

    ``finite_X`` (``finite_X_val``) false leaves X_train's (X_val's)
    finiteness to the caller (the drop-in proves it by comparing with a kept
    structure), but for a narrowing conversion's (``_to_dtype``).
    """
    X_train = as_input("X_train", X_train, num_inputs, dtype, finite=finite_X)
    if X_train.ndim != 2:
        raise ValueError(f"X_train must be 2-D (samples, {num_inputs}), got shape {X_train.shape}")
    y_train = as_targets("y_train", y_train, num_outputs, len(X_train), dtype)
    batch_size, num_epochs, learning_rate = check_train_args(len(X_train), batch_size, num_epochs, learning_rate)
    if (X_val is None) != (y_val is None):  # the tutorial validates only with both
        given, missing = ("X_val", "y_val") if y_val is None else ("y_val", "X_val")
        warn_as_the_tutorial_runs(f"{given} was given without {missing}: training runs without validation "
                                  f"(pass both to evaluate)")
        X_val = y_val = None
    if X_val is not None:
        X_val = as_input("X_val", X_val, num_inputs, dtype, finite=finite_X_val)
        if X_val.ndim != 2:
            raise ValueError(f"X_val must be 2-D (samples, {num_inputs}), got shape {X_val.shape}")
        y_val = as_labels("y_val", y_val, num_outputs, len(X_val))
    return X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate


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
