"""A train call (``train_call``): the data it reads is what the reference reads, through callbacks and between
calls."""
import ast
import contextlib
import gc
import io
import os
import signal
import subprocess
import sys
import threading
import warnings

import numba
import numpy as np
import pytest

import fastscratch
from fastscratch import reference, train_call
from twins import assert_same, pair, problem

EDITS = {
    "X_train *= 0.5": lambda X, X_val, epoch: X.__imul__(0.5),
    "X_train rows zeroed": lambda X, X_val, epoch: X.__setitem__(slice(epoch * 50, epoch * 50 + 50), 0.0),
    "X_val[:] = reversed": lambda X, X_val, epoch: X_val.__setitem__(slice(None), X_val[::-1].copy()),
    "both": lambda X, X_val, epoch: (X.__imul__(1.5), X_val.__imul__(0.25)),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("edit", EDITS)
def test_a_callback_editing_the_data_in_place_gives_the_references_result(edit, dtype, mnist_prepared, threads):
    X_train, y_train, X_test, y_test = mnist_prepared
    results = []
    for module in (reference, fastscratch):
        X, X_val = X_train[:600].copy(), X_test[:200].copy()
        np.random.seed(42)
        net = module.SimpleNetwork(784, 10, [64, 32], dtype=dtype)
        X_narrow = X if dtype == np.float64 else X.astype(dtype)  # the data each call is given, edited in place
        X_val_narrow = X_val if dtype == np.float64 else X_val.astype(dtype)
        losses, accuracies = net.train(X_narrow, y_train[:600], X_val_narrow, y_test[:200], batch_size=30,
                                       num_epochs=4, learning_rate=0.05, verbose=False,
                                       callback=lambda e, l, a: EDITS[edit](X_narrow, X_val_narrow, e))
        results.append((losses, accuracies, [layer.W.copy() for layer in net.layers]))
    (ref_losses, ref_acc, ref_W), (losses, acc, W) = results
    np.testing.assert_allclose(losses, ref_losses, rtol=1e-9 if dtype == np.float64 else 1e-5)
    assert acc == ref_acc
    for r, j in zip(ref_W, W):
        np.testing.assert_allclose(j, r, rtol=1e-7, atol=1e-7 if dtype == np.float64 else 1e-4)


@pytest.fixture(params=[2, 1], ids=["compared-during-the-epoch", "compared-first"])
def threads(request, monkeypatch):
    from numba import config
    monkeypatch.setattr(config, "NUMBA_NUM_THREADS", request.param)


def test_X_changed_in_place_between_calls_is_read_afresh(rng, threads):
    nets = pair()
    X, Y = problem(rng, 60)
    data = {id(net): X.copy() for net in nets}
    for round_ in range(3):
        for net in nets:
            own = data[id(net)]
            own[round_ * 7:(round_ + 1) * 7] = rng.random((7, 12)) if net is nets[0] else 0
        data[id(nets[1])][:] = data[id(nets[0])]  # the same new contents, written in place
        results = [net.train(data[id(net)], Y, data[id(net)], Y.argmax(1), batch_size=10, num_epochs=1,
                             verbose=False) for net in nets]
        assert_same(nets, results)
    results = [net.train(data[id(net)], Y, batch_size=10, num_epochs=2, verbose=False) for net in nets]  # unchanged
    assert_same(nets, results)
    # A different array with the same shape (possibly at a reused address) is not mistaken for the last one.
    for _ in range(3):
        fresh = [rng.random((60, 12))] * 2
        assert_same(nets, [net.train(x, Y, batch_size=10, num_epochs=1, verbose=False) for net, x in zip(nets, fresh)])
        del fresh
        gc.collect()


def test_a_bad_X_train_is_reported_before_a_new_bad_X_val(rng, threads):
    """X_train compared with its kept structure, X_val new and not finite: X_train's error, as in the reference."""
    X, Y = problem(rng, 60)
    for net in pair():
        net.train(X, Y, batch_size=10, num_epochs=1, verbose=False)
        X_bad, X_val = X.copy(), rng.random((33, 12))
        X_bad[17, 3], X_val[5, 2] = np.nan, np.inf
        with pytest.raises(ValueError, match=r"X_train contains non-finite.*\(17, 3\)"):
            net.train(X_bad, Y, X_val, Y[:33].argmax(1), batch_size=10, num_epochs=1, verbose=False)


def test_other_data_of_the_same_shape_is_indexed_at_once(rng, monkeypatch):
    """A shuffled (or new) X of the kept shape fails the sampled rows at once: one epoch run, not two."""
    X, Y = problem(rng, 300)
    runs = []
    run = train_call.TrainCall._run
    monkeypatch.setattr(train_call.TrainCall, "_run", lambda self, *args: runs.append(1) or run(self, *args))
    nets = pair()
    for round_ in range(3):
        order = rng.permutation(300) if round_ else np.arange(300)
        assert_same(nets, [net.train(X[order], Y[order], batch_size=10, num_epochs=1, verbose=False)
                           for net in nets])
    assert len(runs) == 3


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("num_epochs", [0, 1, 2])
@pytest.mark.parametrize("bad", ["X_train", "X_val", "both"])
def test_nan_written_between_calls_is_rejected_with_the_weights_untouched(bad, num_epochs, dtype, rng, threads):
    """Each array's kept structure is compared with it in the next call; a NaN or inf found so raises the
    reference's error (X_train's first when both are bad) with the weights as they were before the call. The
    float64 data of a float32 network is compared as it narrows, so the same error comes from it."""
    X, Y = problem(rng, 60)
    X_val, y_val = problem(rng, 33)
    for net in pair(dtype=dtype):
        net.train(X, Y, X_val, y_val.argmax(1), batch_size=10, num_epochs=1, verbose=False)
        before = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
        if bad != "X_val":
            X[17, 3] = np.nan
        if bad != "X_train":
            X_val[5, 2] = np.inf
        error = r"X_val contains non-finite.*\(5, 2\)" if bad == "X_val" else r"X_train contains non-finite.*\(17, 3\)"
        with pytest.raises(ValueError, match=error):
            net.train(X, Y, X_val, y_val.argmax(1), batch_size=10, num_epochs=num_epochs, verbose=False)
        for layer, (W, b) in zip(net.layers, before):
            np.testing.assert_array_equal(layer.W, W)
            np.testing.assert_array_equal(layer.b, b)
        X[17, 3], X_val[5, 2] = 0.5, 0.25


def test_float64_data_too_large_for_a_float32_network_between_calls_is_the_references_error(rng, threads):
    """A value that narrows to inf does not match the kept float32 structure: the reference's error, the
    weights as they were."""
    X, Y = problem(rng, 60)
    for net in pair(dtype=np.float32):
        net.train(X, Y, batch_size=10, num_epochs=1, verbose=False)
        before = [layer.W.copy() for layer in net.layers]
        X[20, 4] = 1e300
        with pytest.raises(ValueError, match=r"X_train holds values too large for float32, first at index \(20, 4\)"):
            net.train(X, Y, batch_size=10, num_epochs=1, verbose=False)
        for layer, W in zip(net.layers, before):
            np.testing.assert_array_equal(layer.W, W)
        X[20, 4] = 0.5


def test_float64_data_on_a_float32_network_changed_in_place_is_read_afresh(rng, threads):
    """Converted on every call, then compared with the kept float32 structure during the first epoch."""
    nets = pair(dtype=np.float32)
    X, Y = problem(rng, 60)
    for round_ in range(3):
        X[round_ * 7:(round_ + 1) * 7] = rng.random((7, 12))
        results = [net.train(X, Y, X[:20], Y[:20].argmax(1), batch_size=10, num_epochs=1, verbose=False)
                   for net in nets]
        assert_same(nets, results, rtol=1e-5)
        for r, j in zip(*(net.layers for net in nets)):
            assert j.W.dtype == np.float32 and r.W.dtype == np.float32


def test_X_val_changed_in_place_between_calls_is_read_afresh(rng, threads):
    """X_val has a kept structure of its own (another shape than X_train's), compared during the first epoch."""
    nets = pair()
    X, Y = problem(rng, 60)
    X_val, y_val = problem(rng, 33)
    own = {id(net): X_val.copy() for net in nets}
    for round_ in range(3):
        for net in nets:
            own[id(net)][round_ * 5:(round_ + 1) * 5] = rng.random((5, 12)) if net is nets[0] else 0
        own[id(nets[1])][:] = own[id(nets[0])]
        assert_same(nets, [net.train(X, Y, own[id(net)], y_val.argmax(1), batch_size=10, num_epochs=1,
                                     verbose=False) for net in nets])


@pytest.mark.parametrize("bad", ["X_train", "X_val", "both"])
def test_nan_written_by_a_callback_is_trained_on_as_in_the_reference(bad, rng, threads):
    """The reference reads the arrays at every batch: NaN written by the callback raises NonFiniteLossError at
    the batch that holds it (the weights as before that batch), or makes those rows' predictions NaN."""
    X, Y = problem(rng, 80)
    X_val, Y_val = problem(rng, 30)
    outcomes = []
    for net in pair():
        X_own, X_val_own = X.copy(), X_val.copy()

        def poison(epoch, loss, accuracy):
            if epoch == 1:
                if bad != "X_val":
                    X_own[45, 2] = np.nan
                if bad != "X_train":
                    X_val_own[3:5] = np.inf
        with np.errstate(all="ignore"):
            try:
                outcome = net.train(X_own, Y, X_val_own, Y_val.argmax(1), batch_size=10, num_epochs=4,
                                    verbose=False, callback=poison)
            except fastscratch.NonFiniteLossError as err:
                outcome = ("raised", err.epoch, err.batch, err.losses, err.accuracies)
        outcomes.append((outcome, [layer.W.copy() for layer in net.layers]))
    (expected, ref_W), (got, jit_W) = outcomes
    assert type(got) is type(expected)
    if isinstance(expected, tuple) and expected[0] == "raised":
        assert got[:3] == expected[:3] == ("raised", 2, 4)
        np.testing.assert_allclose(got[3], expected[3], rtol=1e-10)
        assert got[4] == expected[4]
    else:
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-10)
        assert got[1] == expected[1]
    for r, j in zip(ref_W, jit_W):
        np.testing.assert_allclose(j, r, rtol=1e-9, atol=1e-12)


