"""``fastscratch.tutorial.run``: the seed's MNIST script as a function, its hooks, its stops and its resumption.

The oracle is the script written out here (and, on small data, in
``test_seed_demo.py``), run with the same network class: the function must
give its numbers bit for bit.
"""
import weakref

import numpy as np
import pytest

import fastscratch
from fastscratch import _interrupt, reference, tutorial
from fastscratch.datasets import prepare
from fastscratch.exceptions import TrainingInterrupted

BACKENDS = {"jit": fastscratch.SimpleNetwork, "reference": reference.SimpleNetwork}
DTYPES = [pytest.param(np.float64, id="float64"), pytest.param(np.float32, id="float32")]


def script(mnist_raw, network_class, dtype, epochs, hidden=(64, 32), batch_size=30, seed=42):
    """Section 4 of the seed, written out: seed, draw the test image's index, prepare, build, untrained figures,
    train, predict."""
    np.random.seed(seed)
    X_train, y_train, X_test, y_test = mnist_raw  # loading draws nothing from np.random
    img_idx = np.random.randint(0, X_test.shape[0])
    X_train, Y_train, X_test, y_test = prepare(X_train, y_train, X_test, y_test, dtype=dtype)
    network = network_class(num_inputs=X_train.shape[1], num_outputs=10, hidden_layers_sizes=list(hidden),
                            dtype=dtype)
    loss_untrained = network.loss_function(network.forward(X_train), Y_train)
    accuracy_untrained = network.evaluate_accuracy(X_test, y_test)
    losses, accuracies = network.train(X_train, Y_train, X_test, y_test, batch_size=batch_size, num_epochs=epochs,
                                       verbose=False)
    predicted_class = network.predict(np.expand_dims(X_test[img_idx], 0))
    return {"image_index": img_idx, "untrained_loss": loss_untrained, "untrained_accuracy": accuracy_untrained,
            "losses": losses, "accuracies": accuracies, "predicted_class": predicted_class, "network": network}


def assert_same_network(got, expected):
    assert type(got) is type(expected) and got.dtype == expected.dtype
    for a, b in zip(got.layers, expected.layers, strict=True):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)


def small_mnist(mnist_raw, n_train=3000, n_test=500):
    """A loader of the first images of each set (real MNIST, small enough for many runs)."""
    X_train, y_train, X_test, y_test = mnist_raw
    return lambda: (X_train[:n_train], y_train[:n_train], X_test[:n_test], y_test[:n_test])


@pytest.mark.parametrize("dtype", DTYPES)
def test_run_is_the_seeds_script_on_mnist(mnist_raw, dtype):
    expected = script(mnist_raw, fastscratch.SimpleNetwork, dtype, epochs=2)
    np.random.seed(7)  # a state run must replace by seeding, as the script does
    result = tutorial.run(load=lambda: mnist_raw, dtype=dtype, num_epochs=2)
    for key in ("image_index", "untrained_loss", "untrained_accuracy", "losses", "accuracies", "predicted_class"):
        assert getattr(result, key) == expected[key], key
    assert_same_network(result.network, expected["network"])
    assert result.true_class == mnist_raw[3][result.image_index]
    assert (result.model_epoch, result.stopped, result.stopped_at) == (2, None, None)


