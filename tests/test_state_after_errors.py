"""After an error part-way through ``optimize``, ``backward``, ``forward`` or ``train``, the network is left as the
reference leaves it: every layer's ``W``, ``b``, ``x``, ``y``, ``dL_dW`` and ``dL_db``.

The errors: a parameter made unwritable (before the call, or from a ``train`` callback), and each user
callable (an activation, its derivative, the loss, its derivative, the callback) raising, at each layer
and at several points of a call."""
import numpy as np
import pytest

import fastscratch
from twins import pair, problem

pytestmark = pytest.mark.filterwarnings("ignore::fastscratch.FallbackWarning")  # the raising wrappers run via NumPy
ATTRIBUTES = ("W", "b", "x", "y", "dL_dW", "dL_db")
RTOL = {np.float64: 1e-12, np.float32: 2e-6}


class Boom(Exception):
    pass


class RaisesAt:
    """``function``, raising ``Boom`` at its ``at``-th call."""

    def __init__(self, function, at):
        self.function, self.at, self.calls = function, at, 0

    def __call__(self, *args):
        self.calls += 1
        if self.calls == self.at:
            raise Boom(f"call {self.at}")
        return self.function(*args)


def state(net):
    return [{name: None if getattr(layer, name) is None else np.array(getattr(layer, name)) for name in ATTRIBUTES}
            for layer in net.layers]


def assert_same_state(nets, dtype):
    (reference_state, state_after) = (state(net) for net in nets)
    for i, (expected, got) in enumerate(zip(reference_state, state_after)):
        for name in ATTRIBUTES:
            if expected[name] is None:
                assert got[name] is None, f"layers[{i}].{name}"
            else:
                np.testing.assert_allclose(got[name], expected[name], rtol=RTOL[dtype], atol=RTOL[dtype],
                                           err_msg=f"layers[{i}].{name}")


def raised(call, net):
    """The type of what ``call(net)`` raised."""
    with pytest.raises(Exception) as info:
        call(net)
    return type(info.value)


def networks(dtype):
    return pair((6, 5), dtype=dtype)


def data(rng):
    X, Y = problem(rng, 60)
    return X, Y, X[:5], Y[:5].argmax(1)


