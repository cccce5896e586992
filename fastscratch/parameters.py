"""Which of a layer's ``W`` and ``b`` the kernels read and update in place, and the arrays they read.

The kernels update a layer's own ``W`` and ``b`` in place when each is a
writable, aligned, C-contiguous ``np.ndarray`` of the network's dtype. Any
other form (a transposed or strided view, a Fortran-ordered array, float32
weights on a float64 network, another byte order, a list, a read-only array)
is never copied for the kernels to step: a copy made when the plan is decided
goes stale as soon as another layer steps the memory it shares (tied weights,
``l2.W = l1.W.T``), and writing it back would erase that layer's update. Such
a layer runs the reference's own expressions on the user's object instead
(``plan``), so every update lands where, and in the order, the reference's
``W -= epsilon * dL_dW`` puts it, or fails where that fails.
"""
import numpy as np

from fastscratch import _validation


def in_place(value, dtype):
    """``value`` itself if the kernels can read and update it in place, else None."""
    if (type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous and value.flags.writeable
            and value.flags.aligned):
        return value
    return None


def kernel_array(name, value, dtype):
    """A public array attribute the kernels only read (``x``, ``y``, ``dL_dW``): itself if C-contiguous and of
    ``dtype``, else a converted copy (shapes checked by the caller)."""
    if type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous:
        return value  # the common case, without the conversion's machinery
    arr = _validation.as_real_array(name, value)
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(arr, dtype=dtype)
