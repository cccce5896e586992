"""The tutorial's algorithm, checked from first principles.

Gradients against central finite differences, the initialisation order, the
log line, the batch walk (in order, last incomplete batch dropped), ``predict``
and ``Neuron``. Each test runs on the reference and on the top-level drop-in.
"""
import copy
import warnings

import numpy as np
import pytest

import fastscratch
import fastscratch.reference as ref
from fastscratch.functions import (cross_entropy, derivated_cross_entropy, derivated_loss_L2, derivated_relu,
                                   derivated_sigmoid, derivated_tanh, loss_L2, relu, sigmoid, tanh)

NETWORKS = [pytest.param(ref.SimpleNetwork, id="reference"), pytest.param(fastscratch.SimpleNetwork, id="jit")]
LAYERS = [pytest.param(ref.FullyConnectedLayer, id="reference"),
          pytest.param(fastscratch.FullyConnectedLayer, id="jit")]
NEURONS = [pytest.param(ref.Neuron, id="reference"), pytest.param(fastscratch.Neuron, id="jit")]

ACTIVATIONS = {"sigmoid": (sigmoid, derivated_sigmoid), "relu": (relu, derivated_relu),
               "tanh": (tanh, derivated_tanh)}

# The derivative functions are gradients of the *summed* loss (no division by
# the batch size): that is the convention the tutorial trains with.
SUMMED_LOSSES = {
    "l2": (lambda p, t: np.sum(np.square(p - t)), derivated_loss_L2),
    "cross_entropy": (lambda p, t: -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p)), derivated_cross_entropy),
}

H = 1e-6  # central-difference step; truncation error ~H**2, rounding ~eps/H