def test_float64_data_on_a_float32_network_is_compared_without_a_converted_copy(rng, threads, monkeypatch):
    """The first call indexes float64 data as it narrows; once X_train's and X_val's float32 structures are kept,
    a call narrows the data as it compares it: no float32 copy of either, ever; a value changed so that it
    narrows to the same float32 trains the same and keeps the structure."""
    from fastscratch import _validation, inputs
    nets = pair(dtype=np.float32)
    X, Y = problem(rng, 300)
    X_val, y_val = problem(rng, 40)[0], rng.integers(0, 4, 40)

    def train(net):
        return net.train(X, Y, X_val, y_val, batch_size=10, num_epochs=2, verbose=False)
    copies, built = [], []
    converted, nonzero_structure = _validation.converted, inputs.nonzero_structure
    monkeypatch.setattr(_validation, "converted",
                        lambda name, arr, dtype: copies.append(arr.shape) or converted(name, arr, dtype))
    expected = train(nets[0])
    copies.clear()
    assert_same(nets, [expected, train(nets[1])], rtol=1e-5)  # the drop-in indexes the data as it narrows
    assert X.shape not in copies and X_val.shape not in copies
    monkeypatch.setattr(inputs, "nonzero_structure", lambda *args: built.append(1) or nonzero_structure(*args))
    for round_ in range(3):
        if round_:
            at = tuple(np.argwhere(X != 0)[round_ * 50])
            X[at] = np.nextafter(X[at], 2.0)
        expected = train(nets[0])
        copies.clear()
        got = train(nets[1])
        assert X.shape not in copies and X_val.shape not in copies and not built
        assert_same(nets, [expected, got], rtol=1e-5)


