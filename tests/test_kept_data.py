"""What train keeps between calls lives on the network: visible, sized, dropped on request, freed with it."""
import copy
import gc
import pickle
import weakref

import numpy as np

import fastscratch
from fastscratch.kernels.structure import batch_entries
from fastscratch.prediction import indices_dtype
from twins import assert_same, pair


def mnist_net(mnist_prepared, rows=600):
    X, Y = mnist_prepared[0][:rows], mnist_prepared[1][:rows]
    np.random.seed(42)
    return fastscratch.SimpleNetwork(784, 10, [64, 32]), X, Y


def test_the_kept_structure_is_on_the_network_with_its_documented_size(mnist_prepared):
    net, X, Y = mnist_net(mnist_prepared)
    assert len(net.kept_data) == 0 and net.kept_data.nbytes == 0
    net.train(X, Y, batch_size=30, num_epochs=1, verbose=False)
    nonzeros = np.count_nonzero(X)
    assert len(net.kept_data) == 1
    # about 10 bytes per nonzero entry (int16 index, float64 value), as much again for the batches' entries in
    # block order and 3 more for their columns
    assert 20 * nonzeros <= net.kept_data.nbytes <= 26 * nonzeros
    assert "MB" in repr(net.kept_data)
    other, _, _ = mnist_net(mnist_prepared)
    assert len(other.kept_data) == 0  # nothing shared between networks


def test_the_evaluations_groups_are_kept_with_the_validation_sets_structure(mnist_prepared, monkeypatch):
    """Each epoch's accuracy, and the next call's, walk X_val in groups whose block order is built once per data
    set."""
    net, X, Y = mnist_net(mnist_prepared)
    X_val, y_val = mnist_prepared[2][:300], mnist_prepared[3][:300]
    built = []
    monkeypatch.setattr(fastscratch.kept_data, "batch_entries",
                        lambda *args: built.append(args) or batch_entries(*args))
    for _ in range(2):
        net.train(X, Y, X_val, y_val, batch_size=30, num_epochs=2, verbose=False)
    assert len(built) == 1
    entry = net.kept_data.lookup(X_val, indices_dtype((784, 64, 32, 10)))
    group = fastscratch.prediction.EVAL_GROUP
    entries = entry.batches[("entries", group)]
    for got, expected in zip(entries, batch_entries(entry.indptr, entry.indices, entry.values, 784, group)):
        np.testing.assert_array_equal(got, expected)
    with_groups = net.kept_data.nbytes
    entry.batches.clear()
    assert net.kept_data.nbytes == with_groups - sum(a.nbytes for a in entries)


def test_kept_data_is_freed_with_its_network(mnist_prepared):
    net, X, Y = mnist_net(mnist_prepared)
    net.train(X, Y, batch_size=30, num_epochs=1, verbose=False)
    entry = net.kept_data.lookup(X, indices_dtype((784, 64, 32, 10)))
    values = weakref.ref(entry.values)
    del entry, net
    gc.collect()
    assert values() is None


def test_cleared_or_not_kept_the_results_stay_the_references(rng):
    X = rng.random((60, 12)) * (rng.random((60, 12)) > 0.75)
    Y = np.eye(4)[rng.integers(0, 4, 60)]
    nets = pair()
    nets[1].kept_data.capacity = 0
    for _ in range(2):
        assert_same(nets, [net.train(X, Y, X, Y.argmax(1), batch_size=10, num_epochs=1, verbose=False)
                           for net in nets])
        assert len(nets[1].kept_data) == 0
    nets[1].kept_data.capacity = 2
    nets[1].train(X, Y, X[:20], Y[:20].argmax(1), batch_size=10, num_epochs=0, verbose=False)
    nets[0].train(X, Y, X[:20], Y[:20].argmax(1), batch_size=10, num_epochs=0, verbose=False)
    assert_same(nets, [net.train(X, Y, X[:20], Y[:20].argmax(1), batch_size=10, num_epochs=1, verbose=False)
                       for net in nets])
    assert len(nets[1].kept_data) == 2
    nets[1].kept_data.clear()
    assert len(nets[1].kept_data) == 0 and nets[1].kept_data.nbytes == 0
    assert_same(nets, [net.train(X, Y, batch_size=10, num_epochs=1, verbose=False) for net in nets])


def test_copies_and_pickles_start_with_nothing_kept(rng):
    X = rng.random((60, 12)) * (rng.random((60, 12)) > 0.75)
    Y = np.eye(4)[rng.integers(0, 4, 60)]
    net = pair()[1]
    net.train(X, Y, batch_size=10, num_epochs=1, verbose=False)
    assert len(net.kept_data) == 1
    twins = [copy.deepcopy(net), pickle.loads(pickle.dumps(net))]
    assert [len(twin.kept_data) for twin in twins] == [0, 0]
    results = [n.train(X, Y, batch_size=10, num_epochs=1, verbose=False) for n in (net, *twins)]
    for twin, result in zip(twins, results[1:]):
        assert len(twin.kept_data) == 1
        np.testing.assert_array_equal(result[0], results[0][0])
        for a, b in zip(net.layers, twin.layers):
            np.testing.assert_array_equal(a.W, b.W)
