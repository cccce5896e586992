"""The tutorial's own demo snippets, run unchanged on the drop-in and on the reference.

Each snippet is the seed's code (``../shared/seed``) with its prints turned into
a returned dict; the same ``np.random.seed`` must give the same numbers.
"""
import contextlib
import io
import warnings

import numpy as np
import pytest

import fastscratch
import fastscratch.reference
from fastscratch import tutorial

MODULES = [pytest.param(fastscratch.reference, id="reference"), pytest.param(fastscratch, id="jit")]


def perceptron_demo(m):
    input_size = 3
    step_function = lambda y: 0 if y <= 0 else 1  # noqa: E731  (the seed's own lambda)
    perceptron = m.Neuron(num_inputs=input_size, activation_function=step_function)
    x = np.random.rand(input_size).reshape(1, input_size)
    y = perceptron.forward(x)
    return {"W": perceptron.W.copy(), "b": perceptron.b.copy(), "x": x, "y": np.asarray(y)}


def layer_demo(m):
    input_size = 2
    num_neurons = 3
    relu_function = lambda y: np.maximum(y, 0)  # noqa: E731
    layer = m.FullyConnectedLayer(num_inputs=input_size, layer_size=num_neurons,
                                  activation_function=relu_function)
    x1 = np.random.uniform(-1, 1, 2).reshape(1, 2)
    x2 = np.random.uniform(-1, 1, 2).reshape(1, 2)
    y1 = layer.forward(x1)
    y2 = layer.forward(x2)
    x12 = np.concatenate((x1, x2))  # stack of input vectors, of shape `(2, 2)`
    y12 = layer.forward(x12)
    return {"W": layer.W.copy(), "b": layer.b.copy(), "x1": x1, "x2": x2, "y1": y1, "y2": y2, "y12": y12}


def mnist_like():
    """60 training and 20 test images in MNIST's format (28x28 uint8, about a fifth of the pixels lit, labels
    0..9), from a generator of their own: the script's loading, which draws nothing from np.random."""
    rng = np.random.default_rng(2024)

    def images(n):
        return (rng.integers(1, 256, (n, 28, 28)) * (rng.random((n, 28, 28)) < 0.2)).astype(np.uint8)

    return images(60), rng.integers(0, 10, 60).astype(np.uint8), images(20), rng.integers(0, 10, 20).astype(np.uint8)


def network_demo(m):
    """Section 4 of the seed, with a smaller network and run, on ``mnist_like`` in place of ``mnist``'s arrays."""
    X_train, y_train, X_test, y_test = mnist_like()
    num_classes = 10
    img_idx = np.random.randint(0, X_test.shape[0])  # drawn before the network, as the seed's script does
    X_train, X_test = X_train.reshape(-1, 28 * 28), X_test.reshape(-1, 28 * 28)
    X_train, X_test = X_train / 255., X_test / 255.
    y_train = np.eye(num_classes)[y_train]
    classifier = m.SimpleNetwork(num_inputs=X_train.shape[1], num_outputs=num_classes,
                                 hidden_layers_sizes=[8, 5])
    predictions = classifier.forward(X_train)
    loss_untrained = classifier.loss_function(predictions, y_train)
    accuracy_untrained = classifier.evaluate_accuracy(X_test, y_test)
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        losses, accuracies = classifier.train(X_train, y_train, X_test, y_test, batch_size=7, num_epochs=4)
    predicted_class = classifier.predict(np.expand_dims(X_test[img_idx], 0))
    return {"img_idx": img_idx, "predictions": predictions, "loss_untrained": loss_untrained,
            "accuracy_untrained": accuracy_untrained, "losses": np.array(losses),
            "accuracies": np.array(accuracies), "predicted_class": predicted_class, "log": log.getvalue(),
            **{f"W{i}": layer.W.copy() for i, layer in enumerate(classifier.layers)},
            **{f"b{i}": layer.b.copy() for i, layer in enumerate(classifier.layers)}}


def tutorial_function_demo(m, seed):
    """``network_demo`` by ``fastscratch.tutorial.run`` (which seeds np.random itself), its prints caught."""
    untrained = {}

    def on_start(setup):  # the untrained network's outputs, which the script keeps as `predictions`
        untrained["predictions"] = setup.network.forward(setup.X_train)

    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        result = tutorial.run(load=mnist_like, seed=seed,
                              backend="reference" if m is fastscratch.reference else "jit",
                              hidden_layers_sizes=[8, 5], batch_size=7, num_epochs=4, verbose=True,
                              on_start=on_start)
    return {"img_idx": result.image_index, "predictions": untrained["predictions"],
            "loss_untrained": result.untrained_loss, "accuracy_untrained": result.untrained_accuracy,
            "losses": np.array(result.losses), "accuracies": np.array(result.accuracies),
            "predicted_class": result.predicted_class, "log": log.getvalue(),
            **{f"W{i}": layer.W.copy() for i, layer in enumerate(result.network.layers)},
            **{f"b{i}": layer.b.copy() for i, layer in enumerate(result.network.layers)}}