@pytest.mark.parametrize("dtype, data_dtype", [(np.float32, np.float64), (np.float64, np.float32)])
@pytest.mark.parametrize("then", ["compiled", "batch loop"])
def test_a_callback_editing_float64_data_of_a_float32_network_gives_the_references_result(then, dtype, data_dtype,
                                                                                         rng, threads):
    """The reference trains a float32 network on the float32 copy of float64 data it makes at the call (and a
    float64 network on the float64 copy of float32 data), out of a callback's reach: edits of the given arrays
    show in the next call, not in this one. The drop-in, which made no copy, reads what the data held at the
    call from the proven structures, also where the callback sends the rest of the call through the batch loop
    and the evaluation row by row (a user's activation)."""
    nets = pair(dtype=dtype)
    X, Y = problem(rng, 300)
    X_val, y_val = problem(rng, 40)[0], rng.integers(0, 4, 40)
    data = {id(net): (X.astype(data_dtype), X_val.astype(data_dtype)) for net in nets}

    def train(net, **kwargs):
        X_own, X_val_own = data[id(net)]
        return net.train(X_own, Y, X_val_own, y_val, batch_size=10, verbose=False, **kwargs)

    def callback_of(net):
        X_own, X_val_own = data[id(net)]

        def edit(epoch, loss, accuracy):
            X_own[epoch * 20:epoch * 20 + 40] *= 0.5
            X_val_own[::3] = X_val_own[::-3]
            if then == "batch loop":
                net.layers[0].activation_function = lambda x: 1 / (1 + np.exp(-x))
        return edit
    assert_same(nets, [train(net, num_epochs=1) for net in nets], rtol=1e-5)  # the drop-in keeps the structures
    for _ in range(2):  # the second call reads what the first's callback wrote
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fastscratch.FallbackWarning)
            assert_same(nets, [train(net, num_epochs=3, callback=callback_of(net)) for net in nets], rtol=1e-5)
        for ref, jit in zip(*(net.layers for net in nets)):
            np.testing.assert_allclose(jit.x, ref.x, rtol=1e-6)
        np.testing.assert_array_equal(*(data[id(net)][0] for net in nets))  # both callbacks ran alike


