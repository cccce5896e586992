"""The JIT drop-in against the reference, method by method and on real MNIST."""
import warnings

import numba
import numpy as np
import pytest

import fastscratch
from fastscratch import config, functions, reference

ACTIVATIONS = list(functions.ACTIVATIONS)
LOSSES = list(functions.LOSSES)
HIDDEN = [(), (6,), (7, 5, 4)]
BATCHES = [1, 30, 7]
#: float32 vs the float64 reference on the same (float32-representable) weights: sums of up to
#: ~20 terms with eps32 = 6e-8 each, through at most four layers; 1e-4 leaves margin over the
#: ~1e-6 observed, while any indexing or ordering bug shows up at O(1).
RTOL = {np.float64: 1e-10, np.float32: 1e-4}
#: Training compounds that rounding over up to 190 SGD steps (batch 1). With the learning rates
#: below, float32 weights drift up to ~1e-3 from the float64 trajectory (measured); 5e-3 still
#: tells a correct float32 step from a wrong one, which breaks the trajectory at O(1).
TRAIN_RTOL = {np.float64: 1e-10, np.float32: 5e-3}
#: A large rate makes float64 differences visible; float32 runs take a smaller one, since at 0.05
#: a tanh network's float32 and float64 trajectories part by a few percent within two epochs.
TRAIN_LR = {np.float64: 0.05, np.float32: 0.01}


def twins(hidden, activation="sigmoid", loss="l2", dtype=np.float64, num_inputs=12, num_outputs=4, seed=3):
    """A reference network and a JIT network with the same seed (so the same weights)."""
    kwargs = dict(activation_function=functions.ACTIVATIONS[activation][0],
                  derivated_activation_function=functions.ACTIVATIONS[activation][1],
                  loss_function=functions.LOSSES[loss][0], derivated_loss_function=functions.LOSSES[loss][1])
    np.random.seed(seed)
    ref = reference.SimpleNetwork(num_inputs, num_outputs, hidden, **kwargs)
    np.random.seed(seed)
    jit = fastscratch.SimpleNetwork(num_inputs, num_outputs, hidden, dtype=dtype, **kwargs)
    for r, j in zip(ref.layers, jit.layers):
        np.testing.assert_array_equal(j.W, r.W.astype(dtype))
        # Compare float32 against float64 arithmetic on the very same weights.
        r.W, r.b = j.W.astype(np.float64), j.b.astype(np.float64)
    return ref, jit


def problem(rng, n, num_inputs=12, num_outputs=4):
    X = rng.random((n, num_inputs)) * (rng.random((n, num_inputs)) > 0.5)
    return X, np.eye(num_outputs)[rng.integers(0, num_outputs, n)]