def central_difference(f, array):
    """d f() / d array by central differences, perturbing ``array`` in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + H
        up = f()
        array[index] = saved - H
        down = f()
        array[index] = saved
        grad[index] = (up - down) / (2 * H)
    return grad


def pre_activations(network, x):
    zs = []
    for layer in network.layers:
        z = x @ layer.W + layer.b
        zs.append(z)
        x = layer.activation_function(z)
    return zs


# -- the loss derivatives themselves -------------------------------------------------------

@pytest.mark.parametrize("loss", SUMMED_LOSSES)
def test_loss_derivative_is_the_gradient_of_the_summed_loss(loss, rng):
    summed, derivative = SUMMED_LOSSES[loss]
    pred = rng.uniform(0.05, 0.95, (4, 3))
    target = np.eye(3)[rng.integers(0, 3, 4)]
    numeric = central_difference(lambda: summed(pred, target), pred)
    np.testing.assert_allclose(derivative(pred, target), numeric, rtol=1e-6, atol=1e-8)


def test_loss_conventions_of_the_tutorial(rng):
    pred = rng.uniform(0.05, 0.95, (5, 3))
    target = np.eye(3)[rng.integers(0, 3, 5)]
    # loss_L2 divides the summed squared error by the batch size ...
    assert loss_L2(pred, target) == pytest.approx(np.sum((pred - target) ** 2) / 5, rel=1e-15)
    # ... its derivative is that of the sum, not of the mean,
    np.testing.assert_array_equal(derivated_loss_L2(pred, target), 2 * (pred - target))
    # and cross_entropy is the mean over every element.
    expected = -np.mean(target * np.log(pred) + (1 - target) * np.log(1 - pred))
    assert cross_entropy(pred, target) == pytest.approx(expected, rel=1e-15)


# -- network gradients against finite differences -----------------------------------------

GRADIENT_CASES = [pytest.param(act, "l2", id=f"{act}-l2") for act in ACTIVATIONS]
GRADIENT_CASES.append(pytest.param("sigmoid", "cross_entropy", id="sigmoid-cross_entropy"))


@pytest.mark.parametrize("hidden", [(), (5, 3)], ids=["no-hidden", "two-hidden"])
@pytest.mark.parametrize("activation, loss", GRADIENT_CASES)
@pytest.mark.parametrize("network_class", NETWORKS)
def test_backward_matches_finite_differences(network_class, activation, loss, hidden, rng):
    act, dact = ACTIVATIONS[activation]
    summed, derivative = SUMMED_LOSSES[loss]
    np.random.seed(3)
    net = network_class(4, 2, hidden, act, dact, ref.LOSSES[loss][0], derivative)
    x = rng.uniform(-1, 1, (3, 4))
    target = np.eye(2)[[0, 1, 1]]
    if activation == "relu":
        # Keep every pre-activation away from the kink so the loss is smooth where we probe it.
        for attempt in range(100):
            if min(np.abs(z).min() for z in pre_activations(net, x)) > 1e-3:
                break
            x = rng.uniform(-1, 1, (3, 4))
        else:
            pytest.fail("no input away from the ReLU kinks")

    pred = net.forward(x)
    dL_dx = net.backward(derivative(pred, target))
    analytic = [(layer.dL_dW.copy(), layer.dL_db.copy()) for layer in net.layers]

    def loss_value():
        return summed(net.forward(x), target)

    for layer, (dL_dW, dL_db) in zip(net.layers, analytic):
        np.testing.assert_allclose(dL_dW, central_difference(loss_value, layer.W), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(dL_db, central_difference(loss_value, layer.b), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dL_dx, central_difference(loss_value, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("layer_class", LAYERS)
def test_layer_backward_matches_finite_differences(layer_class, activation, rng):
    act, dact = ACTIVATIONS[activation]
    np.random.seed(5)
    layer = layer_class(3, 4, act, dact)
    x = rng.uniform(-1, 1, (2, 3))
    if activation == "relu":
        while np.abs(x @ layer.W + layer.b).min() < 1e-3:
            x = rng.uniform(-1, 1, (2, 3))
    upstream = rng.standard_normal((2, 4))  # dL/dy for L = sum(upstream * y)

    layer.forward(x)
    dL_dx = layer.backward(upstream)
    dL_dW, dL_db = layer.dL_dW.copy(), layer.dL_db.copy()

    def loss_value():
        return np.sum(upstream * layer.forward(x))

    np.testing.assert_allclose(dL_dW, central_difference(loss_value, layer.W), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dL_db, central_difference(loss_value, layer.b), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dL_dx, central_difference(loss_value, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_derivatives_are_written_in_terms_of_the_output(activation, rng):
    act, dact = ACTIVATIONS[activation]
    z = rng.uniform(-2, 2, 50)
    z = z[np.abs(z) > 1e-3]  # away from the ReLU kink
    numeric = (act(z + H) - act(z - H)) / (2 * H)
    np.testing.assert_allclose(dact(act(z)), numeric, rtol=1e-6, atol=1e-9)


# -- initialisation ------------------------------------------------------------------------

@pytest.mark.parametrize("hidden", [(), (7,), (64, 32), (3, 1, 2)])
@pytest.mark.parametrize("network_class", NETWORKS)
def test_weights_are_drawn_layer_by_layer_W_then_b(network_class, hidden):
    np.random.seed(1234)
    net = network_class(6, 4, list(hidden))
    np.random.seed(1234)
    sizes = [6, *hidden, 4]
    assert len(net.layers) == len(sizes) - 1
    for layer, n_in, n_out in zip(net.layers, sizes[:-1], sizes[1:]):
        W = np.random.standard_normal((n_in, n_out))
        b = np.random.standard_normal(n_out)
        np.testing.assert_array_equal(layer.W, W)
        np.testing.assert_array_equal(layer.b, b)
        assert layer.W.dtype == np.float64 and layer.size == n_out
    # Nothing else was drawn: the global stream continues where the hand-drawn one does.
    np.random.seed(1234)
    network_class(6, 4, list(hidden))
    after = np.random.standard_normal(3)
    np.random.seed(1234)
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        np.random.standard_normal((n_in, n_out))
        np.random.standard_normal(n_out)
    np.testing.assert_array_equal(after, np.random.standard_normal(3))


def test_default_hidden_layers_are_64_and_32():
    np.random.seed(0)
    net = ref.SimpleNetwork(784, 10)
    assert [(layer.W.shape, layer.b.shape) for layer in net.layers] == [
        ((784, 64), (64,)), ((64, 32), (32,)), ((32, 10), (10,))]
    assert net.loss_function is loss_L2 and net.derivated_loss_function is derivated_loss_L2
    assert net.layers[0].activation_function is sigmoid
    assert net.layers[0].derivated_activation_function is derivated_sigmoid


# -- training loop: log line, batch walk ----------------------------------------------------

def seed_train(net, X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate):
    """The tutorial's train loop, written out on the layers' own arrays with plain NumPy."""
    Ws = [layer.W for layer in net.layers]
    bs = [layer.b for layer in net.layers]
    act, dact = net.layers[0].activation_function, net.layers[0].derivated_activation_function
    losses, accuracies = [], []
    num_batches_per_epoch = len(X_train) // batch_size
    for _ in range(num_epochs):
        epoch_loss = 0
        for b in range(num_batches_per_epoch):
            x = X_train[b * batch_size: (b + 1) * batch_size]
            targets = y_train[b * batch_size: (b + 1) * batch_size]
            xs, ys = [], []
            for W, bias in zip(Ws, bs):
                xs.append(x)
                x = act(np.dot(x, W) + bias)
                ys.append(x)
            epoch_loss += net.loss_function(x, targets)
            dL_dy = net.derivated_loss_function(x, targets)
            grads = []
            for W, x_in, y in zip(reversed(Ws), reversed(xs), reversed(ys)):
                dL_dz = dL_dy * dact(y)
                grads.append((np.dot(x_in.T, dL_dz), np.dot(np.ones(dL_dz.shape[0]), dL_dz)))
                dL_dy = np.dot(dL_dz, W.T)
            for W, bias, (dW, db) in zip(Ws, bs, reversed(grads)):
                W -= learning_rate * dW
                bias -= learning_rate * db
        losses.append(epoch_loss / num_batches_per_epoch)
        if X_val is not None:
            correct = 0
            for i in range(len(X_val)):
                out = X_val[i]
                for W, bias in zip(Ws, bs):
                    out = act(np.dot(out, W) + bias)
                correct += int(np.argmax(out) == y_val[i])
            accuracies.append(correct / len(X_val))
    return losses, accuracies


@pytest.mark.parametrize("network_class", NETWORKS)
def test_train_walks_batches_in_order_and_drops_the_last_incomplete_one(network_class, rng):
    X = rng.uniform(0, 1, (47, 5))  # 47 = 4 batches of 10, 7 samples dropped
    y = np.eye(3)[rng.integers(0, 3, 47)]
    X_val, y_val = rng.uniform(0, 1, (13, 5)), rng.integers(0, 3, 13)
    np.random.seed(7)
    net = network_class(5, 3, [6, 4])
    hand = copy.deepcopy(net)
    expected = seed_train(hand, X, y, X_val, y_val, 10, 3, 0.5)

    losses, accuracies = net.train(X, y, X_val, y_val, batch_size=10, num_epochs=3, learning_rate=0.5,
                                   verbose=False)
    np.testing.assert_allclose(losses, expected[0], rtol=1e-12)
    assert accuracies == expected[1]
    for layer, hand_layer in zip(net.layers, hand.layers):
        np.testing.assert_allclose(layer.W, hand_layer.W, rtol=1e-12)
        np.testing.assert_allclose(layer.b, hand_layer.b, rtol=1e-12)

    # The 7 dropped samples never matter: train on the first 40 only and get the same network.
    np.random.seed(7)
    short = network_class(5, 3, [6, 4])
    short_losses, _ = short.train(X[:40], y[:40], batch_size=10, num_epochs=3, learning_rate=0.5,
                                  verbose=False)
    np.testing.assert_array_equal(short_losses, losses)
    for layer, short_layer in zip(net.layers, short.layers):
        np.testing.assert_array_equal(layer.W, short_layer.W)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_log_line_format(network_class, rng, capsys):
    X = rng.uniform(0, 1, (20, 4))
    y = np.eye(2)[rng.integers(0, 2, 20)]
    X_val, y_val = rng.uniform(0, 1, (8, 4)), rng.integers(0, 2, 8)
    np.random.seed(0)
    net = network_class(4, 2, [3])
    capsys.readouterr()
    losses, accuracies = net.train(X, y, X_val, y_val, batch_size=5, num_epochs=3, learning_rate=0.1)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["Epoch {:4d}: training loss = {:.6f} | val accuracy = {:.2f}%".format(i, loss, acc * 100)
                     for i, (loss, acc) in enumerate(zip(losses, accuracies))]
    assert lines[0].startswith("Epoch    0: training loss = ")
    assert all(acc * 8 == round(acc * 8) for acc in accuracies)

    # Without a validation set the accuracy is NaN and printed as such; no accuracies are returned.
    losses, accuracies = net.train(X, y, batch_size=5, num_epochs=2, learning_rate=0.1)
    assert accuracies == []
    assert capsys.readouterr().out.splitlines() == [
        "Epoch {:4d}: training loss = {:.6f} | val accuracy = nan%".format(i, loss) for i, loss in enumerate(losses)]

    net.train(X, y, batch_size=5, num_epochs=2, learning_rate=0.1, verbose=False)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("network_class", NETWORKS)
def test_zero_epochs_changes_nothing(network_class, rng):
    np.random.seed(0)
    net = network_class(4, 2, [3])
    before = copy.deepcopy([(layer.W, layer.b) for layer in net.layers])
    assert net.train(rng.uniform(0, 1, (6, 4)), np.eye(2)[[0, 1] * 3], batch_size=2, num_epochs=0) == ([], [])
    for layer, (W, b) in zip(net.layers, before):
        np.testing.assert_array_equal(layer.W, W)
        np.testing.assert_array_equal(layer.b, b)


# -- predict and evaluate_accuracy ----------------------------------------------------------

@pytest.mark.parametrize("network_class", NETWORKS)
def test_predict_on_1d_and_row_inputs(network_class, rng):
    np.random.seed(11)
    net = network_class(5, 4, [6])
    X = rng.uniform(-1, 1, (12, 5))
    outputs = net.forward(X).copy()
    for i in range(len(X)):
        expected = np.argmax(outputs[i])
        one_d, row = net.predict(X[i]), net.predict(np.expand_dims(X[i], 0))
        assert one_d == row == expected
        assert np.ndim(one_d) == 0 and np.issubdtype(np.asarray(one_d).dtype, np.integer)
        assert net.forward(X[i]).shape == (4,) and net.forward(X[i:i + 1]).shape == (1, 4)
    np.testing.assert_array_equal(net.predict(X), np.argmax(outputs, axis=1))
    labels = rng.integers(0, 4, 12)
    assert net.evaluate_accuracy(X, labels) == np.mean(np.argmax(outputs, axis=1) == labels)
    assert net.evaluate_accuracy(X, np.eye(4)[labels]) == net.evaluate_accuracy(X, labels)


# -- Neuron --------------------------------------------------------------------------------

@pytest.mark.parametrize("neuron_class", NEURONS)
def test_neuron(neuron_class, rng):
    np.random.seed(21)
    neuron = neuron_class(num_inputs=3, activation_function=sigmoid)
    np.random.seed(21)
    W = np.random.uniform(size=3, low=-1., high=1.)
    b = np.random.uniform(size=1, low=-1., high=1.)
    np.testing.assert_array_equal(neuron.W, W)
    np.testing.assert_array_equal(neuron.b, b)
    assert neuron.W.shape == (3,) and neuron.b.shape == (1,)
    assert neuron.activation_function is sigmoid

    x = rng.uniform(0, 1, (1, 3))
    y = neuron.forward(x)
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-(x @ W + b))), rtol=1e-14)
    assert y.shape == (1,)
    np.testing.assert_allclose(neuron.forward(x[0]), y, rtol=1e-14)

    with warnings.catch_warnings():  # the drop-in warns that a lambda takes its slow path
        warnings.simplefilter("ignore", UserWarning)
        step = neuron_class(num_inputs=3, activation_function=lambda v: 0 if v <= 0 else 1)
    for _ in range(10):
        x = rng.uniform(-1, 1, (1, 3))
        assert step.forward(x) == (0 if (x @ step.W + step.b)[0] <= 0 else 1)


ALONE = """
import sys, tempfile, os
import numpy as np
import fastscratch.reference as ref
loaded = lambda: [m for m in sys.modules if m == 'numba' or m.startswith('fastscratch.kernels')]
print(loaded())
np.random.seed(0)
net = ref.SimpleNetwork(6, 3, [4])
X = np.random.rand(40, 6)
losses, _ = net.train(X, np.eye(3)[np.arange(40) % 3], X, np.arange(40) % 3, batch_size=10, num_epochs=2,
                      verbose=False)