def epoch_threads(monkeypatch):
    """The names of the threads the drop-in's compiled epochs run on, in order (filled as they run)."""
    names = []
    run = train_call.train_epoch
    monkeypatch.setattr(train_call, "train_epoch",
                        lambda *args: names.append(threading.current_thread().name) or run(*args))
    return names


def train_both_printing(nets, capsys, *args, **kwargs):
    """Each network's train(*args, **kwargs) and the lines it printed."""
    results = []
    for net in nets:
        results.append(net.train(*args, **kwargs))
        results.append(capsys.readouterr().out.splitlines())
    return results


@pytest.mark.parametrize("verbose, print_frequency", [(True, 1), (True, 2), (False, 1)])
def test_the_evaluation_beside_the_next_epoch_gives_the_references_history_and_lines(verbose, print_frequency, rng,
                                                                                   capsys, monkeypatch):
    """With two threads and no callback, each evaluation but the last runs on a snapshot of the weights while
    the next epoch runs on another thread; the losses, accuracies, weights and printed lines are the
    reference's, in its order."""
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    threads = epoch_threads(monkeypatch)
    nets = pair()
    X, Y = problem(rng, 300)
    X_val, y_val = problem(rng, 40)[0], rng.integers(0, 4, 40)
    expected, expected_lines, got, lines = train_both_printing(
        nets, capsys, X, Y, X_val, y_val, batch_size=10, num_epochs=5, learning_rate=0.1, verbose=verbose,
        print_frequency=print_frequency)
    assert_same(nets, (expected, got))
    assert lines == expected_lines and len(lines) == (0 if not verbose else 5 if print_frequency == 1 else 3)
    assert threads[0] == "MainThread" and all(name.startswith("fastscratch-epoch") for name in threads[1:])
    assert len(threads) == 5


