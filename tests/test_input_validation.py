"""Bad input gets a clear ValueError/TypeError naming the argument; what NumPy users pass is accepted.

Numba kernels do no bounds checking, so every public entry point of both
flavours must turn a wrong shape, dtype or value into a clean exception before
anything reaches compiled code, and leave the network untouched.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastscratch
import fastscratch.reference as ref
from fastscratch.exceptions import NonFiniteLossError

NETWORKS = [pytest.param(ref.SimpleNetwork, id="reference"), pytest.param(fastscratch.SimpleNetwork, id="jit")]
LAYERS = [pytest.param(ref.FullyConnectedLayer, id="reference"),
          pytest.param(fastscratch.FullyConnectedLayer, id="jit")]
NEURONS = [pytest.param(ref.Neuron, id="reference"), pytest.param(fastscratch.Neuron, id="jit")]

N_IN, N_OUT, N = 4, 3, 12


def snapshot(net):
    return [(layer.W.copy(), layer.b.copy()) for layer in net.layers]


def assert_weights(net, weights):
    for layer, (W, b) in zip(net.layers, weights):
        np.testing.assert_array_equal(layer.W, W)
        np.testing.assert_array_equal(layer.b, b)


def make_net(network_class, hidden=(5,), **kwargs):
    np.random.seed(0)
    return network_class(N_IN, N_OUT, list(hidden), **kwargs)


def data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (N, N_IN))
    labels = rng.integers(0, N_OUT, N)
    X_val = rng.uniform(0, 1, (6, N_IN))
    y_val = rng.integers(0, N_OUT, 6)
    return {"X_train": X, "y_train": np.eye(N_OUT)[labels], "X_val": X_val, "y_val": y_val,
            "batch_size": 4, "num_epochs": 2, "learning_rate": 0.1}


def with_nan(a, value=np.nan):
    a = np.array(a, dtype=float)
    a.flat[a.size // 2] = value
    return a


def complex_of(a):
    return np.asarray(a) + 0j


def object_of(a):
    return np.asarray(a).astype(object)


# (id, changes to the train() arguments, expected exception, text the message must contain)
BAD_TRAIN = [
    ("X-features", lambda d: {"X_train": d["X_train"][:, :3]}, ValueError, "X_train"),
    ("X-too-many-features", lambda d: {"X_train": np.hstack([d["X_train"]] * 2)}, ValueError, "X_train"),
    ("X-3d", lambda d: {"X_train": d["X_train"].reshape(N, 2, 2)}, ValueError, "X_train"),
    ("X-1d", lambda d: {"X_train": d["X_train"][0]}, ValueError, "X_train"),
    ("X-0d", lambda d: {"X_train": 1.0}, ValueError, "X_train"),
    ("X-ragged", lambda d: {"X_train": [[1, 2, 3, 4], [1, 2]]}, ValueError, "X_train"),
    ("X-nan", lambda d: {"X_train": with_nan(d["X_train"])}, ValueError, "X_train"),
    ("X-inf", lambda d: {"X_train": with_nan(d["X_train"], np.inf)}, ValueError, "X_train"),
    ("X--inf", lambda d: {"X_train": with_nan(d["X_train"], -np.inf)}, ValueError, "X_train"),
    ("X-complex", lambda d: {"X_train": complex_of(d["X_train"])}, TypeError, "X_train"),
    ("X-object", lambda d: {"X_train": object_of(d["X_train"])}, TypeError, "X_train"),
    ("X-str", lambda d: {"X_train": d["X_train"].astype(str)}, TypeError, "X_train"),
    ("X-datetime", lambda d: {"X_train": np.zeros((N, N_IN), "datetime64[s]")}, TypeError, "X_train"),
    ("X-None", lambda d: {"X_train": None}, TypeError, "X_train"),
    ("X-empty", lambda d: {"X_train": np.empty((0, N_IN)), "y_train": np.empty((0, N_OUT))}, ValueError,
     "X_train"),
    ("X-empty-list", lambda d: {"X_train": [], "y_train": []}, ValueError, "X_train"),
    ("y-width", lambda d: {"y_train": d["y_train"][:, :2]}, ValueError, "y_train"),
    ("y-3d", lambda d: {"y_train": d["y_train"][:, :, None]}, ValueError, "y_train"),
    ("y-rows", lambda d: {"y_train": d["y_train"][:-1]}, ValueError, "y_train"),
    ("y-label-rows", lambda d: {"y_train": d["y_train"].argmax(1)[:-1]}, ValueError, "y_train"),
    ("X-rows", lambda d: {"X_train": d["X_train"][:-1]}, ValueError, "y_train"),
    ("y-nan", lambda d: {"y_train": with_nan(d["y_train"])}, ValueError, "y_train"),
    ("y-inf", lambda d: {"y_train": with_nan(d["y_train"], np.inf)}, ValueError, "y_train"),
    ("y-complex", lambda d: {"y_train": complex_of(d["y_train"])}, TypeError, "y_train"),
    ("y-object", lambda d: {"y_train": object_of(d["y_train"])}, TypeError, "y_train"),
    ("y-None", lambda d: {"y_train": None}, TypeError, "y_train"),
    ("y-labels-too-big", lambda d: {"y_train": np.arange(N) % (N_OUT + 1)}, ValueError, "y_train"),
    ("y-labels-negative", lambda d: {"y_train": np.arange(N) % N_OUT - 1}, ValueError, "y_train"),
    ("y-float-labels", lambda d: {"y_train": (np.arange(N) % N_OUT).astype(float)}, ValueError, "y_train"),
    ("batch-0", lambda d: {"batch_size": 0}, ValueError, "batch_size"),
    ("batch-negative", lambda d: {"batch_size": -4}, ValueError, "batch_size"),
    ("batch-too-big", lambda d: {"batch_size": N + 1}, ValueError, "batch_size"),
    ("batch-float", lambda d: {"batch_size": 4.0}, TypeError, "batch_size"),
    ("batch-bool", lambda d: {"batch_size": True}, TypeError, "batch_size"),
    ("batch-None", lambda d: {"batch_size": None}, TypeError, "batch_size"),
    ("epochs-float", lambda d: {"num_epochs": 1.5}, TypeError, "num_epochs"),
    ("lr-nan", lambda d: {"learning_rate": float("nan")}, ValueError, "learning_rate"),
    ("lr-inf", lambda d: {"learning_rate": float("inf")}, ValueError, "learning_rate"),
    ("lr-huge-int", lambda d: {"learning_rate": 10 ** 400}, ValueError, "learning_rate"),
    ("lr-str", lambda d: {"learning_rate": "0.1"}, TypeError, "learning_rate"),
    ("lr-complex", lambda d: {"learning_rate": 0.1 + 0j}, TypeError, "learning_rate"),
    ("lr-array", lambda d: {"learning_rate": np.array([0.1, 0.2])}, TypeError, "learning_rate"),
    ("X_val-features", lambda d: {"X_val": d["X_val"][:, :2]}, ValueError, "X_val"),
    ("X_val-nan", lambda d: {"X_val": with_nan(d["X_val"])}, ValueError, "X_val"),
    ("X_val-empty", lambda d: {"X_val": np.empty((0, N_IN)), "y_val": np.empty(0, int)}, ValueError, "X_val"),
    ("X_val-complex", lambda d: {"X_val": complex_of(d["X_val"])}, TypeError, "X_val"),
    ("y_val-length", lambda d: {"y_val": d["y_val"][:-1]}, ValueError, "y_val"),
    ("y_val-label-too-big", lambda d: {"y_val": d["y_val"] + N_OUT}, ValueError, "y_val"),
    ("y_val-label-negative", lambda d: {"y_val": d["y_val"] - N_OUT}, ValueError, "y_val"),
    ("y_val-non-integer", lambda d: {"y_val": d["y_val"] + 0.5}, ValueError, "y_val"),
    ("y_val-nan", lambda d: {"y_val": with_nan(d["y_val"])}, ValueError, "y_val"),
    ("y_val-one-hot-width", lambda d: {"y_val": np.eye(N_OUT + 1)[d["y_val"]]}, ValueError, "y_val"),
    ("y_val-object", lambda d: {"y_val": object_of(d["y_val"])}, TypeError, "y_val"),
    ("y_val-bool", lambda d: {"y_val": d["y_val"] > 0}, TypeError, "y_val"),
]


@pytest.mark.parametrize("case, change, error, name", BAD_TRAIN, ids=[c[0] for c in BAD_TRAIN])
@pytest.mark.parametrize("network_class", NETWORKS)
def test_train_rejects(network_class, case, change, error, name):
    net = make_net(network_class)
    before = snapshot(net)
    kwargs = {**data(), **change(data())}
    with pytest.raises(error, match=name) as info:
        net.train(**kwargs, verbose=False)
    assert type(info.value) in (ValueError, TypeError)
    assert_weights(net, before)
    # The network is still usable after the error.
    net.train(**data(), verbose=False)


#: Arguments the tutorial's own code accepts and returns from: both flavours return what it returns, with a
#: warning, and never raise (issue: code that runs under the tutorial must run under the drop-in).
TUTORIAL_RETURNS = [
    ("epochs-negative", lambda d: {"num_epochs": -1}, "num_epochs", lambda r, net, before: r == ([], [])),
    ("lr-zero", lambda d: {"learning_rate": 0.0}, "learning_rate",
     lambda r, net, before: len(r[0]) == 2 and all((l.W == W).all() for l, (W, _) in zip(net.layers, before))),
    ("lr-negative", lambda d: {"learning_rate": -1e-3}, "learning_rate", lambda r, net, before: r[0][-1] > r[0][0]),
    ("X_val-without-y_val", lambda d: {"y_val": None}, "y_val", lambda r, net, before: r[1] == [] and len(r[0]) == 2),
    ("y_val-without-X_val", lambda d: {"X_val": None}, "X_val", lambda r, net, before: r[1] == [] and len(r[0]) == 2),
]


@pytest.mark.parametrize("case, change, name, expected", TUTORIAL_RETURNS, ids=[c[0] for c in TUTORIAL_RETURNS])
def test_what_the_tutorial_accepts_runs_alike_in_both_flavours_with_a_warning(case, change, name, expected):
    results = []
    for network_class in (ref.SimpleNetwork, fastscratch.SimpleNetwork):
        net = make_net(network_class)
        before = snapshot(net)
        kwargs = {**data(), "learning_rate": 0.5, "batch_size": 4, **change(data())}
        with pytest.warns(UserWarning, match=name) as caught:
            result = net.train(**kwargs, verbose=False)
        assert caught[0].filename == __file__
        assert expected(result, net, before)
        results.append(result)
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-9)
    assert results[1][1] == results[0][1]


MESSAGE_CASES = [
    # (changes, texts the message must contain: the argument, what was expected, what was given)
    (lambda d: {"X_train": d["X_train"][:, :3]}, ["X_train", "4", "(12, 3)"]),
    (lambda d: {"y_train": d["y_train"][:, :2]}, ["y_train", "3", "(12, 2)"]),
    (lambda d: {"y_train": d["y_train"][:-1]}, ["y_train", "11", "12"]),
    (lambda d: {"X_train": complex_of(d["X_train"])}, ["X_train", "real", "complex128"]),
    (lambda d: {"X_train": with_nan(d["X_train"])}, ["X_train", "non-finite", "index"]),
    (lambda d: {"batch_size": N + 1}, ["batch_size", str(N + 1), str(N)]),
    (lambda d: {"y_train": np.arange(N) % (N_OUT + 1)}, ["y_train", f"[0, {N_OUT})", f"max {N_OUT}"]),
    (lambda d: {"learning_rate": float("inf")}, ["learning_rate", "finite", "inf"]),
]


@pytest.mark.parametrize("change, texts", MESSAGE_CASES)
@pytest.mark.parametrize("network_class", NETWORKS)
def test_messages_say_what_was_expected_and_what_was_given(network_class, change, texts):
    net = make_net(network_class)
    with pytest.raises((ValueError, TypeError)) as info:
        net.train(**{**data(), **change(data())}, verbose=False)
    for text in texts:
        assert text in str(info.value)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_one_output_network_takes_targets_as_a_column(network_class):
    rng = np.random.default_rng(1)
    X, y = rng.uniform(0, 1, (8, 3)), rng.integers(0, 2, 8)
    np.random.seed(0)
    net = network_class(3, 1, [2])
    for targets in (y, y.astype(float)):
        with pytest.raises(ValueError, match=r"y_train.*reshape\(-1, 1\)"):
            net.train(X, targets, batch_size=4, verbose=False)
    losses, _ = net.train(X, y.reshape(-1, 1), batch_size=4, num_epochs=2, verbose=False)
    assert len(losses) == 2


@pytest.mark.parametrize("network_class", NETWORKS)
def test_float32_network_rejects_values_that_overflow_float32(network_class):
    net = make_net(network_class, dtype=np.float32)
    kwargs = data()
    kwargs["X_train"] = with_nan(kwargs["X_train"], 1e300)
    with pytest.raises(ValueError, match="X_train.*too large for float32"):
        net.train(**kwargs, verbose=False)
    kwargs["X_train"][0, 0] = np.nan
    with pytest.raises(ValueError, match="X_train contains non-finite"):
        net.train(**kwargs, verbose=False)


@pytest.mark.parametrize("bad", ["X_train", "X_val"])
@pytest.mark.parametrize("network_class", NETWORKS)
def test_a_non_finite_input_is_reported_before_the_arguments_checked_after_it(network_class, bad):
    """The drop-in proves X finite after the other checks; when one of those fails, the reference's first
    error (a NaN in X comes before a wrong y or batch size) is still the one raised."""
    net = make_net(network_class)
    kwargs = data()
    kwargs[bad] = with_nan(kwargs[bad])
    wrong = {"X_train": {"y_train": kwargs["y_train"][:-1]}, "X_val": {"y_val": kwargs["y_val"][:-1]}}[bad]
    with pytest.raises(ValueError, match=f"{bad} contains non-finite"):
        net.train(**{**kwargs, **wrong}, verbose=False)
    if bad == "X_train":  # batch_size is checked after X_train, before X_val
        with pytest.raises(ValueError, match="X_train contains non-finite"):
            net.train(**{**kwargs, "batch_size": 0}, verbose=False)


class Reported:
    """An array-like whose ``dtype`` attribute is not a NumPy dtype (a string, as some wrappers have)."""
    dtype = "float64"

    def __init__(self, arr):
        self.arr = arr

    def __array__(self, dtype=None, copy=None):
        return self.arr if dtype is None else self.arr.astype(dtype)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_array_likes_with_any_dtype_attribute_are_read_as_numpy_reads_them(network_class):
    kwargs = data()
    expected = make_net(network_class).train(**kwargs, verbose=False)
    got = make_net(network_class).train(**{**kwargs, "X_train": Reported(kwargs["X_train"]),
                                           "X_val": Reported(kwargs["X_val"])}, verbose=False)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]


@pytest.mark.parametrize("network_class", NETWORKS)
def test_bool_inputs_count_as_0_and_1(network_class):
    X = data()["X_train"] > 0.5
    assert_same_training(train_result(network_class, X_train=X), train_result(network_class, X_train=X * 1.0))


@pytest.mark.parametrize("network_class", NETWORKS)
def test_huge_finite_values_are_not_rejected_in_float64(network_class):
    net = make_net(network_class)
    out = net.forward(with_nan(data()["X_val"], 1e300))
    assert out.shape == (6, N_OUT)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_finite_values_whose_sum_overflows_are_not_rejected(network_class):
    """The finiteness check sums first; an overflowing sum must fall back to the elementwise test."""
    net = make_net(network_class)
    x = np.full_like(data()["X_val"], 1e308)
    with np.errstate(over="ignore"):
        assert not np.isfinite(x.sum())
        assert net.forward(x).shape == (6, N_OUT)
    x[2, 1], x[4, 0] = np.inf, -np.inf  # the sum is NaN, not inf
    with pytest.warns(UserWarning, match=r"non-finite.*\(2, 1\)"), np.errstate(all="ignore"):
        net.forward(x)


BAD_CONSTRUCTOR = [
    ("num_inputs-0", (0, 3, [5]), {}, ValueError, "num_inputs"),
    ("num_inputs-negative", (-2, 3, [5]), {}, ValueError, "num_inputs"),
    ("num_outputs-0", (4, 0, [5]), {}, ValueError, "num_outputs"),
    ("hidden-0", (4, 3, [5, 0]), {}, ValueError, "hidden_layers_sizes"),
    ("hidden-negative", (4, 3, [-1]), {}, ValueError, "hidden_layers_sizes"),
    ("num_inputs-float", (4.0, 3, [5]), {}, TypeError, "num_inputs"),
    ("num_inputs-None", (None, 3, [5]), {}, TypeError, "num_inputs"),
    ("num_inputs-bool", (True, 3, [5]), {}, TypeError, "num_inputs"),
    ("hidden-float", (4, 3, [2.5]), {}, TypeError, "hidden_layers_sizes"),
    ("hidden-str", (4, 3, "64"), {}, TypeError, "hidden_layers_sizes"),
    ("hidden-int", (4, 3, 64), {}, TypeError, "hidden_layers_sizes"),
    ("hidden-None", (4, 3, None), {}, TypeError, "hidden_layers_sizes"),
    ("dtype-int", (4, 3, [5]), {"dtype": np.int64}, TypeError, "dtype"),
    ("dtype-float16", (4, 3, [5]), {"dtype": np.float16}, TypeError, "dtype"),
    ("dtype-complex", (4, 3, [5]), {"dtype": complex}, TypeError, "dtype"),
    ("dtype-nonsense", (4, 3, [5]), {"dtype": "nonsense"}, TypeError, "dtype"),
]


@pytest.mark.parametrize("case, args, kwargs, error, name", BAD_CONSTRUCTOR, ids=[c[0] for c in BAD_CONSTRUCTOR])
@pytest.mark.parametrize("network_class", NETWORKS)
def test_constructor_rejects(network_class, case, args, kwargs, error, name):
    with pytest.raises(error, match=name):
        network_class(*args, **kwargs)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_layer_constructor_rejects(layer_class):
    with pytest.raises(ValueError, match="num_inputs"):
        layer_class(0, 3, fastscratch.sigmoid, fastscratch.derivated_sigmoid)
    with pytest.raises(ValueError, match="layer_size"):
        layer_class(3, 0, fastscratch.sigmoid, fastscratch.derivated_sigmoid)
    with pytest.raises(TypeError, match="layer_size"):
        layer_class(3, 2.0, fastscratch.sigmoid, fastscratch.derivated_sigmoid)


@pytest.mark.parametrize("neuron_class", NEURONS)
def test_neuron_rejects(neuron_class):
    with pytest.raises(ValueError, match="num_inputs"):
        neuron_class(0, fastscratch.sigmoid)
    neuron = neuron_class(3, fastscratch.sigmoid)
    for bad, error in [(np.ones((1, 2)), ValueError), (np.ones(3, complex), TypeError),
                       (np.ones((1, 1, 3)), ValueError)]:
        with pytest.raises(error, match="x"):
            neuron.forward(bad)


BAD_X = [
    ("features", np.ones((2, N_IN + 1)), ValueError),
    ("features-1d", np.ones(N_IN - 1), ValueError),
    ("3d", np.ones((2, 1, N_IN)), ValueError),
    ("0d", np.float64(1.0), ValueError),
    ("empty", np.ones((0, N_IN)), ValueError),
    ("complex", np.ones((2, N_IN), complex), TypeError),
    ("object", np.ones((2, N_IN), object), TypeError),
    ("str", np.full((2, N_IN), "1"), TypeError),
]


@pytest.mark.parametrize("case, x, error", BAD_X, ids=[c[0] for c in BAD_X])
@pytest.mark.parametrize("network_class", NETWORKS)
def test_forward_predict_evaluate_reject(network_class, case, x, error):
    net = make_net(network_class)
    for call in (net.forward, net.predict):
        with pytest.raises(error, match=r"\bx\b"):
            call(x)
    with pytest.raises(error, match="X_val"):
        net.evaluate_accuracy(x, np.zeros(max(len(np.atleast_2d(x)), 1), int))
    with pytest.raises(error, match=r"\bx\b"):
        net.layers[0].forward(x)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("rows", [1, 2, 12])
def test_non_finite_inputs_give_what_the_tutorial_gives_with_a_warning(rows, value):
    """The tutorial's NumPy answers NaN or inf inputs (NaN where it spreads): both flavours do the same, warning,
    in forward, predict, backward, evaluate_accuracy and the layer and neuron calls."""
    rng = np.random.default_rng(rows)
    x = rng.random((rows, N_IN)) * (rng.random((rows, N_IN)) > 0.5)
    x[0, 1] = value
    labels = rng.integers(0, N_OUT, rows)
    results = []
    for module in (ref, fastscratch):
        net = make_net(module.SimpleNetwork, hidden=(5, 4))
        out = []
        with pytest.warns(UserWarning, match="non-finite"), np.errstate(all="ignore"):
            out.append(net.forward(x))
            out.append(net.backward(np.full((rows, N_OUT), value)))
            out += [layer.dL_dW for layer in net.layers]
            out.append(net.predict(x[0]))
            out.append(net.predict(x))
            out.append(net.evaluate_accuracy(x, labels))
            out.append(net.layers[0].forward(x))
            np.random.seed(1)
            out.append(module.Neuron(N_IN, fastscratch.sigmoid).forward(x[0]))
        results.append(out)
    for got, expected in zip(*results[::-1]):
        np.testing.assert_allclose(got, expected, rtol=1e-12)  # NaN where NaN, inf where inf


@pytest.mark.parametrize("network_class", NETWORKS)
def test_evaluate_accuracy_rejects_bad_labels(network_class):
    net = make_net(network_class)
    X_val, y_val = data()["X_val"], data()["y_val"]
    for bad, error in [(y_val[:-1], ValueError), (y_val + N_OUT, ValueError), (y_val - N_OUT, ValueError),
                       (y_val + 0.5, ValueError), (np.eye(N_OUT + 1)[y_val], ValueError),
                       (y_val.astype(complex), TypeError), (None, TypeError)]:
        with pytest.raises(error, match="y_val"):
            net.evaluate_accuracy(X_val, bad)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_backward_and_optimize_check_their_arguments(network_class):
    net = make_net(network_class)
    with pytest.raises(RuntimeError, match="forward"):
        net.backward(np.ones((2, N_OUT)))
    with pytest.raises(RuntimeError, match="backward"):
        net.optimize(0.1)
    net.forward(np.ones((2, N_IN)))
    before = snapshot(net)
    for bad, error in [(np.ones((3, N_OUT)), ValueError), (np.ones((2, N_OUT + 1)), ValueError),
                       (np.ones((2, N_OUT), complex), TypeError)]:
        with pytest.raises(error, match="dL_dy"):
            net.backward(bad)
    net.backward(np.ones((2, N_OUT)))
    for bad, error in [(float("nan"), ValueError), (float("inf"), ValueError), ("0.1", TypeError)]:
        with pytest.raises(error, match="epsilon"):
            net.optimize(bad)
        with pytest.raises(error, match="epsilon"):
            net.layers[0].optimize(bad)
    assert_weights(net, before)
    with pytest.warns(UserWarning, match="epsilon is 0.0"):  # the tutorial's step runs and changes nothing
        net.optimize(0.0)
    assert_weights(net, before)
    net.optimize(0.1)


@pytest.mark.parametrize("layer_class", LAYERS)
def test_layer_backward_and_optimize_check_their_arguments(layer_class):
    np.random.seed(0)
    layer = layer_class(3, 2, fastscratch.sigmoid, fastscratch.derivated_sigmoid)
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(np.ones((1, 2)))
    with pytest.raises(RuntimeError, match="backward"):
        layer.optimize(0.1)
    layer.forward(np.ones((4, 3)))
    with pytest.raises(ValueError, match="dL_dy"):
        layer.backward(np.ones((3, 2)))
    for stored in (None, 1.0):  # x replaced by something that is no batch at all
        layer.forward(np.ones((4, 3)))
        layer.x = stored
        with pytest.raises(ValueError, match="stored x"):
            layer.backward(np.ones((4, 2)))
    no_derivative = layer_class(3, 2, fastscratch.sigmoid)
    no_derivative.forward(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="derivated_activation_function"):
        no_derivative.backward(np.ones((1, 2)))


# -- what is accepted ----------------------------------------------------------------------

def train_result(network_class, **overrides):
    net = make_net(network_class)
    kwargs = {**data(), **overrides}
    losses, accuracies = net.train(**kwargs, verbose=False)
    return losses, accuracies, snapshot(net)


def assert_same_training(a, b):
    assert a[0] == b[0] and a[1] == b[1]
    for (Wa, ba), (Wb, bb) in zip(a[2], b[2]):
        np.testing.assert_array_equal(Wa, Wb)
        np.testing.assert_array_equal(ba, bb)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_accepted_forms_train_exactly_like_float64_arrays(network_class):
    d = data()
    X, y, X_val, y_val = d["X_train"], d["y_train"], d["X_val"], d["y_val"]
    expected = train_result(network_class)
    big = np.zeros((2 * N, 2 * N_IN))
    big[::2, ::2] = X
    readonly = X.copy()
    readonly.setflags(write=False)
    variants = {
        "lists": dict(X_train=X.tolist(), y_train=y.tolist(), X_val=X_val.tolist(), y_val=y_val.tolist()),
        "fortran": dict(X_train=np.asfortranarray(X), y_train=np.asfortranarray(y), X_val=np.asfortranarray(X_val)),
        "sliced": dict(X_train=big[::2, ::2]),
        "reversed-view": dict(X_train=X[::-1][::-1]),
        "read-only": dict(X_train=readonly),
        "big-endian": dict(X_train=X.astype(">f8"), y_train=y.astype(">f8")),
        "bool-one-hot": dict(y_train=y > 0.5, y_val=np.eye(N_OUT, dtype=bool)[y_val]),
        "integer-labels": dict(y_train=y.argmax(1)),
        "uint8-labels": dict(y_train=y.argmax(1).astype(np.uint8)),
        "one-hot-y_val": dict(y_val=np.eye(N_OUT)[y_val]),
        "float-y_val": dict(y_val=y_val.astype(float)),
        "int32-y_train": dict(y_train=y.astype(np.int32)),
        "numpy-scalars": dict(batch_size=np.int64(4), num_epochs=np.int32(2), learning_rate=np.float64(0.1)),
    }
    for name, overrides in variants.items():
        before = {k: np.array(v, copy=True) for k, v in overrides.items() if isinstance(v, np.ndarray)}
        try:
            assert_same_training(train_result(network_class, **overrides), expected)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from None
        for k, v in before.items():
            np.testing.assert_array_equal(overrides[k], v, err_msg=f"{name}: train modified the caller's {k}")


@pytest.mark.parametrize("network_class", NETWORKS)
def test_integer_images_are_converted_once(network_class):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (N, N_IN)).astype(np.uint8)
    expected = train_result(network_class, X_train=images.astype(np.float64))
    for dtype in (np.uint8, np.int16, np.int64, np.uint64, np.float32, np.float16):
        if dtype == np.float16:
            assert np.array_equal(images.astype(dtype).astype(np.float64), images)
        assert_same_training(train_result(network_class, X_train=images.astype(dtype)), expected)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_single_samples_and_views(network_class):
    net = make_net(network_class)
    X = data()["X_val"]
    batch = net.forward(X).copy()
    for i in range(len(X)):
        np.testing.assert_allclose(net.forward(X[i]), batch[i], rtol=1e-12)
        np.testing.assert_allclose(net.forward(X[i].tolist()), batch[i], rtol=1e-12)
        np.testing.assert_allclose(net.forward(X[i:i + 1]), batch[i:i + 1], rtol=1e-12)
        assert net.predict(X[i]) == net.predict(X[i].tolist()) == net.predict(X[i:i + 1]) == batch[i].argmax()
    np.testing.assert_allclose(net.forward(np.asfortranarray(X)), batch, rtol=1e-12)
    np.testing.assert_allclose(net.forward(X.T.copy().T), batch, rtol=1e-12)
    np.testing.assert_allclose(net.forward(np.broadcast_to(X[0], X.shape)), np.tile(batch[0], (6, 1)), rtol=1e-12)
    assert net.evaluate_accuracy(X[0], [batch[0].argmax()]) == 1.0


@pytest.mark.parametrize("network_class", NETWORKS)
def test_sizes_as_numpy_integers_and_tuples(network_class):
    np.random.seed(0)
    a = network_class(np.int64(N_IN), np.int32(N_OUT), np.array([5, 2]))
    np.random.seed(0)
    b = network_class(N_IN, N_OUT, (5, 2))
    assert_weights(a, snapshot(b))
    assert [layer.size for layer in a.layers] == [5, 2, N_OUT]
    assert all(type(layer.size) is int for layer in a.layers)


# -- property tests ------------------------------------------------------------------------

REAL_DTYPES = [np.float64, np.float32, np.int64, np.uint8, np.int32]
BAD_DTYPES = [np.complex128, object, "U3", "datetime64[s]"]
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def is_valid_input(arr, num_inputs):
    return (arr.dtype.kind in "biuf" and arr.ndim in (1, 2) and arr.shape[-1] == num_inputs
            and arr.size > 0 and bool(np.isfinite(arr).all()))


@st.composite
def arbitrary_arrays(draw):
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from(REAL_DTYPES + [np.bool_] + BAD_DTYPES))
    arr = np.zeros(shape, dtype=np.float64)
    arr[...] = draw(st.floats(-3, 3))
    if arr.size and draw(st.booleans()):
        arr.flat[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    kind = np.dtype(dtype).kind
    with np.errstate(invalid="ignore"):
        if kind == "M":
            return np.nan_to_num(arr).astype("int64").astype(dtype)
        if kind in "iubU":
            return np.nan_to_num(arr).astype(dtype)
    return arr.astype(dtype)


@pytest.mark.parametrize("network_class", NETWORKS)
@PROPERTY_SETTINGS
@given(x=arbitrary_arrays())
def test_property_forward_rejects_cleanly_or_answers(network_class, x):
    net = make_net(network_class)
    if is_valid_input(x, N_IN):
        out = net.forward(x)
        assert out.shape == x.shape[:-1] + (N_OUT,) and np.isfinite(out).all()
    else:
        with pytest.raises((ValueError, TypeError), match="x"):
            net.forward(x)
        with pytest.raises((ValueError, TypeError), match="x"):
            net.predict(x)


@pytest.mark.parametrize("network_class", NETWORKS)
@PROPERTY_SETTINGS
@given(X=arbitrary_arrays(), y=arbitrary_arrays(), batch_size=st.integers(-2, 8),
       num_epochs=st.integers(-2, 2), learning_rate=st.sampled_from([0.1, 0.0, -1.0, np.nan, np.inf, 1e-3]))
def test_property_train_rejects_cleanly_or_trains(network_class, X, y, batch_size, num_epochs, learning_rate):
    net = make_net(network_class, hidden=(3,))
    before = snapshot(net)
    try:
        net.train(X, y, batch_size=batch_size, num_epochs=num_epochs, learning_rate=learning_rate, verbose=False)
    except (ValueError, TypeError) as err:
        assert type(err) in (ValueError, TypeError)
        assert any(name in str(err) for name in ("X_train", "y_train", "batch_size", "num_epochs", "learning_rate"))
        assert_weights(net, before)
    else:
        # Only a fully valid call may train.
        assert is_valid_input(X, N_IN) and X.ndim == 2
        assert 1 <= batch_size <= len(X) and num_epochs >= 0 and 0 < learning_rate < np.inf
        assert y.dtype.kind in "biuf" and np.isfinite(y).all() and len(y) == len(X)


@pytest.mark.parametrize("network_class", NETWORKS)
@PROPERTY_SETTINGS
@given(X=arbitrary_arrays(), y=arbitrary_arrays())
def test_property_evaluate_accuracy_rejects_cleanly_or_answers(network_class, X, y):
    net = make_net(network_class)
    try:
        accuracy = net.evaluate_accuracy(X, y)
    except (ValueError, TypeError) as err:
        assert type(err) in (ValueError, TypeError)
        assert "X_val" in str(err) or "y_val" in str(err)
    else:
        assert is_valid_input(X, N_IN) and 0.0 <= accuracy <= 1.0
        labels = y.argmax(1) if y.ndim == 2 else y
        assert np.isfinite(y).all() and len(labels) == len(np.atleast_2d(X))
        assert ((0 <= labels) & (labels < N_OUT)).all()


ACTIVATION_NAMES = ["sigmoid", "relu", "tanh"]


@st.composite
def valid_problems(draw):
    n_in, n_out = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    hidden = draw(st.lists(st.integers(1, 6), max_size=2))
    n = draw(st.integers(1, 20))
    activation = draw(st.sampled_from(ACTIVATION_NAMES))
    loss = "cross_entropy" if activation == "sigmoid" and draw(st.booleans()) else "l2"
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    dtype = draw(st.sampled_from([np.float64, np.float32, np.uint8, np.int64]))
    X = rng.uniform(0, 1, (n, n_in)) if dtype in (np.float64, np.float32) else rng.integers(0, 3, (n, n_in))
    X = X.astype(dtype)
    if draw(st.booleans()):
        X = np.asfortranarray(X)
    labels = rng.integers(0, n_out, n)
    y = labels if n_out > 1 and draw(st.booleans()) else np.eye(n_out)[labels]
    n_val = draw(st.integers(0, 5))
    X_val = rng.uniform(0, 1, (n_val, n_in)) if n_val else None
    y_val = rng.integers(0, n_out, n_val) if n_val else None
    return dict(sizes=(n_in, n_out, hidden), activation=activation, loss=loss, seed=seed,
                train=dict(X_train=X, y_train=y, X_val=X_val, y_val=y_val, batch_size=draw(st.integers(1, n)),
                           num_epochs=draw(st.integers(0, 3)),
                           learning_rate=draw(st.sampled_from([1e-3, 0.05, 0.5]))))


def run_problem(network_class, problem):
    n_in, n_out, hidden = problem["sizes"]
    act, dact = ref.ACTIVATIONS[problem["activation"]]
    loss, dloss = ref.LOSSES[problem["loss"]]
    np.random.seed(problem["seed"])
    net = network_class(n_in, n_out, hidden, act, dact, loss, dloss)
    try:
        with np.errstate(all="ignore"):
            result = net.train(**problem["train"], verbose=False)
    except NonFiniteLossError as err:
        result = ("nonfinite", err.epoch, err.batch)
    X = problem["train"]["X_train"]
    with np.errstate(over="ignore"):  # sigmoid saturating on raw uint8 pixels
        return result, snapshot(net), net.forward(X).copy(), net.predict(X[0])


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(problem=valid_problems())
def test_property_jit_equals_reference_on_valid_input(problem):
    jit = run_problem(fastscratch.SimpleNetwork, problem)
    expected = run_problem(ref.SimpleNetwork, problem)
    if expected[0][0] == "nonfinite":
        assert jit[0] == expected[0]
    else:
        # atol: a loss that cancels to ~1e-14 (an output 1 ulp from its target) has no relative accuracy.
        np.testing.assert_allclose(jit[0][0], expected[0][0], rtol=1e-10, atol=1e-15)
        assert jit[0][1] == expected[0][1]
    for (W, b), (W_ref, b_ref) in zip(jit[1], expected[1]):
        np.testing.assert_allclose(W, W_ref, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(b, b_ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(jit[2], expected[2], rtol=1e-10, atol=1e-13)
    assert jit[3] == expected[3]


@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_jit_equals_reference_on_large_batches(activation, blas_past_127_rows):
    """Batches past 127 through these small layers take compiled epochs, unless the BLAS loop is asked for,
    as here: then the reference's own products, the same answers to 1e-10 after 3 epochs of uint8 inputs."""
    problem = dict(sizes=(9, 4, [7, 5]), activation=activation, loss="l2", seed=11,
                   train=dict(X_train=np.random.default_rng(2).integers(0, 256, (420, 9)).astype(np.uint8),
                              y_train=np.random.default_rng(3).integers(0, 4, 420),
                              X_val=np.random.default_rng(4).uniform(0, 1, (50, 9)),
                              y_val=np.random.default_rng(5).integers(0, 4, 50),
                              batch_size=140, num_epochs=3, learning_rate=1e-4))
    jit = run_problem(fastscratch.SimpleNetwork, problem)
    expected = run_problem(ref.SimpleNetwork, problem)
    np.testing.assert_allclose(jit[0][0], expected[0][0], rtol=1e-10)
    assert jit[0][1] == expected[0][1]
    for (W, b), (W_ref, b_ref) in zip(jit[1], expected[1]):
        np.testing.assert_allclose(W, W_ref, rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(b, b_ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(jit[2], expected[2], rtol=1e-10, atol=1e-13)


USER_MODULE = """
import warnings
import numpy as np
import fastscratch
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    net = fastscratch.SimpleNetwork(4, 2, [3], activation_function=lambda z: z,
                                    derivated_activation_function=lambda y: np.ones_like(y))
    net.train(np.zeros((4, 4)), np.eye(2)[[0, 1, 0, 1]], batch_size=2, num_epochs=-1, verbose=False)
"""


def test_warnings_point_at_a_user_module_whose_name_starts_with_the_packages():
    """A user's ``fastscratch_experiments`` module is not part of the package: the FallbackWarning and the
    tutorial-accepts warning both point at its lines, not at its caller's."""
    namespace = {"__name__": "fastscratch_experiments"}
    exec(compile(USER_MODULE, "fastscratch_experiments.py", "exec"), namespace)
    caught = namespace["caught"]
    assert [type(w.message) for w in caught] == [fastscratch.FallbackWarning] * 2 + [UserWarning]
    assert {w.filename for w in caught} == {"fastscratch_experiments.py"}
