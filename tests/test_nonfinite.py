"""A loss that becomes NaN or inf stops training with NonFiniteLossError, before that batch's update.

The error names the epoch and batch and suggests a smaller learning rate; the
network keeps the (finite) weights it had before the bad batch, equal to a
network trained for exactly that many batches, and stays usable.
"""
import pickle
import warnings

import numpy as np
import pytest

import fastscratch
import fastscratch.reference as ref
from fastscratch.exceptions import NonFiniteLossError

NETWORKS = [pytest.param(ref.SimpleNetwork, id="reference"), pytest.param(fastscratch.SimpleNetwork, id="jit")]

BATCH = 4


def relu_net(network_class, seed=1):
    np.random.seed(seed)
    return network_class(5, 3, [6], fastscratch.relu, fastscratch.derivated_relu)


def problem(n=24, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 5)), np.eye(3)[rng.integers(0, 3, n)]


def train_quietly(net, *args, **kwargs):
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return net.train(*args, verbose=False, **kwargs)


def replay(make, X, y, epoch, batch, learning_rate, batch_size=BATCH):
    net = make()
    losses, _ = train_quietly(net, X, y, batch_size=batch_size, num_epochs=epoch, learning_rate=learning_rate)
    if batch:
        try:
            train_quietly(net, X[:batch * batch_size], y[:batch * batch_size], batch_size=batch_size, num_epochs=1,
                          learning_rate=learning_rate)
        except NonFiniteLossError as err:  # those batches' last step overflowed: the end of train says so
            assert (err.epoch, err.batch, err.weights_finite) == (1, 0, False)
    return net, losses


def assert_stopped_before_the_update(make, net, err, X, y, learning_rate, batch_size=BATCH):
    assert isinstance(err, FloatingPointError)
    message = str(err)
    assert f"epoch {err.epoch}" in message and f"batch {err.batch}" in message
    assert "learning_rate" in message
    assert not np.isfinite(err.loss)
    assert len(err.losses) == err.epoch
    expected, losses = replay(make, X, y, err.epoch, err.batch, learning_rate, batch_size)
    np.testing.assert_allclose(err.losses, losses, rtol=1e-12)
    for layer, expected_layer in zip(net.layers, expected.layers):
        assert np.isfinite(layer.W).all() and np.isfinite(layer.b).all()
        np.testing.assert_array_equal(layer.W, expected_layer.W)
        np.testing.assert_array_equal(layer.b, expected_layer.b)


# The drop-in trains small batches in compiled epochs and, here, large ones (> 127) through the reference's loop.
@pytest.mark.parametrize("batch_size", [BATCH, 130], ids=["small-batches", "large-batches"])
@pytest.mark.parametrize("network_class", NETWORKS)
def test_inputs_that_overflow_the_loss(network_class, batch_size, blas_past_127_rows):
    X, y = problem(6 * batch_size)
    X[2 * batch_size + 1] = 1e200  # finite, but its squared error is not: epoch 0, batch 2
    net = relu_net(network_class)
    with pytest.raises(NonFiniteLossError) as info:
        train_quietly(net, X, y, batch_size=batch_size, num_epochs=3, learning_rate=1e-3)
    err = info.value
    assert (err.epoch, err.batch) == (0, 2)
    assert_stopped_before_the_update(lambda: relu_net(network_class), net, err, X, y, 1e-3, batch_size)


def cross_entropy_net(network_class, hidden=(6,), seed=1):
    np.random.seed(seed)
    return network_class(5, 3, list(hidden), fastscratch.sigmoid, fastscratch.derivated_sigmoid,
                         fastscratch.cross_entropy, fastscratch.derivated_cross_entropy)


