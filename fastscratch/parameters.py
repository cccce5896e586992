"""The arrays kernels read and update for a layer's W and b, and the write-back into the user's objects.

The kernels update a layer's own ``W`` and ``b`` in place when they are
C-contiguous, writable arrays of the network's dtype; any other form (a
strided view, float32 weights on a float64 network, a list, another byte
order) runs on a converted copy whose updates are written back after each
step, as the reference's ``W -= ...`` would store them.
"""
import numpy as np

from fastscratch import _validation as check


def kernel_array(name, value, dtype):
    """A public array attribute as the kernels need it: C-contiguous, ``dtype`` (shapes checked by the caller)."""
    if type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous:
        return value  # the common case, without the conversion's machinery
    arr = check.as_real_array(name, value)
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(arr, dtype=dtype)


def parameter(owner, name, dtype, copies):
    """``owner.W`` or ``owner.b`` itself if the kernels can update it in place, else one converted copy.

    ``copies`` maps the id of a source object to its copy, so that parameters
    tied by assignment (``l1.W = l2.W``) share one copy within a plan.
    """
    value = getattr(owner, name)
    if id(value) in copies:
        return copies[id(value)]
    arr = kernel_array(name, value, dtype)
    if arr is value and not arr.flags.writeable:  # the update fails, as in the reference, at write-back
        arr = arr.copy()
    copies[id(value)] = arr
    return arr


def write_back(layer, name, arr):
    """After a step on a converted copy, put it into the user's object, as the reference's ``-=`` would."""
    value = getattr(layer, name)
    if value is arr:
        return
    if isinstance(value, np.ndarray):
        value[...] = arr
        arr[...] = value  # what the user's dtype kept is what the next step starts from
    else:  # a list: the reference's ``W -= ...`` makes it an array too
        setattr(layer, name, arr)
