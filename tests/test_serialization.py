"""save / load / load_weights: exact round trips, and bad files refused with the network untouched."""
import itertools
import os
import re
import zipfile

import numpy as np
import pytest

import fastscratch
from fastscratch import reference
from fastscratch.functions import ACTIVATIONS, LOSSES, sigmoid

CLASSES = [pytest.param(reference.SimpleNetwork, id="reference"),
           pytest.param(fastscratch.SimpleNetwork, id="toplevel")]


def build(cls, sizes=(6, 5, 3), seed=0, **kwargs):
    np.random.seed(seed)
    return cls(sizes[0], sizes[-1], list(sizes[1:-1]), **kwargs)


def parameters(network):
    return [(layer.W.copy(), layer.b.copy()) for layer in network.layers]


def assert_same_parameters(a, b):
    assert len(a) == len(b)
    for (Wa, ba), (Wb, bb) in zip(a, b):
        assert Wa.dtype == Wb.dtype and ba.dtype == bb.dtype
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("sizes", [(6, 3), (6, 5, 3), (7, 4, 5, 2)], ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_round_trip_is_exact(cls, sizes, dtype, tmp_path, rng):
    network = build(cls, sizes, dtype=dtype)
    path = tmp_path / "model.npz"
    network.save(path)
    loaded = cls.load(path)

    assert type(loaded) is cls
    assert loaded.dtype == network.dtype
    assert_same_parameters(parameters(loaded), parameters(network))
    x = rng.random((9, sizes[0]))
    np.testing.assert_array_equal(loaded.forward(x), network.forward(x))
    np.testing.assert_array_equal(loaded.predict(x), network.predict(x))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_builtin_functions_are_restored_by_name(cls, activation, loss, tmp_path):
    network = build(cls, activation_function=ACTIVATIONS[activation][0],
                    derivated_activation_function=ACTIVATIONS[activation][1],
                    loss_function=LOSSES[loss][0], derivated_loss_function=LOSSES[loss][1])
    network.save(tmp_path / "model.npz")
    loaded = cls.load(tmp_path / "model.npz")
    assert loaded.loss_function is LOSSES[loss][0]
    assert loaded.derivated_loss_function is LOSSES[loss][1]
    x = np.linspace(0, 1, 12).reshape(2, 6)
    np.testing.assert_array_equal(loaded.forward(x), network.forward(x))


@pytest.mark.parametrize("source", CLASSES)
@pytest.mark.parametrize("target", CLASSES)
def test_file_is_shared_between_classes(source, target, tmp_path, rng):
    network = build(source, (8, 6, 4))
    network.save(tmp_path / "model.npz")
    loaded = target.load(tmp_path / "model.npz")
    assert type(loaded) is target
    assert_same_parameters(parameters(loaded), parameters(network))
    x = rng.random((5, 8))
    np.testing.assert_allclose(loaded.forward(x), reference_forward(network, x), rtol=1e-12)


def reference_forward(network, x):
    """The tutorial's forward pass, from the weights alone."""
    for layer in network.layers:
        x = layer.activation_function(np.dot(x, layer.W) + layer.b)
    return x


@pytest.mark.parametrize("cls", CLASSES)
def test_load_leaves_the_global_random_stream_alone(cls, tmp_path):
    build(cls).save(tmp_path / "model.npz")
    np.random.seed(123)
    expected = np.random.random(4)
    np.random.seed(123)
    cls.load(tmp_path / "model.npz")
    np.testing.assert_array_equal(np.random.random(4), expected)


@pytest.mark.parametrize("cls", CLASSES)
def test_save_adds_npz_like_numpy(cls, tmp_path):
    network = build(cls)
    network.save(tmp_path / "model")
    assert os.listdir(tmp_path) == ["model.npz"]
    assert_same_parameters(parameters(cls.load(tmp_path / "model.npz")), parameters(network))


@pytest.mark.parametrize("cls", CLASSES)
def test_load_weights_copies_into_a_network_of_the_same_sizes(cls, tmp_path):
    trained = build(cls, seed=1)
    trained.save(tmp_path / "model.npz")
    network = build(cls, seed=2)
    network.load_weights(tmp_path / "model.npz")
    assert_same_parameters(parameters(network), parameters(trained))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("other_sizes", [(6, 4, 3), (6, 3), (6, 5, 5, 3), (7, 5, 3), (6, 5, 2)],
                         ids=lambda s: "-".join(map(str, s)))
def test_load_weights_refuses_another_architecture(cls, other_sizes, tmp_path):
    build(cls, other_sizes).save(tmp_path / "other.npz")
    network = build(cls, (6, 5, 3))
    before = parameters(network)
    with pytest.raises(ValueError, match="6-5-3"):
        network.load_weights(tmp_path / "other.npz")
    assert_same_parameters(parameters(network), before)


# -- bad files: each writer gets a good file's path and leaves a bad file there

def _good(path):
    np.random.seed(0)
    reference.SimpleNetwork(6, 3, [5]).save(path)


def _arrays(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def _rewrite(path, **changes):
    arrays = _arrays(path)
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


def _garbage(path, rng):
    path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _save_npy(path, array):
    with open(path, "wb") as f:  # np.save(path) would add ".npy" to the name
        np.save(f, array)


def _flip_bytes(path, rng):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


BAD_FILES = {
    "empty": lambda p, rng: p.write_bytes(b""),
    "garbage bytes": _garbage,
    "text": lambda p, rng: p.write_text("W0 = [[1, 2], [3, 4]]\n"),
    "truncated": lambda p, rng: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "corrupted bytes": _flip_bytes,
    "lone npy": lambda p, rng: _save_npy(p, np.zeros((6, 5))),
    "empty zip": lambda p, rng: zipfile.ZipFile(p, "w").close(),
    "other npz": lambda p, rng: np.savez(p, x=np.arange(3)),
    "pickled object": lambda p, rng: np.savez(p, **{**_arrays(p), "W0": np.array([{}], dtype=object)}),
    "missing metadata": lambda p, rng: _rewrite(p, layer_sizes=None),
    "missing layer": lambda p, rng: _rewrite(p, W1=None),
    "wrong shape": lambda p, rng: _rewrite(p, W0=np.zeros((6, 4))),
    "sizes disagree with weights": lambda p, rng: _rewrite(p, layer_sizes=np.array([6, 4, 3])),
    "non-finite weights": lambda p, rng: _rewrite(p, b1=np.array([0.0, np.nan, 1.0])),
    "integer weights": lambda p, rng: _rewrite(p, W0=np.zeros((6, 5), dtype=np.int64)),
    "future format": lambda p, rng: _rewrite(p, format_version=np.array(99)),
    "format not a scalar": lambda p, rng: _rewrite(p, format_version=np.array([1, 1])),
    "sizes not integers": lambda p, rng: _rewrite(p, layer_sizes=np.array(["6", "5", "3"])),
    "zero size": lambda p, rng: _rewrite(p, layer_sizes=np.array([6, 0, 3])),
    "unknown dtype": lambda p, rng: _rewrite(p, dtype=np.array("complex128")),
    "unknown activation": lambda p, rng: _rewrite(p, activations=np.array(["sigmoid", "softmax"])),
    "unknown derivative": lambda p, rng: _rewrite(p, activation_derivatives=np.array(["none", "softmax"])),
    "one activation for two layers": lambda p, rng: _rewrite(p, activations=np.array(["sigmoid"])),
    "activation not text": lambda p, rng: _rewrite(p, activations=np.array([0, 1])),
    "unknown loss": lambda p, rng: _rewrite(p, loss=np.array("hinge")),
    "unknown loss derivative": lambda p, rng: _rewrite(p, loss_derivative=np.array("hinge")),
    "loss per layer": lambda p, rng: _rewrite(p, loss=np.array(["l2", "l2"])),
    "missing loss derivative": lambda p, rng: _rewrite(p, loss_derivative=None),
    "version 1 with version 2 names": lambda p, rng: _rewrite(p, format_version=np.array(1)),
}


@pytest.fixture(params=sorted(BAD_FILES))
def bad_file(request, tmp_path, rng):
    path = tmp_path / "bad.npz"
    _good(path)
    BAD_FILES[request.param](path, rng)
    return path


@pytest.mark.parametrize("cls", CLASSES)
def test_load_weights_refuses_a_bad_file_and_leaves_the_network_untouched(cls, bad_file):
    network = build(cls, (6, 5, 3), seed=7)
    before = parameters(network)
    with pytest.raises(ValueError, match=re.escape(bad_file.name)):
        network.load_weights(bad_file)
    assert_same_parameters(parameters(network), before)
    network.forward(np.ones(6))  # still usable


@pytest.mark.parametrize("cls", CLASSES)
def test_load_refuses_a_bad_file(cls, bad_file):
    with pytest.raises(ValueError, match=re.escape(bad_file.name)):
        cls.load(bad_file)


@pytest.mark.parametrize("cls", CLASSES)
def test_missing_file_is_file_not_found(cls, tmp_path):
    with pytest.raises(FileNotFoundError):
        cls.load(tmp_path / "nothing.npz")
    with pytest.raises(FileNotFoundError):
        build(cls).load_weights(tmp_path / "nothing.npz")


# -- networks built with the user's own functions

def softplus(x):
    return np.log1p(np.exp(x))


def derivated_softplus(y):  # in terms of the output y = softplus(x): sigmoid(x) = 1 - exp(-y)
    return -np.expm1(-y)


def loss_L1(pred, target):
    return np.sum(np.abs(pred - target)) / pred.shape[0]


def derivated_loss_L1(pred, target):
    return np.sign(pred - target)


CUSTOM = dict(activation_function=softplus, derivated_activation_function=derivated_softplus,
              loss_function=loss_L1, derivated_loss_function=derivated_loss_L1)

# The JIT network says (once per function) that it runs custom functions through NumPy: expected here.
custom_functions = pytest.mark.filterwarnings("ignore::fastscratch.FallbackWarning")


@custom_functions
@pytest.mark.parametrize("cls", CLASSES)
def test_custom_functions_must_be_passed_again(cls, tmp_path):
    build(cls, **CUSTOM).save(tmp_path / "custom.npz")
    with pytest.raises(ValueError, match="layers 0, 1's activation_function was a custom callable"):
        cls.load(tmp_path / "custom.npz")
    with pytest.raises(ValueError, match="the network's loss_function was a custom callable"):
        cls.load(tmp_path / "custom.npz", activation_function=softplus,
                 derivated_activation_function=derivated_softplus)
    with pytest.raises(TypeError, match="unexpected"):
        cls.load(tmp_path / "custom.npz", **CUSTOM, optimizer="adam")


@custom_functions
@pytest.mark.parametrize("cls", CLASSES)
def test_custom_functions_round_trip(cls, tmp_path, rng):
    network = build(cls, **CUSTOM)
    network.save(tmp_path / "custom.npz")
    loaded = cls.load(tmp_path / "custom.npz", **CUSTOM)
    assert_same_parameters(parameters(loaded), parameters(network))
    assert loaded.loss_function is loss_L1
    x, y = rng.random((4, 6)), np.eye(3)[[0, 1, 2, 0]]
    np.testing.assert_array_equal(loaded.forward(x), network.forward(x))
    # Training goes on with the restored functions exactly as with the original network.
    network.train(x, y, batch_size=2, num_epochs=2, verbose=False)
    loaded.train(x, y, batch_size=2, num_epochs=2, verbose=False)
    assert_same_parameters(parameters(loaded), parameters(network))


@custom_functions
@pytest.mark.parametrize("cls", CLASSES)
def test_custom_network_takes_saved_weights(cls, tmp_path):
    source = build(cls, **CUSTOM, seed=3)
    source.save(tmp_path / "custom.npz")
    network = build(cls, **CUSTOM, seed=4)
    network.load_weights(tmp_path / "custom.npz")
    assert_same_parameters(parameters(network), parameters(source))


# -- each layer's functions, as saved

BUILTIN_PAIRS = [ACTIVATIONS[name] for name in sorted(ACTIVATIONS)]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_every_combination_of_builtins_per_layer_round_trips(cls, dtype, tmp_path, rng):
    """Each of 3 layers with each built-in activation (27 networks), with each loss: every function restored,
    by identity, and outputs and a training step equal to the saved network's bit for bit."""
    x = rng.random((5, 6)).astype(dtype)
    y = np.eye(3)[[0, 1, 2, 0, 1]]
    for i, pairs in enumerate(itertools.product(BUILTIN_PAIRS, repeat=3)):
        loss = LOSSES[sorted(LOSSES)[i % len(LOSSES)]]
        network = build(cls, (6, 5, 4, 3), seed=i, dtype=dtype, loss_function=loss[0],
                        derivated_loss_function=loss[1])
        for layer, (function, derivative) in zip(network.layers, pairs):
            layer.activation_function, layer.derivated_activation_function = function, derivative
        network.save(tmp_path / "model.npz")
        loaded = cls.load(tmp_path / "model.npz")
        assert [(layer.activation_function, layer.derivated_activation_function) for layer in loaded.layers] == \
            list(pairs)
        assert (loaded.loss_function, loaded.derivated_loss_function) == loss
        assert loaded.forward(x).tobytes() == network.forward(x).tobytes()
        with np.errstate(all="ignore"):  # cross-entropy of a relu or tanh output is NaN: nothing to train
            if np.isfinite(network.loss_function(network.forward(x), y)):
                for net in (network, loaded):
                    net.train(x, y, batch_size=5, num_epochs=1, verbose=False)
        assert_same_parameters(parameters(loaded), parameters(network))


@pytest.mark.parametrize("cls", CLASSES)
def test_mixed_pairs_and_missing_derivatives_are_kept(cls, tmp_path):
    """A layer whose derivative is another built-in's (or None, a layer that only runs forward) loads so."""
    network = build(cls, (6, 5, 4, 3))
    layers = network.layers
    layers[0].activation_function, layers[0].derivated_activation_function = ACTIVATIONS["relu"][0], None
    layers[1].derivated_activation_function = ACTIVATIONS["tanh"][1]
    network.derivated_loss_function = LOSSES["cross_entropy"][1]
    network.save(tmp_path / "model.npz")
    loaded = cls.load(tmp_path / "model.npz")
    assert loaded.layers[0].activation_function is ACTIVATIONS["relu"][0]
    assert loaded.layers[0].derivated_activation_function is None
    assert loaded.layers[1].activation_function is ACTIVATIONS["sigmoid"][0]
    assert loaded.layers[1].derivated_activation_function is ACTIVATIONS["tanh"][1]
    assert loaded.layers[2].derivated_activation_function is ACTIVATIONS["sigmoid"][1]
    assert loaded.loss_function is LOSSES["l2"][0] and loaded.derivated_loss_function is LOSSES["cross_entropy"][1]


@custom_functions
@pytest.mark.parametrize("cls", CLASSES)
def test_a_custom_function_on_one_layer_is_asked_for_by_layer_and_fills_only_that_layer(cls, tmp_path, rng):
    network = build(cls, (6, 5, 4, 3))
    network.layers[0].activation_function = ACTIVATIONS["relu"][0]
    network.layers[0].derivated_activation_function = ACTIVATIONS["relu"][1]
    network.layers[2].activation_function = softplus
    network.layers[2].derivated_activation_function = derivated_softplus
    network.save(tmp_path / "model.npz")
    with pytest.raises(ValueError, match=r"model.npz: layer 2's activation_function was a custom callable"):
        cls.load(tmp_path / "model.npz")
    with pytest.raises(ValueError, match=r"layer 2's derivated_activation_function"):
        cls.load(tmp_path / "model.npz", activation_function=softplus)
    with pytest.raises(TypeError, match="loss_function"):  # the file's loss is a built-in: nothing to fill
        cls.load(tmp_path / "model.npz", activation_function=softplus,
                 derivated_activation_function=derivated_softplus, loss_function=loss_L1)
    loaded = cls.load(tmp_path / "model.npz", activation_function=softplus,
                      derivated_activation_function=derivated_softplus)
    assert [layer.activation_function for layer in loaded.layers] == [ACTIVATIONS["relu"][0], sigmoid, softplus]
    x = rng.random((4, 6))
    assert loaded.forward(x).tobytes() == network.forward(x).tobytes()


def test_version_1_files_still_load(tmp_path, rng):
    """A file from before per-layer functions: one activation for every layer, the built-in pairs."""
    network = build(reference.SimpleNetwork, activation_function=ACTIVATIONS["tanh"][0],
                    derivated_activation_function=ACTIVATIONS["tanh"][1], loss_function=LOSSES["cross_entropy"][0],
                    derivated_loss_function=LOSSES["cross_entropy"][1])
    arrays = {"format_version": np.array(1), "layer_sizes": np.array([6, 5, 3]), "dtype": np.array("float64"),
              "activation": np.array("tanh"), "loss": np.array("cross_entropy")}
    for i, layer in enumerate(network.layers):
        arrays[f"W{i}"], arrays[f"b{i}"] = layer.W, layer.b
    np.savez(tmp_path / "v1.npz", **arrays)
    loaded = reference.SimpleNetwork.load(tmp_path / "v1.npz")
    assert all(layer.activation_function is ACTIVATIONS["tanh"][0] for layer in loaded.layers)
    assert all(layer.derivated_activation_function is ACTIVATIONS["tanh"][1] for layer in loaded.layers)
    assert loaded.derivated_loss_function is LOSSES["cross_entropy"][1]
    x = rng.random((3, 6))
    assert loaded.forward(x).tobytes() == network.forward(x).tobytes()