@pytest.mark.parametrize("why", ["callback", "one numba thread", "NUMBA_NUM_THREADS=1"])
def test_the_evaluation_runs_before_the_next_epoch_where_its_order_shows(why, rng, monkeypatch):
    """A callback sees epoch k's accuracy before epoch k + 1 starts, and may change anything: each epoch then
    follows its evaluation and callback, as without a second core (``numba.get_num_threads()`` 1)."""
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1 if why == "NUMBA_NUM_THREADS=1" else 2)
    threads = epoch_threads(monkeypatch)
    nets = pair()
    X, Y = problem(rng, 300)
    X_val, y_val = problem(rng, 40)[0], rng.integers(0, 4, 40)
    seen = {id(net): [] for net in nets}

    def callback_of(net):
        return lambda epoch, loss, accuracy: seen[id(net)].append((epoch, loss, accuracy, net.layers[0].W.copy()))
    results = []
    threads_before = numba.get_num_threads()
    try:
        if why == "one numba thread":
            numba.set_num_threads(1)
        for net in nets:
            results.append(net.train(X, Y, X_val, y_val, batch_size=10, num_epochs=4, learning_rate=0.1,
                                     verbose=False, callback=callback_of(net) if why == "callback" else None))
    finally:
        numba.set_num_threads(threads_before)
    assert_same(nets, results)
    assert threads == ["MainThread"] * 4
    if why == "callback":
        (ref_seen, jit_seen) = seen.values()
        assert [s[0] for s in jit_seen] == [0, 1, 2, 3] and [s[2] for s in jit_seen] == [s[2] for s in ref_seen]
        for (_, _, _, W_ref), (_, _, _, W) in zip(ref_seen, jit_seen):
            np.testing.assert_allclose(W, W_ref, rtol=1e-10)  # the callback sees its epoch's weights


@pytest.mark.parametrize("stop", ["Ctrl-C", "print raises"])
def test_a_stop_during_the_evaluation_beside_the_next_epoch_puts_that_epoch_back(stop, rng, monkeypatch):
    """Ctrl-C during epoch 1's evaluation stops the reference before epoch 2 (at its first check); a print
    that raises stops it after epoch 1. Epoch 2, started beside that evaluation, is undone: the weights, the
    history and the error are the reference's."""
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    threads = epoch_threads(monkeypatch)
    nets = pair()
    X, Y = problem(rng, 300)
    X_val, y_val = problem(rng, 40)[0], rng.integers(0, 4, 40)
    evaluations = []
    evaluate = train_call.predict_classes

    def interrupting(*args):  # the drop-in's evaluation beside an epoch
        evaluate(*args)
        evaluations.append(1)
        if len(evaluations) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    class FailingOut(io.StringIO):
        def write(self, text):
            if self.getvalue().count("\n") >= 2:
                raise OSError("the reader left")
            return super().write(text)
    if stop == "Ctrl-C":
        monkeypatch.setattr(train_call, "predict_classes", interrupting)
        interrupt_reference_at_epoch(monkeypatch, nets[0], 1)
    outcomes = []
    for net in nets:
        with pytest.raises(KeyboardInterrupt if stop == "Ctrl-C" else OSError) as info:
            with contextlib.redirect_stdout(FailingOut() if stop == "print raises" else io.StringIO()):
                net.train(X, Y, X_val, y_val, batch_size=10, num_epochs=5, learning_rate=0.1)
        outcomes.append(info.value)
    expected, got = outcomes
    if stop == "Ctrl-C":
        assert (got.epoch, got.batch) == (expected.epoch, expected.batch) == (2, 0)
        assert_same(nets, ((expected.losses, expected.accuracies), (got.losses, got.accuracies)))
    else:
        assert str(got) == str(expected)
        for r, j in zip(*(net.layers for net in nets)):
            np.testing.assert_allclose(j.W, r.W, rtol=1e-10)
    assert threads[:3] == ["MainThread", "fastscratch-epoch_0", "fastscratch-epoch_0"]


