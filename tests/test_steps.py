"""Each call steps the layers as the network is then (``routing``, ``steps``): every change a user makes between
calls (or in a callback), every form of parameters and what user callables return behave as in the reference."""
import numpy as np
import pytest

import fastscratch
from fastscratch import reference, steps
from fastscratch.kernels import structure
from fastscratch.exceptions import NonFiniteLossError
from twins import FLAVOURS, assert_same, pair, problem, train_both


def test_functions_reassigned_after_construction_take_effect(batch, rng):
    nets = pair((7,))
    for net in nets:
        for layer in net.layers:
            layer.activation_function, layer.derivated_activation_function = fastscratch.tanh, fastscratch.derivated_tanh
        net.loss_function, net.derivated_loss_function = fastscratch.cross_entropy, fastscratch.derivated_cross_entropy
        net.layers[-1].activation_function = fastscratch.sigmoid  # cross-entropy needs outputs in (0, 1)
        net.layers[-1].derivated_activation_function = fastscratch.derivated_sigmoid
    X, Y = problem(rng, 260)
    results = train_both(nets, X, Y, X[:50], Y[:50].argmax(1), batch_size=batch, num_epochs=2, learning_rate=0.05)
    assert_same(nets, results)
    np.random.seed(3)
    untouched = reference.SimpleNetwork(12, 4, [7])
    assert untouched.train(X, Y, batch_size=batch, num_epochs=2, learning_rate=0.05, verbose=False)[0] != results[1][0]


@pytest.fixture(params=["compiled", "compiled-130-rows", "blas"])
def batch(request):
    """A batch size and the path it takes: compiled epochs (10 rows; 130, past ``KERNEL_MAX_BATCH``, where the
    hidden layers are small), or the reference's BLAS products (130 rows, the small-layer allowance off)."""
    if request.param == "blas":
        request.getfixturevalue("blas_past_127_rows")
    return 10 if request.param == "compiled" else 130


def test_the_batch_fixture_takes_the_paths_it_names(batch, request, rng):
    X, _ = problem(rng, 260)
    for hidden in [(6,), (7,), ()]:
        jit = pair(hidden)[1]
        assert jit.compiles_epochs(batch, X) == (request.node.callspec.params["batch"] != "blas")


@pytest.mark.parametrize("attribute", ["activation_function", "derivated_activation_function", "loss_function",
                                       "derivated_loss_function"])
def test_none_fails_as_in_the_reference(attribute, rng):
    X, Y = problem(rng, 40)
    errors = []
    for net in pair():
        setattr(net.layers[0] if "activation" in attribute else net, attribute, None)
        with pytest.raises(Exception) as info:
            net.train(X, Y, batch_size=10, num_epochs=1, verbose=False)
        errors.append(type(info.value))
    assert errors[0] is errors[1] is TypeError


@pytest.mark.parametrize("rebind", ["in place", "new array"])
def test_callback_that_changes_W_keeps_training_the_new_array(rebind, batch, rng):
    nets = pair()
    X, Y = problem(rng, 260)

    def callback_of(net):
        def callback(epoch, loss, accuracy):
            layer = net.layers[0]
            if rebind == "in place":
                layer.W *= 0.5
            else:
                layer.W = layer.W * 0.5
        return callback
    results = train_both(nets, X, Y, batch_size=batch, num_epochs=3, learning_rate=0.05, callback_of=callback_of)
    assert_same(nets, results)


def test_tied_weights_stay_tied(rng):
    nets = pair((6, 6, 6))
    for net in nets:
        net.layers[2].W = net.layers[1].W
    X, Y = problem(rng, 100)
    results = train_both(nets, X, Y, X, Y.argmax(1), batch_size=10, num_epochs=2, learning_rate=0.1)
    assert_same(nets, results)
    assert nets[1].layers[2].W is nets[1].layers[1].W


