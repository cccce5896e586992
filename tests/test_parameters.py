"""Parameters the network's dtype cannot hold or compute with fail as the reference does, with a clear error;
parameters of other forms, tied through views, step as the reference steps them."""
import warnings

import numpy as np
import pytest

import fastscratch
from fastscratch import config, reference
from twins import problem

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


def _tie_transpose(layers):
    layers[2].W = layers[1].W.T


def _tie_overlapping_slice(layers):
    layers[1].W = layers[0].W[:16, :12]


def _tie_odd_strides(layers):
    W = layers[0].W
    layers[1].W = np.ndarray((16, 12), W.dtype, buffer=W, offset=3 * W.itemsize, strides=(13 * W.itemsize, W.itemsize))


def _tie_reversed(layers):
    layers[1].W = layers[0].W[::-1, ::-1][:16, :12]


def _tie_fortran(layers):
    layers[1].W = np.asfortranarray(layers[1].W)
    layers[2].W = layers[1].W.T  # C-contiguous: stepped in place by the kernels, after layers[1]'s Fortran W


def _tie_shared_buffer(layers):
    W1, W2 = layers[1].W, layers[2].W
    buffer = np.empty(W1.size + 8, dtype=W1.dtype)
    buffer[:W1.size], buffer[W1.size:] = W1.ravel(), W2.ravel()[-8:]
    layers[1].W, layers[2].W = buffer[:W1.size].reshape(W1.shape), buffer[8:].reshape(W2.shape)


def _tie_same_bias(layers):
    layers[2].b = layers[0].b


#: Weights tied through views that are not the same C-ordered array, on a 20-16-12-16 network.
TIES = {"transpose": _tie_transpose, "overlapping slice": _tie_overlapping_slice, "odd strides": _tie_odd_strides,
        "reversed": _tie_reversed, "fortran": _tie_fortran, "shared buffer": _tie_shared_buffer,
        "same bias": _tie_same_bias}


@pytest.fixture(params=["kernels", "numpy"])
def products(request, monkeypatch):
    """``numpy``: every per-call product runs the reference's expression, so that results must be its very bits."""
    if request.param == "numpy":
        monkeypatch.setattr(config, "KERNEL_MAX_ENTRIES", -1)
    return request.param


def tied_pair(tie, dtype):
    nets = []
    for module in FLAVOURS:
        np.random.seed(3)
        net = module.SimpleNetwork(20, 16, [16, 12], dtype=dtype)
        TIES[tie](net.layers)
        nets.append(net)
    return nets


def tied_rtol(dtype, products):
    """The reference's very bits where the drop-in ran the reference's products, else its rounding (kernels
    sum in another order): 1e-12 relative in float64."""
    return 0 if products == "numpy" else {np.float64: 1e-12, np.float32: 2e-6}[dtype]


def assert_tied_state_equal(nets, dtype, products):
    """Every layer's parameters and last step, as the reference left them (``tied_rtol``); the ties kept."""
    rtol = tied_rtol(dtype, products)
    for r, j in zip(*(net.layers for net in nets)):
        for name in ("W", "b", "x", "y", "dL_dW", "dL_db"):
            np.testing.assert_allclose(getattr(j, name), getattr(r, name), rtol=rtol, atol=rtol, err_msg=name)
    reference_memory = [np.shares_memory(a.W, b.W) for a in nets[0].layers for b in nets[0].layers]
    assert [np.shares_memory(a.W, b.W) for a in nets[1].layers for b in nets[1].layers] == reference_memory


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tie", TIES)
def test_weights_tied_through_views_train_as_in_the_reference(tie, dtype, products, rng):
    """The reference's ``W -= lr * dL_dW`` steps the shared memory once per layer, in the layers' order: the
    drop-in steps the user's arrays themselves in that order (it used to step a copy made when the plan was
    decided and write it back over the shared memory, erasing the other layer's step)."""
    nets = tied_pair(tie, dtype)
    X, Y = problem(rng, 60, num_inputs=20, num_outputs=16)
    results = [net.train(X, Y, X[:15], Y[:15].argmax(1), batch_size=10, num_epochs=2, learning_rate=0.1,
                         verbose=False) for net in nets]
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=tied_rtol(dtype, products))
    assert results[1][1] == results[0][1]
    assert_tied_state_equal(nets, dtype, products)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("tie", TIES)
def test_weights_tied_through_views_step_as_in_the_reference_call_by_call(tie, dtype, products, rng):
    nets = tied_pair(tie, dtype)
    X, Y = problem(rng, 60, num_inputs=20, num_outputs=16)
    for net in nets:
        for batch in range(6):
            x, y = X[batch * 10:(batch + 1) * 10], Y[batch * 10:(batch + 1) * 10]
            net.backward(net.derivated_loss_function(net.forward(x), y))
            net.optimize(0.1)
    assert_tied_state_equal(nets, dtype, products)
