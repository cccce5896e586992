"""What a user's activation or loss returns, checked (shape, real numbers) and converted before kernels read it."""
import numpy as np

from fastscratch.dispatch import callable_name


def checked_result(function, role, value, shape, dtype, broadcast=False):
    """``value``, returned by the user's ``function``, as a C-contiguous ``dtype`` array of ``shape``.

    Booleans and integers count as numbers, as in NumPy. ``broadcast``: a
    derivative may return anything that broadcasts to ``shape`` (the
    reference multiplies it in), such as a scalar.
    """
    if (type(value) is np.ndarray and value.dtype == dtype and value.shape == shape
            and value.flags.c_contiguous):  # what a NumPy function of the network's arrays returns: itself
        return value
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{role} {callable_name(function)!r} returned {type(value).__name__}, not an array: "
                        f"{err}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{role} {callable_name(function)!r} must return real numbers, returned dtype {arr.dtype}")
    try:
        fits = arr.shape == shape or broadcast and np.broadcast_shapes(arr.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{role} {callable_name(function)!r} returned shape {arr.shape}; expected {shape}"
                         + (" (or a shape that broadcasts to it)" if broadcast else ""))
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(np.broadcast_to(arr, shape), dtype=dtype)


def checked_loss(function):
    """``function`` (a loss), raising unless it returns a real scalar."""
    def loss(predictions, targets):
        value = function(predictions, targets)
        if np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "biuf":
            raise ValueError(f"loss_function {callable_name(function)!r} must return a real scalar, returned "
                             f"{type(value).__name__} of shape {np.shape(value)}")
        return value
    return loss


def checked_loss_derivative(function, dtype):
    """``function`` (a loss derivative), its result checked by ``checked_result``."""
    def derivative(predictions, targets):
        return checked_result(function, "derivated_loss_function", function(predictions, targets),
                              predictions.shape, dtype, broadcast=True)
    return derivative
