"""Parameters the network's dtype cannot hold or compute with fail as the reference does, with a clear error."""
import warnings

import numpy as np
import pytest

import fastscratch
from fastscratch import reference

FLAVOURS = [reference, fastscratch]


def network(module, dtype=np.float64):
    np.random.seed(5)
    return module.SimpleNetwork(8, 3, [6, 5], dtype=dtype)


def data(rng, n=40):
    return rng.random((n, 8)), np.eye(3)[rng.integers(0, 3, n)]


@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize("parameter", ["W", "b"])
@pytest.mark.parametrize("kind", [int, bool, np.int8])
def test_integer_or_bool_parameters_raise_where_the_reference_does(layer, parameter, kind, rng):
    X, Y = data(rng)
    nets, errors = [], []
    for module in FLAVOURS:
        net = network(module)
        target = net.layers[layer]
        setattr(target, parameter, np.zeros(np.shape(getattr(target, parameter)), dtype=kind))
        with pytest.raises(TypeError) as info:
            net.train(X, Y, batch_size=10, num_epochs=2, verbose=False)
        nets.append(net)
        errors.append(str(info.value))
    assert f"layers[{layer}].{parameter}" in errors[1] and np.dtype(kind).name in errors[1]
    ref, jit = nets
    for r, j in zip(ref.layers, jit.layers):  # the same updates stored before the error, none truncated in
        assert j.W.dtype == r.W.dtype and j.b.dtype == r.b.dtype
        np.testing.assert_allclose(j.W, r.W, rtol=1e-12)
        np.testing.assert_allclose(j.b, r.b, rtol=1e-12)
    assert not np.any(getattr(jit.layers[layer], parameter))


@pytest.mark.parametrize("module", FLAVOURS, ids=["reference", "jit"])
def test_a_lone_layer_with_integer_weights_cannot_take_a_step(module, rng):
    np.random.seed(0)
    layer = module.FullyConnectedLayer(4, 3, fastscratch.sigmoid, fastscratch.derivated_sigmoid)
    layer.W = np.ones((4, 3), dtype=int)
    layer.backward(np.ones((2, 3)) - layer.forward(rng.random((2, 4))))  # forward and backward work, as in NumPy
    with pytest.raises(TypeError):
        layer.optimize(0.1)
    assert (layer.W == 1).all()


@pytest.mark.parametrize("module", FLAVOURS, ids=["reference", "jit"])
@pytest.mark.parametrize("value", [np.zeros((8, 6)), np.zeros((8, 6), dtype=np.int64), np.zeros((8, 6)).tolist()],
                         ids=["float64", "int64", "list"])
def test_a_float32_network_refuses_parameters_that_would_compute_it_in_float64(module, value, rng):
    X, Y = data(rng)
    net = network(module, np.float32)
    net.layers[0].W = value
    with pytest.raises(TypeError, match=r"layers\[0\]\.W has dtype (float64|int64).*float32"):
        net.forward(X)
    with pytest.raises(TypeError, match=r"layers\[0\]\.W"):
        net.train(X, Y, batch_size=10, num_epochs=1, verbose=False)


@pytest.mark.parametrize("module", FLAVOURS, ids=["reference", "jit"])
def test_narrower_parameters_compute_in_the_networks_dtype(module, rng):
    X, _ = data(rng)
    net = network(module)
    net.layers[0].W = net.layers[0].W.astype(np.float32)
    assert net.forward(X).dtype == np.float64


@pytest.mark.parametrize("module", FLAVOURS, ids=["reference", "jit"])
def test_dtype_is_fixed_at_construction_even_in_a_callback(module, rng):
    X, Y = data(rng)
    net = network(module)
    for target in (net, net.layers[0], module.Neuron(3, fastscratch.sigmoid)):
        with pytest.raises(AttributeError, match="fixed at construction"):
            target.dtype = np.float32
        assert target.dtype == np.float64

    def switch(epoch, loss, accuracy):
        net.dtype = np.float32

    with pytest.raises(AttributeError, match="fixed at construction"):
        net.train(X, Y, batch_size=10, num_epochs=2, verbose=False, callback=switch)
    assert net.dtype == np.float64


@pytest.mark.parametrize("module", FLAVOURS, ids=["reference", "jit"])
def test_a_layer_of_another_dtype_is_refused_by_the_network(module, rng):
    net = network(module)
    with warnings.catch_warnings():
        net.layers[1] = module.FullyConnectedLayer(6, 5, fastscratch.sigmoid, fastscratch.derivated_sigmoid,
                                                   dtype=np.float32)
    with pytest.raises(TypeError, match=r"layers\[1\] computes in float32"):
        net.forward(data(rng)[0])
