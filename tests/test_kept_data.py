"""What the calls keep of their data is kept with the data: shared by every network that reads the same arrays,
freed with them (not with a network), visible, sized and dropped on request."""
import copy
import gc
import json
import os
import pickle
import subprocess
import sys
import textwrap
import threading
import weakref

import numpy as np
import pytest

import fastscratch
from fastscratch import config, inputs, kept_data, reference
from fastscratch.kept_data import KeptData, kept_on
from fastscratch.kernels.structure import batch_entries
from fastscratch.buffers import indices_dtype
from twins import assert_same, pair, problem

MNIST_SIZES = (784, 64, 32, 10)


def mnist_net(dtype=np.float64):
    np.random.seed(42)
    return fastscratch.SimpleNetwork(784, 10, [64, 32], dtype=dtype)


def own_copy(mnist_prepared, rows=900):
    """The first rows of MNIST's training set and test set, in arrays of this test's own: what is kept with the
    session's arrays is shared by every test that reads them."""
    X_train, Y_train, X_test, y_test = mnist_prepared
    return X_train[:rows].copy(), Y_train[:rows], X_test[:rows].copy(), y_test[:rows]


@pytest.fixture
def indexings(monkeypatch):
    """The number of rows each time a data set is indexed (``nonzero_structure``), in order."""
    rows = []
    index = inputs.nonzero_structure
    monkeypatch.setattr(inputs, "nonzero_structure", lambda X, *args: rows.append(len(X)) or index(X, *args))
    return rows


def structure_of(view, dtype=np.float64):
    """The ``Indexed`` kept with ``view``'s array for that view, read by a network of ``dtype``, or None."""
    return kept_data.KeptWithData().slot(view, view.astype(dtype, copy=False), indices_dtype(MNIST_SIZES)).entry


def test_networks_on_the_same_arrays_share_one_structure_of_the_documented_size(mnist_prepared, indexings):
    X_train, Y_train, _, _ = own_copy(mnist_prepared)
    nets = [mnist_net() for _ in range(3)]
    for net in nets:
        net.train(X_train[:600], Y_train[:600], batch_size=30, num_epochs=1, verbose=False)  # a new view each time
    assert indexings == [600]
    held = kept_on(X_train)
    nonzeros = np.count_nonzero(X_train[:600])
    # about 10 bytes per nonzero entry (int16 index, float64 value), as much again for the batches' entries in
    # block order and 3 more for their columns
    assert len(held) == 1 and 20 * nonzeros <= held.nbytes <= 26 * nonzeros
    assert [net.kept_data.nbytes for net in nets] == [held.nbytes] * 3
    assert [len(net.kept_data) for net in nets] == [1] * 3
    assert "MB" in repr(held) and "MB" in repr(nets[0].kept_data)


def test_views_and_conversions_each_keep_their_own_structure(mnist_prepared, indexings):
    """Another view of the same array, or the same view converted to another dtype, is another data set; the
    float64 data a float32 network converts at each call is found again through the array it came from. An
    array keeps the structures of its last ``capacity`` such data sets (the largest capacity of the networks
    that read it)."""
    X_train, Y_train, _, _ = own_copy(mnist_prepared)

    def train(dtype, rows, capacity=2):
        net = mnist_net(dtype)
        net.kept_data.capacity = capacity
        net.train(X_train[rows], Y_train[rows], batch_size=30, num_epochs=1, verbose=False)

    first, second = slice(0, 300), slice(300, 600)
    train(np.float32, first)
    train(np.float64, first)
    train(np.float32, first)
    assert indexings == [300, 300]
    assert structure_of(X_train[first], np.float32).values.dtype == np.float32
    assert structure_of(X_train[first], np.float64).values.dtype == np.float64
    train(np.float32, second)  # the least recently used (float64, first rows) makes room
    train(np.float32, first)
    assert indexings == [300, 300, 300] and structure_of(X_train[first], np.float64) is None
    train(np.float64, first, capacity=3)
    train(np.float32, second)
    train(np.float32, first)
    assert indexings == [300, 300, 300, 300] and len(kept_on(X_train)) == 3


def test_the_evaluations_groups_are_kept_with_the_validation_sets_structure(mnist_prepared, monkeypatch):
    """Each epoch's accuracy, and the next call's, walk X_val in groups whose block order is built once per data
    set."""
    X_train, Y_train, X_test, y_test = own_copy(mnist_prepared, rows=300)
    built = []
    monkeypatch.setattr(kept_data, "batch_entries", lambda *args: built.append(args) or batch_entries(*args))
    net = mnist_net()
    for _ in range(2):
        net.train(X_train, Y_train, X_test, y_test, batch_size=30, num_epochs=2, verbose=False)
    assert len(built) == 1
    entry = structure_of(X_test)
    group = config.EVAL_GROUP
    entries = entry.batches[("entries", group)]
    for got, expected in zip(entries, batch_entries(entry.indptr, entry.indices, entry.values, 784, group)):
        np.testing.assert_array_equal(got, expected)
    with_groups = kept_on(X_test).nbytes
    entry.batches.clear()
    assert kept_on(X_test).nbytes == with_groups - sum(a.nbytes for a in entries)


