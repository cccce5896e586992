"""Built-ins run as kernels; every other callable object is warned about once, in words that fit its owner."""
import gc
import warnings

import numpy as np
import pytest

import fastscratch


def test_every_new_callable_warns_once_even_at_a_reused_address():
    for _ in range(5):
        def custom(z):
            return np.maximum(z, 0)
        with pytest.warns(fastscratch.FallbackWarning, match="custom"):
            fastscratch.FullyConnectedLayer(3, 2, custom, fastscratch.derivated_relu)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            fastscratch.FullyConnectedLayer(3, 2, custom, fastscratch.derivated_relu)
        del custom
        gc.collect()


def test_two_lambdas_of_one_name_warn_once_each_under_the_default_filters():
    """Python's registry keys on the text: the second ``<lambda>`` used to be silenced by the first."""
    functions = [lambda z: np.maximum(z, 0) for _ in range(2)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for function in functions:
            for _ in range(2):
                fastscratch.SimpleNetwork(3, 2, [4], activation_function=function,
                                          derivated_activation_function=fastscratch.derivated_relu)
    assert [w.category for w in caught] == [fastscratch.FallbackWarning] * 2
    assert all(w.filename == __file__ for w in caught)  # points at the user's line, not into the package


def test_the_text_fits_the_owner_of_the_callable():
    with pytest.warns(fastscratch.FallbackWarning) as caught:
        fastscratch.FullyConnectedLayer(3, 2, lambda z: z, fastscratch.derivated_relu)
    assert str(caught[0].message).startswith("layer activation_function '")
    assert "train" not in str(caught[0].message)
    with pytest.warns(fastscratch.FallbackWarning) as caught:
        fastscratch.SimpleNetwork(3, 2, [4], loss_function=lambda p, t: 0.0)
    text = str(caught[0].message)
    assert text.startswith("network loss_function '") and "batch by batch" in text


def test_every_builtin_has_its_own_kernel_code():
    """The kernels' codes sit beside the dispatch that uses them (``functions`` is pure NumPy): one per built-in,
    distinct within a kind, and the kernels' own constants."""
    from fastscratch.dispatch import KERNEL_CODES
    from fastscratch.functions import BUILTINS
    from fastscratch.kernels import activations, losses
    assert sorted(KERNEL_CODES) == sorted((b.kind, b.name) for b in BUILTINS)
    for kind, module in (("activation", activations), ("loss", losses)):
        codes = [code for (k, _), code in KERNEL_CODES.items() if k == kind]
        assert len(set(codes)) == len(codes)
    assert activations.IDENTITY not in [code for (k, _), code in KERNEL_CODES.items() if k == "activation"]
    assert KERNEL_CODES["activation", "tanh"] == activations.TANH and KERNEL_CODES["loss", "l2"] == losses.L2