@pytest.mark.parametrize("backend", ["jit", "reference"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_a_resumed_run_is_the_uninterrupted_run_bit_for_bit(mnist_raw, backend, dtype):
    settings = dict(load=small_mnist(mnist_raw), dtype=dtype, backend=backend, hidden_layers_sizes=[16])
    straight = tutorial.run(num_epochs=3, **settings)
    first = tutorial.run(num_epochs=1, **settings)
    epochs = []
    np.random.seed(7)  # nothing may be drawn: a resumed run takes its image and weights from the earlier one
    resumed = tutorial.run(num_epochs=3, resume=tutorial.Resume(*(getattr(first, name) for name in (
        "network", "image_index", "untrained_loss", "untrained_accuracy", "losses", "accuracies"))),
        callback=lambda epoch, *_: epochs.append(epoch), **settings)
    assert epochs == [1, 2]  # counted over the whole run
    for key in ("image_index", "untrained_loss", "untrained_accuracy", "losses", "accuracies", "predicted_class",
                "model_epoch"):
        assert getattr(resumed, key) == getattr(straight, key), key
    assert_same_network(resumed.network, straight.network)
    again = tutorial.run(num_epochs=4, resume=resumed, **settings)  # a Result resumes as well
    assert again.losses[:3] == straight.losses and len(again.losses) == 4


def test_the_hooks_see_the_script_as_it_goes(mnist_raw):
    X_train, y_train, X_test, y_test = mnist_raw
    seen, epochs = {}, []

    def load():  # arrays only run holds, to see them freed once prepared
        arrays = X_train[:3000].copy(), y_train[:3000].copy(), X_test[:500].copy(), y_test[:500].copy()
        seen["raw"] = [weakref.ref(a) for a in arrays]
        return arrays

    def on_start(setup):
        seen["setup"] = setup
        seen["alive"] = [ref() is not None for ref in seen["raw"]]
        seen["weights"] = [layer.W.copy() for layer in setup.network.layers]

    result = tutorial.run(load=load, hidden_layers_sizes=[16], num_epochs=2, on_start=on_start,
                          callback=lambda *args: epochs.append(args))
    setup = seen["setup"]
    assert seen["alive"] == [False] * 4  # only the shown image was kept
    assert setup.network is result.network and setup.epochs_done == 0
    assert setup.image_index == result.image_index
    np.testing.assert_array_equal(setup.image, X_test[result.image_index])
    assert setup.true_class == result.true_class == y_test[result.image_index]
    assert (setup.untrained_loss, setup.untrained_accuracy) == (result.untrained_loss, result.untrained_accuracy)
    assert setup.X_train.shape == (3000, 784) and setup.Y_train.shape == (3000, 10) and setup.y_test.shape == (500,)
    assert epochs == [(0, result.losses[0], result.accuracies[0]), (1, result.losses[1], result.accuracies[1])]
    np.random.seed(42)
    np.random.randint(0, 500)
    untrained = fastscratch.SimpleNetwork(784, 10, [16])  # on_start came before any training
    for W, layer in zip(seen["weights"], untrained.layers):
        np.testing.assert_array_equal(W, layer.W)


def test_verbose_prints_the_scripts_lines(mnist_raw, capsys):
    result = tutorial.run(load=small_mnist(mnist_raw), hidden_layers_sizes=[16], num_epochs=2, verbose=True)
    assert capsys.readouterr().out.splitlines() == [
        "Untrained : training loss = {:.6f} | val accuracy = {:.2f}%".format(
            result.untrained_loss, result.untrained_accuracy * 100),
        *(reference.epoch_line(i, loss, accuracy)
          for i, (loss, accuracy) in enumerate(zip(result.losses, result.accuracies))),
        f"Predicted class: {result.predicted_class}; Correct class: {result.true_class}"]


def test_untrained_false_skips_the_untrained_figures_and_draws_the_same(mnist_raw):
    with_figures = tutorial.run(load=small_mnist(mnist_raw), hidden_layers_sizes=[16], num_epochs=1)
    without = tutorial.run(load=small_mnist(mnist_raw), hidden_layers_sizes=[16], num_epochs=1, untrained=False)
    assert (without.untrained_loss, without.untrained_accuracy) == (None, None)
    assert without.losses == with_figures.losses and without.image_index == with_figures.image_index


def interrupt_at_check(monkeypatch, nth):
    """Ctrl-C as train's ``nth`` poll of its interrupt flag comes (the reference polls before every batch)."""
    real_check = _interrupt._Flag.check
    count = [0]

    def check(self, *args):
        count[0] += 1
        if count[0] == nth:
            self.requested = True
        return real_check(self, *args)

    monkeypatch.setattr(_interrupt._Flag, "check", check)


def test_ctrl_c_mid_epoch_keeps_the_last_whole_epoch_and_predicts_with_it(mnist_raw, monkeypatch):
    settings = dict(load=small_mnist(mnist_raw), backend="reference", hidden_layers_sizes=[16])
    one_epoch = tutorial.run(num_epochs=1, **settings)
    interrupt_at_check(monkeypatch, 100 + 5)  # 3000 images: 100 batches of 30, then the 5th of epoch 2
    result = tutorial.run(num_epochs=3, **settings)
    assert isinstance(result.stopped, TrainingInterrupted) and result.stopped_at == (1, 4)
    assert result.stopped.__traceback__ is None  # its frames would keep the data sets alive
    assert result.model_epoch == 1 and result.losses == one_epoch.losses
    assert_same_network(result.network, one_epoch.network)
    assert result.predicted_class == one_epoch.predicted_class


def test_ctrl_c_in_on_start_is_a_stop_before_the_first_epoch(mnist_raw):
    def on_start(setup):
        raise KeyboardInterrupt

    result = tutorial.run(load=small_mnist(mnist_raw), hidden_layers_sizes=[16], num_epochs=3, on_start=on_start)
    assert type(result.stopped) is KeyboardInterrupt and result.stopped_at == (0, 0)
    assert result.stopped.__traceback__ is None  # its frames would keep the data sets alive
    assert result.model_epoch == 0 and result.losses == []


def test_an_overflow_keeps_the_last_finite_weights_and_cannot_be_resumed(mnist_raw):
    settings = dict(load=small_mnist(mnist_raw), hidden_layers_sizes=[16], batch_size=3000, learning_rate=1e308)
    with np.errstate(all="ignore"):
        result = tutorial.run(num_epochs=2, **settings)
    # Epoch 1's one update overflows; epoch 2's loss is then non-finite.
    assert isinstance(result.stopped, fastscratch.NonFiniteLossError) and result.stopped_at == (1, 0)
    assert result.stopped.__traceback__ is None  # its frames would keep the data sets alive
    assert result.model_epoch == 0 and len(result.losses) == 1 and result.network.weights_finite()
    with pytest.raises(ValueError, match="holds the weights of epoch 0, not of the last of its 1 epochs"):
        tutorial.run(num_epochs=3, resume=result, **settings)


def bad_settings(mnist_raw):
    earlier = tutorial.run(load=small_mnist(mnist_raw), hidden_layers_sizes=[16], num_epochs=1)
    return [
        ({"backend": "cuda"}, "backend must be one of 'jit', 'reference'"),
        ({"activation": "softmax"}, "activation must be one of"),
        ({"loss": "hinge"}, "loss must be one of"),
        ({"batch_size": 3001}, "batch_size 3001 is larger than the 3000 training samples"),
        ({"resume": earlier, "num_epochs": 0}, "num_epochs 0 is fewer than the 1 epochs resume has done"),
        ({"resume": earlier, "hidden_layers_sizes": [32]}, r"layer sizes \[784, 16, 10\], not \[784, 32, 10\]"),
        ({"resume": earlier, "dtype": np.float32}, "dtype float64, not float32"),
        ({"resume": earlier, "backend": "reference"}, "the class fastscratch.network.SimpleNetwork, not "
                                                      "fastscratch.reference.SimpleNetwork"),
        ({"resume": earlier, "activation": "relu"}, "other activation functions"),
        ({"resume": tutorial.Resume(earlier.network, 500, 0.0, 0.0, earlier.losses, earlier.accuracies)},
         "image_index 500 is not an index of the 500 test images"),
        ({"resume": tutorial.Resume(earlier.network, 0, 0.0, 0.0, earlier.losses, [])},
         "resume has 1 losses but 0 accuracies"),
    ]


def test_bad_settings_are_value_errors_naming_them(mnist_raw):
    for settings, message in bad_settings(mnist_raw):
        settings = {"hidden_layers_sizes": [16], "num_epochs": 2, **settings}
        with pytest.raises(ValueError, match=message):
            tutorial.run(load=small_mnist(mnist_raw), **settings)