def test_backward_in_a_callback_returns_the_input_gradient(batch, rng):
    nets = pair()
    X, Y = problem(rng, 260)
    gradients = {}

    def callback_of(net):
        def callback(epoch, loss, accuracy):
            out = net.forward(X[:5])
            gradients.setdefault(id(net), []).append(net.backward(out - Y[:5]))
        return callback
    results = train_both(nets, X, Y, batch_size=batch, num_epochs=2, learning_rate=0.05, callback_of=callback_of)
    assert_same(nets, results)
    for expected, got in zip(*(gradients[id(net)] for net in nets)):
        assert got is not None and got.shape == (5, 12)
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_layers_added_and_replaced_between_calls(rng):
    nets = pair((6,))
    X, Y = problem(rng, 60)
    train_both(nets, X, Y, batch_size=10, num_epochs=1)
    for module, net in zip((reference, fastscratch), nets):
        np.random.seed(9)
        net.layers[-1] = module.FullyConnectedLayer(6, 5, fastscratch.sigmoid, fastscratch.derivated_sigmoid)
        net.layers.append(module.FullyConnectedLayer(5, 4, fastscratch.relu, fastscratch.derivated_relu))
    results = train_both(nets, X, Y, X, Y.argmax(1), batch_size=10, num_epochs=2, learning_rate=0.05)
    assert_same(nets, results)


@pytest.mark.parametrize("form", ["float32", "strided", "big-endian", "list"])
def test_parameters_of_other_forms_train_as_in_the_reference(form, rng):
    nets = pair()
    for net in nets:
        layer = net.layers[0]
        W = layer.W
        if form == "float32":
            layer.W, layer.b = W.astype(np.float32), layer.b.astype(np.float32)
        elif form == "strided":
            holder = np.zeros((24, 12))
            holder[::2, ::2] = W
            layer.W = holder[::2, ::2]
        elif form == "big-endian":
            layer.W = W.astype(">f8")
        else:
            layer.W = W.tolist()
    X, Y = problem(rng, 60)
    np.testing.assert_allclose(nets[1].forward(X), nets[0].forward(X), rtol=1e-12)
    if form == "list":  # the reference's backward needs W.T: only the drop-in trains it, into an array
        with pytest.raises(AttributeError):
            nets[0].train(X, Y, batch_size=10, num_epochs=1, verbose=False)
        nets[1].train(X, Y, batch_size=10, num_epochs=1, verbose=False)
        assert isinstance(nets[1].layers[0].W, np.ndarray)
        return
    results = train_both(nets, X, Y, X, Y.argmax(1), batch_size=10, num_epochs=2, learning_rate=0.05)
    assert_same(nets, results)
    ref, jit = nets
    assert type(jit.layers[0].W) is type(ref.layers[0].W)
    assert jit.layers[0].W.dtype == ref.layers[0].W.dtype
    if form == "strided":
        assert not jit.layers[0].W.flags.c_contiguous  # still the user's view, updated through it


def test_read_only_weights_fail_to_update_as_in_the_reference(rng):
    X, Y = problem(rng, 20)
    for net in pair():
        net.layers[0].W.setflags(write=False)
        net.forward(X)
        with pytest.raises(ValueError, match="read-only"):
            net.train(X, Y, batch_size=10, num_epochs=1, verbose=False)


@pytest.mark.parametrize("form", ["float32", "strided", "big-endian", "list"])
def test_neuron_weights_of_other_forms(form, rng):
    x = rng.random((3, 5))
    outputs = []
    for module in (reference, fastscratch):
        np.random.seed(1)
        neuron = module.Neuron(5, fastscratch.sigmoid)
        W = neuron.W
        neuron.W = {"float32": W.astype(np.float32), "strided": np.repeat(W, 2)[::2], "big-endian": W.astype(">f8"),
                    "list": W.tolist()}[form]
        outputs.append(neuron.forward(x))
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-12)


STEP = [pytest.param(lambda z: z > 0, lambda y: np.ones_like(y, dtype=float), id="bool"),
        pytest.param(lambda z: (z > 0).astype(np.int64), lambda y: 1, id="int-and-scalar-derivative"),
        pytest.param(lambda z: fastscratch.sigmoid(z.astype(np.float64)),
                     lambda y: (y * (1 - y)).astype(np.float64), id="float64")]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation, derivative", STEP)