def interrupt_reference_at_epoch(monkeypatch, net, epoch):
    """Send Ctrl-C during the reference network's evaluation of ``epoch``."""
    evaluate = net._evaluate_accuracy
    count = []

    def evaluate_then_interrupt(*args, **kwargs):
        result = evaluate(*args, **kwargs)
        count.append(1)
        if len(count) == epoch + 1:
            os.kill(os.getpid(), signal.SIGINT)
        return result
    monkeypatch.setattr(net, "_evaluate_accuracy", evaluate_then_interrupt, raising=False)


SCRIPT = """
import threading, sys
import numpy as np
sys.path.insert(0, {tests!r})
from fastscratch import train_call
from twins import pair, problem
names = []
run = train_call.train_epoch
train_call.train_epoch = lambda *args: names.append(threading.current_thread().name) or run(*args)
rng = np.random.default_rng(11)
X, Y = problem(rng, 300)
X_val, y_val = problem(rng, 40)[0], rng.integers(0, 4, 40)
expected, got = (net.train(X, Y, X_val, y_val, batch_size=10, num_epochs=4, learning_rate=0.1) for net in pair())
print(repr((names, [float(x) for x in got[0]], got[1], [float(x) for x in expected[0]], expected[1])))
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_the_evaluation_beside_the_epoch_follows_NUMBA_NUM_THREADS(threads):
    """In a process started with NUMBA_NUM_THREADS=1, every epoch follows its evaluation in the main thread;
    with 2, the epochs after the first run beside it; the history and lines are the reference's either way."""
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-c", SCRIPT.format(tests=os.path.dirname(__file__))], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    *lines, last = done.stdout.splitlines()
    names, losses, accuracies, expected_losses, expected_accuracies = ast.literal_eval(last)
    assert lines[:4] == lines[4:] and len(lines) == 8  # the reference's four lines, then the drop-in's
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-10)
    assert accuracies == expected_accuracies
    assert names == ["MainThread"] + (["MainThread"] * 3 if threads == 1 else ["fastscratch-epoch_0"] * 3)


def test_a_non_finite_loss_in_the_epoch_beside_an_evaluation_comes_after_that_evaluation(rng, monkeypatch, capsys):
    """Epoch 2, run beside epoch 1's evaluation, reports a non-finite loss (made to, at its batch 3): the error
    carries epoch 1's accuracy and comes after epoch 1's line, as the reference's would."""
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    threads = []
    run = train_call.train_epoch

    def failing_third(*args):
        threads.append(threading.current_thread().name)
        return (0.0, 3, np.nan, True) if len(threads) == 3 else run(*args)
    monkeypatch.setattr(train_call, "train_epoch", failing_third)
    X, Y = problem(rng, 300)
    X_val, y_val = problem(rng, 40)[0], rng.integers(0, 4, 40)
    nets = pair()
    expected = nets[0].train(X, Y, X_val, y_val, batch_size=10, num_epochs=2, learning_rate=0.1)
    expected_lines = capsys.readouterr().out.splitlines()
    with pytest.raises(fastscratch.NonFiniteLossError) as info:
        nets[1].train(X, Y, X_val, y_val, batch_size=10, num_epochs=4, learning_rate=0.1)
    assert capsys.readouterr().out.splitlines() == expected_lines
    assert (info.value.epoch, info.value.batch) == (2, 3)
    assert_same(nets, (expected, (info.value.losses, info.value.accuracies)))
    assert threads == ["MainThread", "fastscratch-epoch_0", "fastscratch-epoch_0"]