def steps(net, X, Y, count=4, epsilon=0.1):
    """The tutorial's loop by hand, one batch of 10 rows a step."""
    for batch in range(count):
        x, y = X[batch * 10:(batch + 1) * 10], Y[batch * 10:(batch + 1) * 10]
        net.backward(net.derivated_loss_function(net.forward(x), y))
        net.optimize(epsilon)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("parameter", ["W", "b"])
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_a_read_only_parameter_fails_optimize_where_the_reference_does(layer, parameter, dtype, rng):
    """The reference steps the layers before it, then ``W -= ...`` (``b -= ...`` after W's step) fails: the
    drop-in used to have stepped that layer's b already when its W was read-only."""
    X, Y, _, _ = data(rng)
    nets = networks(dtype)
    errors = []
    for net in nets:
        steps(net, X, Y, count=2)
        net.backward(net.derivated_loss_function(net.forward(X[20:30]), Y[20:30]))
        getattr(net.layers[layer], parameter).setflags(write=False)
        errors.append(raised(lambda n: n.optimize(0.1), net))
    assert errors == [ValueError, ValueError]
    assert_same_state(nets, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("parameter", ["W", "b"])
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_a_lone_layer_with_a_read_only_parameter_fails_as_the_reference(layer, parameter, dtype, rng):
    X, Y, _, _ = data(rng)
    nets = networks(dtype)
    for net in nets:
        steps(net, X, Y, count=1)
        target = net.layers[layer]
        getattr(target, parameter).setflags(write=False)
        with pytest.raises(ValueError):
            target.optimize(0.1)
    assert_same_state(nets, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("when", ["before train", "from the callback"])
@pytest.mark.parametrize("parameter", ["W", "b"])
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_a_read_only_parameter_fails_train_where_the_reference_does(layer, parameter, when, dtype, rng):
    """Made read-only from the callback, the next epoch's first step fails: the drop-in's compiled epochs
    give way to the reference's order."""
    X, Y, X_val, y_val = data(rng)
    nets = networks(dtype)
    errors = []
    for net in nets:
        def freeze(epoch, loss, accuracy, net=net):
            if epoch == 1:
                getattr(net.layers[layer], parameter).setflags(write=False)
        if when == "before train":
            freeze(1, None, None)
        errors.append(raised(lambda n: n.train(X, Y, X_val, y_val, batch_size=10, num_epochs=3, learning_rate=0.1,
                                               verbose=False, callback=freeze), net))
    assert errors == [ValueError, ValueError]
    assert_same_state(nets, dtype)


def with_raising(net, role, layer, at):
    """Give ``net`` (or its ``layer``) a wrapper of its ``role`` function that raises at its ``at``-th call."""
    owner = net if role in ("loss_function", "derivated_loss_function") else net.layers[layer]
    setattr(owner, role, RaisesAt(getattr(owner, role), at))


ROLES = ["activation_function", "derivated_activation_function", "loss_function", "derivated_loss_function"]


def positions(roles):
    """(role, layer) pairs: each layer for an activation or its derivative, the network for a loss."""
    return [(role, layer) for role in roles for layer in ([None] if "loss" in role else [0, 1, 2])]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("at", [1, 3])
@pytest.mark.parametrize("role, layer", positions(ROLES))
def test_a_raising_callable_leaves_the_tutorials_loop_as_the_reference_does(role, layer, at, dtype, rng):
    """The per-call API by hand: forward, the loss derivative, backward, optimize, each step's error raised
    where the reference raises it, with the layers' state as the reference leaves it."""
    X, Y, _, _ = data(rng)
    nets = networks(dtype)
    errors = []
    for net in nets:
        with_raising(net, role, layer, at)

        def loop(net):
            for batch in range(4):
                x, y = X[batch * 10:(batch + 1) * 10], Y[batch * 10:(batch + 1) * 10]
                predictions = net.forward(x)
                net.loss_function(predictions, y)
                net.backward(net.derivated_loss_function(predictions, y))
                net.optimize(0.1)
        errors.append(raised(loop, net))
    assert errors == [Boom, Boom]
    assert_same_state(nets, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("at", [3, 9])
@pytest.mark.parametrize("role, layer", positions(ROLES))
def test_a_raising_callable_leaves_train_as_the_reference_does(role, layer, at, dtype, rng):
    """In train: six batches and five validation rows an epoch, so an activation's 3rd call is in epoch 0's
    third batch and its 9th in epoch 0's evaluation; a derivative's or a loss's 9th in epoch 1."""
    X, Y, X_val, y_val = data(rng)
    nets = networks(dtype)
    errors = []
    for net in nets:
        with_raising(net, role, layer, at)
        errors.append(raised(lambda n: n.train(X, Y, X_val, y_val, batch_size=10, num_epochs=3, learning_rate=0.1,
                                               verbose=False), net))
    assert errors == [Boom, Boom]
    assert_same_state(nets, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("epoch", [0, 1])
@pytest.mark.parametrize("custom", [False, True], ids=["built-in functions", "custom activation"])
def test_a_raising_callback_leaves_train_as_the_reference_does(custom, epoch, dtype, rng):
    """The callback raises after an epoch: compiled (built-ins) or batch by batch, the last batch's step and
    the last validation row's x and y stay on the layers, as the reference leaves them."""
    X, Y, X_val, y_val = data(rng)
    nets = networks(dtype)
    for net in nets:
        if custom:
            net.layers[1].activation_function = RaisesAt(fastscratch.sigmoid, 0)  # never raises

        def callback(e, loss, accuracy):
            if e == epoch:
                raise Boom("callback")
        with pytest.raises(Boom):
            net.train(X, Y, X_val, y_val, batch_size=10, num_epochs=3, learning_rate=0.1, verbose=False,
                      callback=callback)
    assert_same_state(nets, dtype)