def test_structures_are_freed_with_their_data_not_with_the_networks(mnist_prepared, indexings):
    X_train, Y_train, _, _ = own_copy(mnist_prepared)
    X, Y = X_train[:600].copy(), Y_train[:600]
    nets = [mnist_net() for _ in range(2)]
    for net in nets:
        net.train(X[:300], Y[:300], X[300:], Y[300:].argmax(1), batch_size=30, num_epochs=1, verbose=False)
    assert indexings == [300, 300] and len(kept_on(X)) == 2
    values = weakref.ref(structure_of(X[:300]).values)
    del nets, net
    gc.collect()
    assert values() is not None  # the networks are gone, the data is not: a new network finds its structure
    mnist_net().train(X[:300], Y[:300], batch_size=30, num_epochs=1, verbose=False)
    assert indexings == [300, 300]
    nets = [mnist_net()]
    nets[0].train(X[:300], Y[:300], batch_size=30, num_epochs=1, verbose=False)
    nets[0].forward(X_train[:2])  # the layers' x, which held the last batch (a view of X), now hold other data
    base = weakref.ref(X)
    del X
    gc.collect()
    assert base() is None and values() is None  # the data is gone, a network is not
    assert len(nets[0].kept_data) == 0 and nets[0].kept_data.nbytes == 0
    assert all(reference() is not None for reference, _ in kept_data._WITH_ARRAYS.values())


def test_a_network_trained_on_data_changed_in_place_since_another_used_it_reads_it_afresh(rng, indexings):
    """The comparison before trust holds across networks: one network's structure is another's assumption."""
    X, Y = problem(rng, 60)
    X_val, y_val = X[:20], Y[:20].argmax(1)
    first, second = pair()[1], pair()[1]
    first.train(X, Y, X_val, y_val, batch_size=10, num_epochs=1, verbose=False)
    X[39:43] = rng.random((4, 12))  # rows the sampled comparison does not read: found by the full one
    nets = pair()
    nets[1] = second
    assert_same(nets, [net.train(X, Y, X_val, y_val, batch_size=10, num_epochs=2, verbose=False) for net in nets])
    assert indexings == [60, 20, 60]


def test_capacity_0_keeps_nothing_and_clear_drops_what_a_network_used(rng):
    X, Y = problem(rng, 60)
    nets = pair()
    nets[1].kept_data.capacity = 0
    for _ in range(2):
        assert_same(nets, [net.train(X, Y, X, Y.argmax(1), batch_size=10, num_epochs=1, verbose=False)
                           for net in nets])
        assert len(nets[1].kept_data) == 0 and kept_on(X) is None
    nets[1].kept_data.capacity = 2
    for net in nets:
        net.train(X, Y, X[:20], Y[:20].argmax(1), batch_size=10, num_epochs=0, verbose=False)
    assert_same(nets, [net.train(X, Y, X[:20], Y[:20].argmax(1), batch_size=10, num_epochs=1, verbose=False)
                       for net in nets])
    assert len(nets[1].kept_data) == 2 and len(kept_on(X)) == 2
    nets[1].kept_data.clear()
    assert len(nets[1].kept_data) == 0 and nets[1].kept_data.nbytes == 0 and len(kept_on(X)) == 0
    assert_same(nets, [net.train(X, Y, batch_size=10, num_epochs=1, verbose=False) for net in nets])


def test_copies_and_pickles_find_what_the_arrays_keep(rng, indexings):
    X, Y = problem(rng, 60)
    net = pair()[1]
    net.train(X, Y, batch_size=10, num_epochs=1, verbose=False)
    twins = [copy.deepcopy(net), pickle.loads(pickle.dumps(net))]
    assert [len(twin.kept_data) for twin in twins] == [0, 0]
    assert all(twin.kept_data is not net.kept_data for twin in twins)
    results = [n.train(X, Y, batch_size=10, num_epochs=1, verbose=False) for n in (net, *twins)]
    assert indexings == [60]
    for twin, result in zip(twins, results[1:]):
        assert len(twin.kept_data) == 1
        np.testing.assert_array_equal(result[0], results[0][0])
        for a, b in zip(net.layers, twin.layers):
            np.testing.assert_array_equal(a.W, b.W)