def test_callables_returning_bool_int_or_float64_work_as_in_the_reference(activation, derivative, dtype, rng):
    nets = pair((6,), activation_function=activation, derivated_activation_function=derivative, dtype=dtype)
    X, Y = problem(rng, 40)
    outputs = [np.asarray(net.forward(X), dtype=np.float64) for net in nets]
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5 if dtype == np.float32 else 1e-12)
    results = train_both(nets, X, Y, X, Y.argmax(1), batch_size=10, num_epochs=2, learning_rate=0.05)
    assert_same(nets, results, rtol=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_weights_behind_zero_inputs_are_not_hidden(value, rng):
    X, Y = problem(rng, 60)
    X[:, 1] = 0.0  # the kernels skip this column's weights
    nets = pair()
    for net in nets:
        net.layers[0].W[1, 0] = value
    with np.errstate(all="ignore"):
        predictions = [net.predict(X) for net in nets]
        np.testing.assert_array_equal(predictions[1], predictions[0])
        accuracies = [net.evaluate_accuracy(X, Y.argmax(1)) for net in nets]
        assert accuracies == [np.mean(predictions[0] == Y.argmax(1))] * 2
        np.testing.assert_array_equal(nets[1].forward(X), nets[0].forward(X))
    for net in nets:
        with pytest.raises(NonFiniteLossError) as info, np.errstate(all="ignore"):
            net.train(X, Y, batch_size=10, num_epochs=2, verbose=False)
        assert (info.value.epoch, info.value.batch) == (0, 0)


@pytest.mark.parametrize("path", ["compiled", "compiled-300-rows", "blas"])
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_overflow_in_the_very_last_step_raises(flavour, path, rng, request):
    if path == "blas":
        request.getfixturevalue("blas_past_127_rows")
    X, Y = problem(rng, 40 if path == "compiled" else 300)
    np.random.seed(0)
    net = FLAVOURS[flavour].SimpleNetwork(12, 4, [6], fastscratch.relu, fastscratch.derivated_relu)
    with pytest.raises(NonFiniteLossError) as info, np.errstate(all="ignore"):
        net.train(X, Y, batch_size=len(X), num_epochs=1, learning_rate=1e308, verbose=False)
    err = info.value
    assert (err.epoch, err.batch, err.weights_finite) == (1, 0, False) and len(err.losses) == 1


@pytest.mark.parametrize("hidden", [(6,), (300, 250)], ids=["compiled", "blas"])
def test_accuracies_are_python_floats(hidden, rng):
    X, Y = problem(rng, 40)
    for net in pair(hidden):
        _, accuracies = net.train(X, Y, X, Y.argmax(1), batch_size=10, num_epochs=1, verbose=False)
        assert type(accuracies[0]) is float and type(net.evaluate_accuracy(X, Y.argmax(1))) is float


def test_what_changes_between_calls_is_seen_though_the_route_is_kept(rng):
    """The per-call route is kept while its objects are the same ones: each kind of change is still seen."""
    X, Y = problem(rng, 20)
    for net in pair():
        net.forward(X)
        net.backward(net.derivated_loss_function(net.forward(X), Y))
        net.optimize(0.1)
        W = net.layers[0].W
        W.setflags(write=False)  # made read-only after the route took it
        net.backward(net.derivated_loss_function(net.forward(X), Y))
        with pytest.raises(ValueError, match="read-only"):
            net.optimize(0.1)
        W.setflags(write=True)
    nets = pair()
    for change in range(4):  # another W, other functions, another layer, NaN written in place
        outputs = []
        for net in nets:
            layer = net.layers[min(change, 1)]
            if change == 0:
                layer.W = layer.W * 0.5  # another array
            elif change == 1:
                layer.activation_function, layer.derivated_activation_function = fastscratch.tanh, fastscratch.derivated_tanh
            elif change == 2:
                net.layers = net.layers[:1] + [type(net.layers[1])(6, 4, fastscratch.relu, fastscratch.derivated_relu)]
                net.layers[1].W[...], net.layers[1].b[...] = 0.25, -0.5
            else:
                net.layers[0].W[:3] = np.nan  # in place: nothing kept skips zeros, so NaN shows as in NumPy
            with np.errstate(all="ignore"):
                outputs.append(net.forward(X[:1]))
        np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-12)
        assert np.isnan(outputs[1]).all() == (change == 3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("rows", [1, 2, 31, 129, 300])
@pytest.mark.parametrize("shape", [(12, (6,), 4), (130, (70, 9), 10)], ids=["12-6-4", "130-70-9-10"])
def test_the_hand_written_batch_loop_gives_the_references_numbers(shape, rows, dtype, rng):
    """forward, loss, derivative, backward (its dL_dx returned, each layer's dL_dW and dL_db), optimize, three steps
    over random sparse batches: kernels (the forward products blocked, the weight gradient over nonzero inputs) up
    to ``KERNEL_MAX_BACKWARD_ROWS``, BLAS past it; the reference's values within the sums' rounding."""
    num_inputs, hidden, num_outputs = shape
    nets = pair(hidden, num_inputs, num_outputs, dtype=dtype)
    rtol = 1e-10 if dtype == np.float64 else 2e-4
    for step in range(3):
        X, Y = problem(rng, rows, num_inputs, num_outputs)
        values = []
        for net in nets:
            predictions = net.forward(X)
            loss = net.loss_function(predictions, Y)
            dL_dx = net.backward(net.derivated_loss_function(predictions, Y))
            gradients = [(layer.dL_dW, layer.dL_db) for layer in net.layers]
            net.optimize(0.5)
            values.append((predictions, loss, dL_dx, gradients))
        (p0, l0, dx0, g0), (p1, l1, dx1, g1) = values
        assert p1.dtype == p0.dtype == dx1.dtype == dtype and dx1.shape == dx0.shape
        np.testing.assert_allclose(p1, p0, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(l1, l0, rtol=rtol)
        np.testing.assert_allclose(dx1, dx0, rtol=rtol, atol=rtol * np.abs(dx0).max())
        for (dW1, db1), (dW0, db0) in zip(g1, g0):
            assert dW1.dtype == dW0.dtype and db1.dtype == db0.dtype
            np.testing.assert_allclose(dW1, dW0, rtol=rtol, atol=rtol * np.abs(dW0).max())
            np.testing.assert_allclose(db1, db0, rtol=rtol, atol=rtol * np.abs(db0).max())
        for r, j in zip(*(net.layers for net in nets)):
            np.testing.assert_allclose(j.W, r.W, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("poison", [np.nan, np.inf])
def test_backward_of_a_non_finite_gradient_spreads_as_in_blas(poison, rng):
    """A zero input times a NaN or inf gradient is NaN in the reference's x.T @ dL_dz: the kernel visits it."""
    X, Y = problem(rng, 20)
    X[:, 2] = 0.0
    gradients = []
    for net in pair():
        predictions = net.forward(X)
        dL_dy = net.derivated_loss_function(predictions, Y)
        dL_dy[3, 1] = poison
        with np.errstate(all="ignore"):
            dx = net.backward(dL_dy)
        gradients.append([dx] + [a for layer in net.layers for a in (layer.dL_dW, layer.dL_db)])
    for got, expected in zip(gradients[1], gradients[0]):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_allclose(got[np.isfinite(expected)], expected[np.isfinite(expected)], rtol=1e-10)
    assert np.isnan(gradients[1][1][2]).any()  # dL_dW of the zero input


def test_forward_of_many_rows_in_threads_gives_the_bits_of_one_thread(monkeypatch, rng):
    """Rows are independent: parts of them in threads give the same bits as one call."""
    X, _ = problem(rng, 301)
    net = pair((6,))[1]
    one = net.forward(X)
    monkeypatch.setattr(fastscratch.config, "MIN_ROWS_PER_THREAD", 16)
    monkeypatch.setattr("numba.config.NUMBA_NUM_THREADS", 4)
    parts = []

    def in_parts(run, n, min_size):
        parts.append(n)
        return structure.in_parts(run, n, min_size)
    monkeypatch.setattr(steps, "in_parts", in_parts)
    assert net.forward(X).tobytes() == one.tobytes()
    assert parts == [301, 301]  # each layer's 301 rows in threads


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_users_activation_gets_the_references_arrays_and_its_result_is_kept_as_is(dtype, rng):
    """With compiled products, the user's function is still called once per layer and batch, with z of the
    reference's shape and dtype, in the reference's order; what it returns is the layer's y itself (a writeable
    array, as in the reference), and the network trains to the reference's numbers."""
    seen = {}

    def activation_of(name):
        def activation(z):
            seen.setdefault(name, []).append((z.shape, z.dtype))
            return 1 / (1 + np.exp(-z))
        return activation
    nets = pair((6,), dtype=dtype)
    for name, net in zip(("reference", "jit"), nets):
        for layer in net.layers:
            layer.activation_function = activation_of(name)
    X, Y = problem(rng, 40)
    returned = []
    for net in nets:
        net.layers[0].activation_function = (lambda f: lambda z: returned.append(f(z)) or returned[-1])(
            net.layers[0].activation_function)
        net.forward(X[:7])
        assert net.layers[0].y is returned[-1] and net.layers[0].y.flags.writeable
    results = train_both(nets, X, Y, batch_size=10, num_epochs=2, learning_rate=0.05)
    assert seen["jit"] == seen["reference"]
    assert_same(nets, results, rtol=1e-4 if dtype == np.float32 else 1e-10)