path = os.path.join(tempfile.mkdtemp(), "model.npz")
net.save(path)
again = ref.SimpleNetwork.load(path)
assert again.predict(X[0]) == net.predict(X[0]) and len(losses) == 2
print(loaded())
"""


def test_the_oracle_loads_no_compiled_code():
    """``import fastscratch.reference`` (and training, saving and loading with it) loads neither Numba nor the
    kernels: the oracle is NumPy alone, and editing the drop-in cannot change it."""
    import subprocess
    import sys
    one_liner = ("import sys, fastscratch.reference; print([m for m in sys.modules if m == 'numba' or "
                 "m.startswith('fastscratch.kernels')])")
    for code in (one_liner, ALONE):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert set(result.stdout.split("\n")[:-1]) == {"[]"}


def test_the_drop_in_is_imported_at_its_first_use():
    """The package's drop-in names resolve on first access (``from fastscratch import SimpleNetwork`` too) and
    ``dir`` lists them; a broken Numba shows as the ImportError it is, not as a missing name."""
    import subprocess
    import sys
    code = """
import sys
sys.modules['numba'] = None  # an import of numba now raises ImportError
import fastscratch
assert 'SimpleNetwork' in dir(fastscratch) and 'sigmoid' in dir(fastscratch)
try:
    from fastscratch import SimpleNetwork
except ImportError as error:
    print(type(error).__name__, error)
try:
    fastscratch.no_such_name
except AttributeError as error:
    print(error)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["ModuleNotFoundError import of numba halted; None in sys.modules",
                                          "module 'fastscratch' has no attribute 'no_such_name'"]
    assert fastscratch.SimpleNetwork.__module__ == "fastscratch.network" and "FallbackWarning" in dir(fastscratch)