@pytest.mark.parametrize("learning_rate", [10.0, 1e3, 1e150])
@pytest.mark.parametrize("network_class", NETWORKS)
def test_huge_learning_rate(network_class, learning_rate):
    """Big steps saturate the output sigmoid to exactly 0 or 1, and cross-entropy takes log(0)."""
    X, y = problem()
    net = cross_entropy_net(network_class)
    with pytest.raises(NonFiniteLossError) as info:
        train_quietly(net, X, y, batch_size=BATCH, num_epochs=50, learning_rate=learning_rate)
    assert_stopped_before_the_update(lambda: cross_entropy_net(network_class), net, info.value, X, y,
                                     learning_rate)
    assert info.value.weights_finite in (True, None)
    # Still usable: it predicts, and the saturated outputs are finite (training on would hit log(0) again).
    with np.errstate(over="ignore"):  # saturating sigmoids overflow exp, as NumPy warns
        assert np.isfinite(net.forward(X)).all() and 0 <= net.predict(X[0]) < 3


@pytest.mark.parametrize("network_class", NETWORKS)
def test_learning_rate_at_the_float_maximum_is_reported_honestly(network_class):
    """lr * gradient overflows in the first update while that batch's loss was finite.

    The next batch's loss is NaN; the error is still raised before that batch's
    update, but the kept weights are not finite, and the message must say so.
    """
    X, y = problem()
    net = relu_net(network_class)
    with pytest.raises(NonFiniteLossError) as info:
        train_quietly(net, X, y, batch_size=BATCH, num_epochs=2, learning_rate=1e308)
    err = info.value
    assert (err.epoch, err.batch) == (0, 1)
    finite = all(np.isfinite(layer.W).all() and np.isfinite(layer.b).all() for layer in net.layers)
    assert not finite
    assert err.weights_finite is False
    assert "already made some of them non-finite" in str(err)
    expected, _ = replay(lambda: relu_net(network_class), X, y, 0, 1, 1e308)
    for layer, expected_layer in zip(net.layers, expected.layers):
        np.testing.assert_array_equal(layer.W, expected_layer.W)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_saturated_sigmoid_under_cross_entropy(network_class):
    X, y = problem()
    X[BATCH:] *= 1e4  # from batch 1 on, the (only) sigmoid layer outputs exactly 0 or 1: log(0)

    def make():
        return cross_entropy_net(network_class, hidden=(), seed=2)

    net = make()
    with pytest.raises(NonFiniteLossError) as info:
        train_quietly(net, X, y, batch_size=BATCH, num_epochs=2, learning_rate=0.1)
    assert (info.value.epoch, info.value.batch) == (0, 1)
    assert_stopped_before_the_update(make, net, info.value, X, y, 0.1)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_custom_loss_returning_nan(network_class):
    X, y = problem()
    calls = []

    def loss(pred, target):
        calls.append(1)
        return np.nan if len(calls) == 4 else fastscratch.loss_L2(pred, target)

    def make():
        np.random.seed(3)
        with warnings.catch_warnings():  # the drop-in warns that a custom loss takes its Python loop
            warnings.simplefilter("ignore", UserWarning)
            return network_class(5, 3, [4], loss_function=loss,
                                 derivated_loss_function=fastscratch.derivated_loss_L2)

    net = make()
    with pytest.raises(NonFiniteLossError) as info:
        train_quietly(net, X, y, batch_size=BATCH, num_epochs=2, learning_rate=0.1)
    assert (info.value.epoch, info.value.batch) == (0, 3)
    calls.clear()
    calls.extend([None] * 100)  # the replay must not hit the NaN
    assert_stopped_before_the_update(make, net, info.value, X, y, 0.1)


def test_non_finite_loss_error_pickles():
    """Exceptions cross process boundaries (multiprocessing, joblib) by pickle."""
    original = NonFiniteLossError(3, 5, float("inf"), [0.5, 0.4, 0.3], [0.1, 0.2, 0.3], weights_finite=False)
    err = pickle.loads(pickle.dumps(original))
    assert type(err) is NonFiniteLossError and isinstance(err, FloatingPointError)
    assert (err.epoch, err.batch, err.loss, err.losses, err.accuracies, err.weights_finite) == (
        3, 5, float("inf"), [0.5, 0.4, 0.3], [0.1, 0.2, 0.3], False)
    assert str(err) == str(original)
