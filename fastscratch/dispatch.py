"""Which functions run as kernels: built-ins by identity, any other callable as the user's code (warned once).

``functions.BUILTINS`` is the table of built-ins and ``KERNEL_CODES`` their
kernels' codes; a user callable gets one ``FallbackWarning`` per callable
object, so two lambdas of the same name warn twice and a callable reused in
every layer warns once.
"""
import weakref

from fastscratch._validation import warn_at_user_line
from fastscratch.functions import builtin
from fastscratch.kernels import activations, losses

#: The kernels' code of each built-in (``functions.BUILTINS``), by (kind, name).
KERNEL_CODES = {
    ("activation", "sigmoid"): activations.SIGMOID,
    ("activation", "relu"): activations.RELU,
    ("activation", "tanh"): activations.TANH,
    ("loss", "l2"): losses.L2,
    ("loss", "cross_entropy"): losses.CROSS_ENTROPY,
}


class FallbackWarning(UserWarning):
    """A custom callable runs as the user's Python code between compiled products (and ``train`` batch by batch)."""


# The callables already warned about. Weak references, so that a callable that dies is forgotten
# rather than mistaken for a new one that Python gives the same id().
_warned = weakref.WeakSet()
_warned_strongly = set()  # hashable callables that take no weak reference (some built-in types)


def callable_name(function):
    """How messages name a user's callable."""
    return getattr(function, "__qualname__", repr(function))


def _first_time(function):
    """Whether ``function`` (this object, not its name) has not been warned about yet; records it."""
    try:
        if function in _warned:
            return False
        _warned.add(function)
    except TypeError:
        try:
            if function in _warned_strongly:
                return False
            _warned_strongly.add(function)
        except TypeError:
            pass  # neither weakly referable nor hashable: warned at each call
    return True


def warn_once(function, role, where="network"):
    """Warn, once per callable object, that ``function`` (the ``role`` of a ``where``) runs as the user's code.

    Issued with a registry of its own: Python's per-module registry keys on the text, which would let
    the first of two lambdas (both named ``<lambda>``) silence the other.
    """
    if not callable(function) or not _first_time(function):
        return  # not callable: calling it fails, as in the reference
    text = (f"{where} {role} {callable_name(function)!r} is not one of fastscratch's built-ins: it runs as your "
            f"Python code between the compiled products" + (", and train() runs batch by batch instead of in "
                                                              "compiled epochs" if where == "network" else ""))
    warn_at_user_line(text, FallbackWarning, registry={})


def activation_code(function, where="network"):
    """The kernel code of a built-in activation, or None (after a one-time warning) for any other callable."""
    entry = builtin(function, "activation")
    if entry is None:
        warn_once(function, "activation_function", where)
    return None if entry is None else KERNEL_CODES[entry.kind, entry.name]


def derivative_code(function, where="network"):
    """The kernel code of a built-in activation's derivative, or None (warned once) for any other callable."""
    if function is None:  # a layer built without one: backward() says so
        return None
    entry = builtin(function, "activation", "derivative")
    if entry is None:
        warn_once(function, "derivated_activation_function", where)
    return None if entry is None else KERNEL_CODES[entry.kind, entry.name]


def loss_code(network):
    """The kernel code of the network's loss when it and its derivative are one built-in pair, else None."""
    entry = builtin(network.loss_function, "loss")
    derivative = builtin(network.derivated_loss_function, "loss", "derivative")
    if entry is None:
        warn_once(network.loss_function, "loss_function")
    if derivative is None:
        warn_once(network.derivated_loss_function, "derivated_loss_function")
    return KERNEL_CODES[entry.kind, entry.name] if entry is not None and entry == derivative else None