def test_a_holder_given_to_networks_keeps_the_structures_itself(rng, indexings):
    """``net.kept_data = KeptData()``: kept by shape in the holder, for as long as it lives, not with the data."""
    X, Y = problem(rng, 60)
    holder = KeptData()
    nets = pair()
    nets[1].kept_data = holder
    other = pair()[1]
    other.kept_data = holder
    assert_same(nets, [net.train(X, Y, batch_size=10, num_epochs=1, verbose=False) for net in nets])
    other.train(X.copy(), Y, batch_size=10, num_epochs=1, verbose=False)  # same shape and contents: compared, used
    assert indexings == [60] and len(holder) == 1 and kept_on(X) is None
    values = weakref.ref(holder.slot(X, X, indices_dtype((12, 6, 4))).entry.values)
    del holder, nets, other
    gc.collect()
    assert values() is None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_threads_train_networks_on_the_same_data(dtype, mnist_prepared, indexings):
    """Each thread's networks give the reference's results; the structure is built once or twice (both may
    index it before either keeps it), never stale."""
    X_train, Y_train, X_test, y_test = own_copy(mnist_prepared)
    X, Y, X_val, y_val = X_train[:900], Y_train[:900], X_test[:300], y_test[:300]
    np.random.seed(42)
    ref = reference.SimpleNetwork(784, 10, [64, 32], dtype=dtype)
    expected = ref.train(X, Y, X_val, y_val, batch_size=30, num_epochs=2, verbose=False)
    results, errors = {}, []
    nets = {(name, round_): mnist_net(dtype) for name in "ab" for round_ in range(2)}  # np.random is global

    def work(name):
        try:
            for round_ in range(2):
                results[name, round_] = nets[name, round_].train(X, Y, X_val, y_val, batch_size=30, num_epochs=2,
                                                                 verbose=False)
        except BaseException as err:  # noqa: BLE001  (reported below)
            errors.append(err)
    threads = [threading.Thread(target=work, args=(name,)) for name in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for losses, accuracies in results.values():
        np.testing.assert_allclose(losses, expected[0], rtol=1e-9 if dtype == np.float64 else 1e-5)
        np.testing.assert_allclose(accuracies, expected[1], atol=0 if dtype == np.float64 else 0.005)
    assert indexings.count(900) in (1, 2) and indexings.count(300) in (1, 2)
    assert len(kept_on(X_train)) == 1 and len(kept_on(X_test)) == 1


RSS_SCRIPT = textwrap.dedent("""
    import gc, json, sys
    import numpy as np, psutil
    import fastscratch
    from fastscratch.datasets import load_mnist, prepare
    from fastscratch.kept_data import kept_on

    def rss():
        gc.collect()
        return psutil.Process().memory_info().rss

    X_train, Y_train, X_test, y_test = prepare(*load_mnist(sys.argv[1]))
    count, nets, figures = int(sys.argv[2]), [], {}
    for i in range(count):
        np.random.seed(i)
        nets.append(fastscratch.SimpleNetwork(784, 10, [64, 32]))
        nets[-1].train(X_train, Y_train, X_test, y_test, batch_size=30, num_epochs=1, verbose=False)
        if i == 0:
            figures["one"], figures["kept"] = rss(), sum(kept_on(X).nbytes for X in (X_train, X_test))
            figures["kept X_train"] = kept_on(X_train).nbytes
    figures["all"] = rss()
    figures["each"] = [net.kept_data.nbytes for net in nets]
    figures["own"] = sum(getattr(layer, name).nbytes for layer in nets[0].layers
                         for name in ("W", "b", "y", "dL_dW", "dL_db"))  # a network's own arrays
    del X_train, Y_train
    figures["without X_train"] = rss()
    figures["left"] = [len(net.kept_data) for net in nets]  # X_test's: the layers' x hold its last row
    print(json.dumps(figures))
""")


def test_a_sweep_of_networks_on_the_same_data_holds_the_structures_once(mnist_dir, tmp_path):
    """20 networks trained on MNIST's arrays, in a process of their own: past the first network and the others'
    own arrays (weights, gradients, last outputs), the process grows by at most a fifth of one network's
    structures (each network used to keep its own 136 MB: 2.6 GB more for 20), and gives X_train's back when
    X_train goes, while the networks live (X_test's stays: their layers' x hold its last row)."""
    script = tmp_path / "sweep.py"
    script.write_text(RSS_SCRIPT)
    result = subprocess.run([sys.executable, str(script), mnist_dir, "20"], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    kept = figures["kept"]
    assert 200e6 < kept < 280e6  # X_train's structure and batches (about 212 MB), X_test's structure and groups
    assert figures["each"] == [kept] * 20
    assert figures["all"] - figures["one"] - 19 * figures["own"] < 0.2 * kept, figures
    assert figures["all"] - figures["without X_train"] > 0.8 * figures["kept X_train"], figures
    assert figures["left"] == [1] * 20