def run(demo, module, seed):
    np.random.seed(seed)
    with warnings.catch_warnings():
        # The drop-in may warn once that the seed's lambdas take the slow path; that is expected here.
        warnings.simplefilter("ignore", UserWarning)
        return demo(module)


def assert_same(got, expected):
    assert got.keys() == expected.keys()
    for key in expected:
        if isinstance(expected[key], str):
            assert got[key] == expected[key]
            continue
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, atol=0, err_msg=key)


@pytest.mark.parametrize("seed", [0, 42])
@pytest.mark.parametrize("demo", [perceptron_demo, layer_demo, network_demo])
def test_drop_in_gives_the_reference_numbers(demo, seed):
    assert_same(run(demo, fastscratch, seed), run(demo, fastscratch.reference, seed))


@pytest.mark.parametrize("seed", [0, 42])
@pytest.mark.parametrize("module", MODULES)
def test_the_tutorial_function_is_the_seeds_script(module, seed):
    """Same draws, same numbers, bit for bit, and the script's lines around the tutorial's log."""
    expected = run(network_demo, module, seed)
    np.random.seed(seed + 1)  # a state the function must replace by seeding, as the script does
    got = tutorial_function_demo(module, seed)
    assert got["log"] == "Untrained : training loss = {:.6f} | val accuracy = {:.2f}%\n".format(
        expected["loss_untrained"], expected["accuracy_untrained"] * 100) + expected["log"] + \
        "Predicted class: {}; Correct class: {}\n".format(expected["predicted_class"], mnist_like()[3][got["img_idx"]])
    del got["log"], expected["log"]
    assert got.keys() == expected.keys()
    for key in expected:
        np.testing.assert_array_equal(got[key], expected[key], err_msg=key)


@pytest.mark.parametrize("module", MODULES)
def test_layer_demo_values(module):
    out = run(layer_demo, module, 1)
    relu = lambda z: np.maximum(z, 0)  # noqa: E731
    np.testing.assert_allclose(out["y1"], relu(out["x1"] @ out["W"] + out["b"]), rtol=1e-14)
    np.testing.assert_allclose(out["y2"], relu(out["x2"] @ out["W"] + out["b"]), rtol=1e-14)
    # The stacked batch gives the two single rows, and y1 kept from before is still x1's output.
    np.testing.assert_allclose(out["y12"], np.concatenate((out["y1"], out["y2"])), rtol=1e-14)
    assert out["y1"].shape == (1, 3) and out["y12"].shape == (2, 3)


@pytest.mark.parametrize("module", MODULES)
def test_perceptron_demo_values(module):
    out = run(perceptron_demo, module, 2)
    assert out["y"] == (0 if (out["x"] @ out["W"] + out["b"])[0] <= 0 else 1)
    assert out["W"].shape == (3,) and out["b"].shape == (1,)
    assert np.all(np.abs(out["W"]) <= 1) and np.all(np.abs(out["b"]) <= 1)


def assert_results_outlive_later_calls(model, x1, x2):
    """forward's and backward's results keep their values through later calls, and never share memory."""
    out1 = model.forward(x1)
    out1_value = out1.copy()
    out2 = model.forward(x2)
    np.testing.assert_array_equal(out1, out1_value)
    assert not np.shares_memory(out1, out2)
    dx = model.backward(np.ones_like(out2))
    dx_value = dx.copy()
    model.forward(x1)
    model.backward(np.full_like(out1, -2.0))
    np.testing.assert_array_equal(dx, dx_value)


@pytest.mark.parametrize("module", MODULES)
def test_returned_arrays_do_not_alias_internal_buffers(module, rng):
    """A user who keeps ``y1 = layer.forward(x1)`` still holds x1's output after more calls."""
    np.random.seed(4)
    layer = module.FullyConnectedLayer(2, 3, module.sigmoid, module.derivated_sigmoid)
    assert_results_outlive_later_calls(layer, rng.uniform(-1, 1, (1, 2)), rng.uniform(-1, 1, (1, 2)))

    np.random.seed(4)
    net = module.SimpleNetwork(2, 3, [4])
    X1, X2 = rng.uniform(-1, 1, (5, 2)), rng.uniform(-1, 1, (5, 2))
    assert_results_outlive_later_calls(net, X1, X2)
    losses, accuracies = net.train(X1, np.eye(3)[[0, 1, 2, 0, 1]], batch_size=5, num_epochs=2, verbose=False)
    losses_value = list(losses)
    net.train(X2, np.eye(3)[[2, 1, 0, 2, 1]], batch_size=5, num_epochs=2, verbose=False)
    assert losses == losses_value