def close(got, expected, dtype, tolerances=RTOL):
    np.testing.assert_allclose(got, expected, rtol=tolerances[dtype], atol=tolerances[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("hidden", HIDDEN, ids=["0 hidden", "1 hidden", "3 hidden"])
@pytest.mark.parametrize("batch", BATCHES)
def test_forward_backward_optimize_match_reference(batch, hidden, activation, dtype, rng):
    ref, jit = twins(hidden, activation, dtype=dtype)
    X, Y = problem(rng, batch)
    out_ref, out_jit = ref.forward(X), jit.forward(X)
    assert out_jit.dtype == dtype and out_jit.shape == out_ref.shape
    close(out_jit, out_ref, dtype)
    dL_dy = functions.derivated_loss_L2(out_ref, Y)
    close(jit.backward(dL_dy), ref.backward(dL_dy), dtype)
    for r, j in zip(ref.layers, jit.layers):
        close(j.dL_dW, r.dL_dW, dtype)
        close(j.dL_db, r.dL_db, dtype)
        close(j.y, r.y, dtype)
    ref.optimize(0.5)
    jit.optimize(0.5)
    for r, j in zip(ref.layers, jit.layers):
        close(j.W, r.W, dtype)
        close(j.b, r.b, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_single_sample_forward_and_predict(dtype, rng):
    ref, jit = twins((5,), dtype=dtype)
    x = rng.random(12)
    for sample in (x, x[np.newaxis]):
        out_ref, out_jit = ref.forward(sample), jit.forward(sample)
        assert out_jit.shape == out_ref.shape
        close(out_jit, out_ref, dtype)
        assert jit.predict(sample) == ref.predict(sample)
    X = rng.random((40, 12))
    np.testing.assert_array_equal(jit.predict(X), ref.predict(X))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("hidden", HIDDEN, ids=["0 hidden", "1 hidden", "3 hidden"])
def test_evaluate_accuracy_equals_per_sample_predict(hidden, activation, rng):
    _, jit = twins(hidden, activation)
    X = rng.random((700, 12))  # more rows than one evaluation chunk
    labels = rng.integers(0, 4, 700)
    predictions = np.array([jit.predict(x) for x in X])
    assert jit.evaluate_accuracy(X, labels) == np.mean(predictions == labels)
    assert jit.evaluate_accuracy(X, np.eye(4)[labels]) == np.mean(predictions == labels)


@pytest.mark.parametrize("threads", [2, 3])
def test_predictions_split_over_threads_equal_one_part(threads, rng, monkeypatch):
    _, jit = twins((7, 5))
    for layer in jit.layers:  # centred pre-activations, so that rows get different classes
        layer.W = rng.standard_normal(layer.W.shape)
        layer.b = -layer.W.sum(axis=0) / 2
    X = rng.random((700, 12)) * (rng.random((700, 12)) > 0.5)
    labels = rng.integers(0, 4, 700)
    whole = jit.predict(X)
    assert np.bincount(whole).max() < 0.9 * len(whole)
    monkeypatch.setattr(config, "MIN_ROWS_PER_THREAD", 100)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", threads)
    np.testing.assert_array_equal(jit.predict(X), whole)
    np.testing.assert_array_equal(whole, [jit.predict(x) for x in X])
    assert jit.evaluate_accuracy(X, labels) == np.mean(whole == labels)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("hidden", HIDDEN, ids=["0 hidden", "1 hidden", "3 hidden"])
@pytest.mark.parametrize("batch", BATCHES)
def test_train_matches_reference(batch, hidden, activation, loss, dtype, rng):
    ref, jit = twins(hidden, activation, loss, dtype=dtype)
    assert jit.builtin_functions
    X, Y = problem(rng, 95)
    if loss == "cross_entropy":  # keep log() finite: sigmoid outputs in (0, 1)
        ref, jit = twins(hidden, "sigmoid", loss, dtype=dtype)
    with np.errstate(all="ignore"):
        expected = ref.train(X, Y, X[:20], Y[:20].argmax(1), batch_size=batch, num_epochs=2,
                             learning_rate=TRAIN_LR[dtype], verbose=False)
    got = jit.train(X, Y, X[:20], Y[:20].argmax(1), batch_size=batch, num_epochs=2,
                    learning_rate=TRAIN_LR[dtype], verbose=False)
    close(got[0], expected[0], dtype, TRAIN_RTOL)
    if dtype == np.float64:
        assert got[1] == expected[1]
    for r, j in zip(ref.layers, jit.layers):
        close(j.W, r.W, dtype, TRAIN_RTOL)
        # The last step's state is left on the layers, as the reference leaves it.
        close(j.x, r.x, dtype, TRAIN_RTOL)
        close(j.y, r.y, dtype, TRAIN_RTOL)
        close(j.dL_dW, r.dL_dW, dtype, TRAIN_RTOL)
        close(j.dL_db, r.dL_db, dtype, TRAIN_RTOL)


def test_custom_callables_fall_back_with_one_warning(rng):
    def softplus(z):
        return np.log1p(np.exp(z))

    def derivated_softplus(y):
        return 1 - np.exp(-y)

    np.random.seed(0)
    ref = reference.SimpleNetwork(12, 4, [5], softplus, derivated_softplus)
    with pytest.warns(fastscratch.FallbackWarning, match="softplus"):
        np.random.seed(0)
        jit = fastscratch.SimpleNetwork(12, 4, [5], softplus, derivated_softplus)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per callable, not per layer or network
        np.random.seed(0)
        fastscratch.SimpleNetwork(12, 4, [5], softplus, derivated_softplus)
    assert not jit.builtin_functions
    X, Y = problem(rng, 60)
    expected = ref.train(X, Y, X, Y.argmax(1), batch_size=10, num_epochs=2, verbose=False)
    got = jit.train(X, Y, X, Y.argmax(1), batch_size=10, num_epochs=2, verbose=False)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-10)
    assert got[1] == expected[1]


def test_weights_are_the_users_arrays_checked_at_each_call():
    layer = fastscratch.FullyConnectedLayer(3, 2, fastscratch.sigmoid, fastscratch.derivated_sigmoid)
    W = np.array([[1.0, 2], [3, 4], [5, 6]])
    layer.W = W
    assert layer.W is W  # no private copy: in-place edits and ties reach the kernels
    W[0, 0] = 7.0
    np.testing.assert_array_equal(layer.forward(np.array([[1.0, 0, 0]])),
                                  fastscratch.sigmoid(np.array([[7.0 + layer.b[0], 2.0 + layer.b[1]]])))
    layer.W = np.ones((2, 3))
    with pytest.raises(ValueError, match="W"):
        layer.forward(np.ones((1, 3)))


@pytest.fixture(scope="module")
def mnist_reference_run(mnist_prepared):
    """The seed's settings on the first 3,000 training images, validated on the 10,000 test images."""
    X_train, Y_train, X_test, y_test = mnist_prepared
    np.random.seed(42)
    ref = reference.SimpleNetwork(784, 10, [64, 32])
    history = ref.train(X_train[:3000], Y_train[:3000], X_test, y_test, batch_size=30, num_epochs=3, verbose=False)
    return ref, history


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_three_epochs_of_mnist_match_reference(mnist_prepared, mnist_reference_run, dtype):
    X_train, Y_train, X_test, y_test = mnist_prepared
    ref, expected = mnist_reference_run
    np.random.seed(42)
    jit = fastscratch.SimpleNetwork(784, 10, [64, 32], dtype=dtype)
    got = jit.train(X_train[:3000], Y_train[:3000], X_test, y_test, batch_size=30, num_epochs=3, verbose=False)
    if dtype == np.float64:
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-9)
        assert got[1] == expected[1]
        for r, j in zip(ref.layers, jit.layers):
            np.testing.assert_allclose(j.W, r.W, rtol=1e-9, atol=1e-12)
    else:
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
        np.testing.assert_allclose(got[1], expected[1], atol=0.001)  # within 0.1 point of float64


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch", [128, 300])
def test_large_batches_through_small_hidden_layers_train_compiled_as_the_reference(batch, dtype, rng):
    """Past KERNEL_MAX_BATCH rows the kernels still beat BLAS while the hidden layers are small (the
    seed's 64-32 among them) and the input sparse, and they train as the reference does; batch offsets
    no longer fit 8 bits. A dense input takes the BLAS loop."""
    np.random.seed(5)
    ref = reference.SimpleNetwork(30, 4, (20, 10), dtype=dtype)
    np.random.seed(5)
    jit = fastscratch.SimpleNetwork(30, 4, (20, 10), dtype=dtype)
    X, Y = problem(rng, 3 * batch + 7, num_inputs=30)
    X *= rng.random(X.shape) < 0.4  # 80% zeros: sparse enough for the kernels past 127 rows
    assert jit.compiles_epochs(batch, X) and not jit.compiles_epochs(batch, np.ones_like(X))
    expected = ref.train(X, Y, X[:50], Y[:50].argmax(1), batch_size=batch, num_epochs=2, verbose=False)
    got = jit.train(X, Y, X[:50], Y[:50].argmax(1), batch_size=batch, num_epochs=2, verbose=False)
    rtol = 1e-9 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got[0], expected[0], rtol=rtol)
    for r, j in zip(ref.layers, jit.layers):
        np.testing.assert_allclose(j.W, r.W, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("batch, hidden", [(128, (100, 100)), (4, (300, 250))], ids=["large batch", "large hidden layer"])
def test_large_shapes_train_with_blas_exactly_as_the_reference(batch, hidden, dtype, rng):
    """Past the measured crossover, train runs the reference's BLAS products and the SGD step
    kernel, whose ``W - lr * dL_dW`` are NumPy's bits: the very same numbers in either dtype."""
    np.random.seed(5)
    ref = reference.SimpleNetwork(30, 4, hidden, dtype=dtype)
    np.random.seed(5)
    jit = fastscratch.SimpleNetwork(30, 4, hidden, dtype=dtype)
    assert jit.builtin_functions and not jit.compiles_epochs(batch)
    X, Y = problem(rng, 300, num_inputs=30)
    expected = ref.train(X, Y, X[:50], Y[:50].argmax(1), batch_size=batch, num_epochs=2, verbose=False)
    got = jit.train(X, Y, X[:50], Y[:50].argmax(1), batch_size=batch, num_epochs=2, verbose=False)
    np.testing.assert_array_equal(got[0], expected[0])
    assert got[1] == expected[1]
    for r, j in zip(ref.layers, jit.layers):
        np.testing.assert_array_equal(j.W, r.W)
        np.testing.assert_array_equal(j.dL_dW, r.dL_dW)


@pytest.mark.filterwarnings("ignore::fastscratch.FallbackWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("activation", ["sigmoid", "custom"])
def test_predict_of_several_rows_leaves_them_on_the_layers_as_the_reference(activation, threads, dtype, rng,
                                                                            monkeypatch):
    """The reference's predict is a forward pass: the layers keep that batch's x and y, and a backward after
    it back-propagates that batch (the drop-in's compiled predict used to leave the older x and y)."""
    ref, jit = twins((7, 5), dtype=dtype)
    if activation == "custom":
        for net in (ref, jit):
            net.layers[1].activation_function = lambda z: 1 / (1 + np.exp(-z))
    monkeypatch.setattr(config, "MIN_ROWS_PER_THREAD", 100)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", threads)
    X, Y = problem(rng, 700)
    for net in (ref, jit):
        net.forward(X[:3])  # an older batch
    np.testing.assert_array_equal(jit.predict(X), ref.predict(X))
    for r, j in zip(ref.layers, jit.layers):
        assert j.x.shape == r.x.shape and j.y.shape == r.y.shape == (700, r.size)
        close(j.x, r.x, dtype)
        close(j.y, r.y, dtype)
    dL_dy = functions.derivated_loss_L2(ref.layers[-1].y, Y)
    close(jit.backward(dL_dy), ref.backward(dL_dy), dtype)
    for r, j in zip(ref.layers, jit.layers):
        close(j.dL_dW, r.dL_dW, dtype)


CONSTRUCTIONS = {
    "Neuron": (lambda module, dtype: module.Neuron(5, functions.sigmoid, dtype=dtype),
               lambda obj, dtype: obj.__init__(7, functions.sigmoid, dtype=dtype)),
    "FullyConnectedLayer": (
        lambda module, dtype: module.FullyConnectedLayer(5, 3, functions.sigmoid, functions.derivated_sigmoid,
                                                         dtype=dtype),
        lambda obj, dtype: obj.__init__(7, 4, functions.tanh, functions.derivated_tanh, dtype=dtype)),
    "SimpleNetwork": (lambda module, dtype: module.SimpleNetwork(5, 3, [4], dtype=dtype),
                      lambda obj, dtype: obj.__init__(7, 4, [6, 5], dtype=dtype)),
}


def _used(obj, rng):
    """Run what an object of this class runs, so that it holds state from its first construction."""
    if isinstance(obj, reference.SimpleNetwork):
        X, Y = problem(rng, 40, 5, 3)
        obj.train(X, Y, X, Y.argmax(1), batch_size=10, num_epochs=1, verbose=False)
        obj.predict(X)
    elif isinstance(obj, reference.FullyConnectedLayer):
        obj.backward(np.ones((2, 3)) - obj.forward(rng.random((2, 5))))
        obj.optimize(0.1)
    else:
        obj.forward(rng.random(5))


@pytest.mark.parametrize("old, new", [(np.float64, np.float64), (np.float32, np.float32), (np.float64, np.float32),
                                      (np.float32, np.float64)])
@pytest.mark.parametrize("flavour", ["reference", "jit"])
@pytest.mark.parametrize("kind", CONSTRUCTIONS)
def test_init_run_again_builds_anew(kind, flavour, old, new, rng):
    """A notebook cell run again on an old object (``net.__init__(...)``, which the tutorial's classes allow)
    is a fresh construction, another dtype included: the same object as a new one built after the same
    draws, and nothing of the old one's state left (it used to raise ``dtype is fixed at construction``)."""
    module = {"reference": reference, "jit": fastscratch}[flavour]
    build, rebuild = CONSTRUCTIONS[kind]
    obj = build(module, old)
    _used(obj, rng)
    np.random.seed(11)
    rebuild(obj, new)
    fresh = build(module, new)
    np.random.seed(11)
    rebuild(fresh, new)
    assert obj.dtype == fresh.dtype == new and repr(obj) == repr(fresh)
    layers = [(obj, fresh)] if kind == "Neuron" else list(zip(*(getattr(o, "layers", [o]) for o in (obj, fresh))))
    for a, b in layers:
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
        assert a.W.dtype == b.W.dtype == new
        if kind != "Neuron":
            assert a.x is a.y is a.dL_dW is a.dL_db is None
    x = rng.random((3, 7))
    np.testing.assert_array_equal(obj.forward(x), fresh.forward(x))
    with pytest.raises(AttributeError, match="fixed at construction"):
        obj.dtype = np.float32 if new == np.float64 else np.float64


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_init_run_again_keeps_nothing_stale_in_the_drop_in(dtype, rng):
    """Kept data and routes belong to the old construction: the rebuilt network trains, predicts and steps
    call by call as a new one does, and as the reference does."""
    X, Y = problem(rng, 60)
    X_val, y_val = X[:20], Y[:20].argmax(1)
    net = fastscratch.SimpleNetwork(12, 4, [6], dtype=np.float64 if dtype == np.float32 else np.float32)
    net.train(X, Y, X_val, y_val, batch_size=10, num_epochs=1, verbose=False)
    net.predict(X)
    old_kept, old_routes = net.kept_data, net._routes
    nets = []
    for module in (reference, None):
        np.random.seed(4)
        if module is None:
            net.__init__(12, 4, [7, 5], dtype=dtype)
            nets.append(net)
        else:
            nets.append(module.SimpleNetwork(12, 4, [7, 5], dtype=dtype))
    assert net.kept_data is not old_kept and net._routes is not old_routes and len(net.kept_data) == 0
    results = [n.train(X, Y, X_val, y_val, batch_size=10, num_epochs=2, learning_rate=0.1, verbose=False)
               for n in nets]
    close(results[1][0], results[0][0], dtype, TRAIN_RTOL)
    np.testing.assert_array_equal(nets[1].predict(X), nets[0].predict(X))
    for n in nets:
        n.backward(functions.derivated_loss_L2(n.forward(X[:10]), Y[:10]))
        n.optimize(0.1)
    for r, j in zip(*(n.layers for n in nets)):
        close(j.W, r.W, dtype, TRAIN_RTOL)


@pytest.mark.parametrize("flavour", ["reference", "jit"])
@pytest.mark.parametrize("num_epochs, print_frequency, printed", [
    (5, 1, [0, 1, 2, 3, 4]), (5, 2, [0, 2, 4]), (6, 4, [0, 4, 5]), (3, 20, [0, 2]), (1, 20, [0]), (0, 20, [])])
def test_print_frequency_prints_every_nth_epoch_and_the_last(flavour, num_epochs, print_frequency, printed, rng,
                                                             capsys):
    """The book's notebook gives ``train`` a ``print_frequency`` (it passes 20): the log line of every
    ``print_frequency``-th epoch and of the last; 1, the default, prints every epoch (the translated text)."""
    X, Y = problem(rng, 40)
    lines = []
    for module in (reference, {"reference": reference, "jit": fastscratch}[flavour]):
        np.random.seed(2)
        net = module.SimpleNetwork(12, 4, [6])
        losses, accuracies = net.train(X, Y, X, Y.argmax(1), batch_size=10, num_epochs=num_epochs,
                                       print_frequency=print_frequency)
        lines.append(capsys.readouterr().out.splitlines())
        assert len(losses) == num_epochs
    assert lines[1] == [reference.epoch_line(i, losses[i], accuracies[i]) for i in printed]
    assert lines[1] == lines[0]


@pytest.mark.parametrize("flavour", ["reference", "jit"])
def test_print_frequency_as_the_book_passes_it(flavour, rng, capsys):
    """Positionally, after the learning rate, as the book's signature has it; silent with ``verbose=False``."""
    module = {"reference": reference, "jit": fastscratch}[flavour]
    X, Y = problem(rng, 40)
    net = module.SimpleNetwork(12, 4, [6])
    net.train(X, Y, None, None, 10, 45, 1e-3, 20)
    assert [line[:10] for line in capsys.readouterr().out.splitlines()] == ["Epoch    0", "Epoch   20", "Epoch   40",
                                                                           "Epoch   44"]
    net.train(X, Y, batch_size=10, num_epochs=3, print_frequency=2, verbose=False)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("flavour", ["reference", "jit"])
@pytest.mark.parametrize("value, error", [(0, ValueError), (-20, ValueError), (2.0, TypeError), (True, TypeError),
                                          ("20", TypeError), (None, TypeError)])
def test_print_frequency_is_checked_like_other_arguments(flavour, value, error, rng):
    module = {"reference": reference, "jit": fastscratch}[flavour]
    X, Y = problem(rng, 40)
    net = module.SimpleNetwork(12, 4, [6])
    W = net.layers[0].W.copy()
    with pytest.raises(error, match="print_frequency"):
        net.train(X, Y, batch_size=10, num_epochs=2, print_frequency=value, verbose=False)
    np.testing.assert_array_equal(net.layers[0].W, W)  # refused before any step


DROP_IN = {fastscratch.Neuron: ["forward"],
           fastscratch.FullyConnectedLayer: ["forward", "backward", "optimize"],
           fastscratch.SimpleNetwork: ["forward", "predict", "backward", "optimize", "evaluate_accuracy", "train"]}


@pytest.mark.parametrize("cls", DROP_IN, ids=lambda cls: cls.__name__)
def test_the_drop_in_overrides_none_of_the_references_underscore_methods(cls):
    """The oracle stands alone: a drop-in class overriding one of its underscore methods would make the
    reference's own control flow run the drop-in's code, so an edit of the oracle would change the drop-in."""
    base = cls.__mro__[1]
    assert base.__module__ == "fastscratch.reference"
    overridden = [name for name in vars(cls) if name.startswith("_") and not name.endswith("__")
                  and hasattr(base, name)]
    assert overridden == []


@pytest.mark.parametrize("cls", DROP_IN, ids=lambda cls: cls.__name__)
def test_every_compute_method_is_the_drop_ins_own(cls):
    assert [name for name in DROP_IN[cls] if name not in vars(cls)] == []
    assert all(vars(cls)[name].__doc__ == getattr(cls.__mro__[1], name).__doc__ for name in DROP_IN[cls])


def test_the_per_call_checks_answer_the_common_case_and_defer_the_rest(monkeypatch, rng):
    """forward, backward and optimize of a network of plain float arrays answer their checks without the
    reference's check functions; any other state goes through them (their errors, warnings and acceptances)."""
    from fastscratch import _validation
    called = []
    for name in ("check_network", "check_stored_batch", "check_output_gradient", "check_stored_gradients",
                 "warn_unless_finite"):
        monkeypatch.setattr(_validation, name, lambda *args, _f=getattr(_validation, name), _n=name, **kwargs:
                            called.append(_n) or _f(*args, **kwargs))
    _, jit = twins((5,))
    X, Y = problem(rng, 7)
    jit.backward(jit.forward(X) - Y)
    jit.optimize(0.1)
    jit.predict(X[0])
    assert called == []
    jit.layers[0].W = jit.layers[0].W.astype(np.float32)  # accepted by the reference's check: computes in float64
    jit.layers[1].x = jit.layers[1].x.tolist()
    out = jit.forward(X)
    jit.layers[1].x = jit.layers[1].x.tolist()
    jit.backward(out - Y)
    jit.layers[1].dL_dW = jit.layers[1].dL_dW.tolist()
    jit.optimize(0.1)
    with pytest.warns(UserWarning, match="non-finite"):
        jit.forward(np.full((2, 12), np.nan))
    assert {"check_network", "check_stored_batch", "check_stored_gradients", "warn_unless_finite"} <= set(called)
    with pytest.raises(ValueError, match="shape of the last output"):
        jit.backward(np.ones((3, 4)))
    jit.layers.append(jit.layers[0])
    with pytest.raises(ValueError, match="layer 2 takes 12 inputs"):
        jit.forward(X)

