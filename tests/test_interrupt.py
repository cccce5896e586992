"""Ctrl-C during ``train``: TrainingInterrupted at a batch boundary, weights consistent, history kept.

Consistent means: the network holds exactly the weights of a network trained for
``err.epoch`` whole epochs and then ``err.batch`` batches, and ``err.losses``
are that network's losses. Checked in-process (SIGINT from a callback, or the
handler called directly) and with a real SIGINT sent to a training subprocess.
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastscratch
import fastscratch.reference as ref
from fastscratch._interrupt import STOP_SIGNALS, StopSignals, deferred_sigint
from fastscratch.exceptions import TrainingInterrupted
from children import signalled

NETWORKS = [pytest.param(ref.SimpleNetwork, id="reference"), pytest.param(fastscratch.SimpleNetwork, id="jit")]
CLASS_PATHS = {ref.SimpleNetwork: "fastscratch.reference.SimpleNetwork",
               fastscratch.SimpleNetwork: "fastscratch.SimpleNetwork"}

BATCH = 5


def problem(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 1, (n, 6))
    labels = rng.integers(0, 3, n)
    return X, np.eye(3)[labels], X[:10], labels[:10]


def fresh(network_class):
    np.random.seed(5)
    return network_class(6, 3, [4])


def replay(network_class, epoch, batch, batch_size=BATCH):
    """A network trained for exactly ``epoch`` epochs and then ``batch`` batches; and its losses."""
    X, y, X_val, y_val = problem(8 * batch_size)
    net = fresh(network_class)
    losses, accuracies = net.train(X, y, X_val, y_val, batch_size=batch_size, num_epochs=epoch, learning_rate=0.5,
                                   verbose=False)
    if batch:
        net.train(X[:batch * batch_size], y[:batch * batch_size], batch_size=batch_size, num_epochs=1,
                  learning_rate=0.5, verbose=False)
    return net, losses, accuracies


def assert_consistent(network_class, net, err, batch_size=BATCH):
    expected, losses, accuracies = replay(network_class, err.epoch, err.batch, batch_size)
    assert err.losses == losses and err.accuracies == accuracies
    assert len(err.losses) == err.epoch
    for layer, expected_layer in zip(net.layers, expected.layers):
        np.testing.assert_array_equal(layer.W, expected_layer.W)
        np.testing.assert_array_equal(layer.b, expected_layer.b)
        assert np.isfinite(layer.W).all()


def train_interrupting(network_class, at_epoch, num_epochs=4, how="kill", batch_size=BATCH):
    X, y, X_val, y_val = problem(8 * batch_size)
    net = fresh(network_class)

    def callback(epoch, loss, accuracy):
        if epoch == at_epoch:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                signal.getsignal(signal.SIGINT)(signal.SIGINT, None)

    with pytest.raises(TrainingInterrupted) as info:
        net.train(X, y, X_val, y_val, batch_size=batch_size, num_epochs=num_epochs, learning_rate=0.5,
                  verbose=False, callback=callback)
    return net, info.value


# The drop-in trains small batches in compiled epochs and, here, large ones (> 127) through the reference's loop.
@pytest.mark.parametrize("batch_size", [BATCH, 130], ids=["small-batches", "large-batches"])
@pytest.mark.parametrize("how", ["kill", "handler"])
@pytest.mark.parametrize("network_class", NETWORKS)
def test_sigint_from_a_callback_stops_at_the_next_boundary(network_class, how, batch_size, blas_past_127_rows):
    handler_before = signal.getsignal(signal.SIGINT)
    net, err = train_interrupting(network_class, at_epoch=1, how=how, batch_size=batch_size)
    assert isinstance(err, KeyboardInterrupt)
    assert (err.epoch, err.batch) == (2, 0)
    assert f"epoch {err.epoch}" in str(err)
    assert_consistent(network_class, net, err, batch_size)
    assert signal.getsignal(signal.SIGINT) is handler_before


@pytest.mark.parametrize("network_class", NETWORKS)
def test_sigint_during_the_last_epoch_is_not_lost(network_class):
    net, err = train_interrupting(network_class, at_epoch=3, num_epochs=4)
    assert (err.epoch, err.batch) == (4, 0) and len(err.losses) == 4
    assert_consistent(network_class, net, err)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_network_is_usable_after_an_interrupt(network_class):
    X, y, X_val, y_val = problem()
    net, err = train_interrupting(network_class, at_epoch=0)
    assert (err.epoch, err.batch) == (1, 0)
    more, _ = net.train(X, y, X_val, y_val, batch_size=BATCH, num_epochs=2, learning_rate=0.5, verbose=False)
    straight, losses, _ = replay(network_class, 3, 0)
    assert err.losses + more == losses
    for layer, expected in zip(net.layers, straight.layers):
        np.testing.assert_array_equal(layer.W, expected.W)
    assert net.predict(X[0]) == straight.predict(X[0])


@pytest.mark.parametrize("network_class", NETWORKS)
def test_handler_is_restored_after_success_and_errors(network_class):
    X, y, X_val, y_val = problem()
    before = signal.getsignal(signal.SIGINT)
    net = fresh(network_class)
    net.train(X, y, batch_size=BATCH, num_epochs=1, verbose=False)
    assert signal.getsignal(signal.SIGINT) is before

    def failing(epoch, loss, accuracy):
        raise ValueError("from the callback")

    with pytest.raises(ValueError, match="from the callback"):
        net.train(X, y, batch_size=BATCH, num_epochs=2, verbose=False, callback=failing)
    assert signal.getsignal(signal.SIGINT) is before
    # Outside train, Ctrl-C is an ordinary KeyboardInterrupt again.
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # the handler runs between bytecodes
            pass


@pytest.mark.parametrize("network_class", NETWORKS)
def test_ignored_sigint_stays_ignored(network_class):
    X, y, _, _ = problem()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        net = fresh(network_class)
        losses, _ = net.train(X, y, batch_size=BATCH, num_epochs=3, verbose=False,
                              callback=lambda *a: os.kill(os.getpid(), signal.SIGINT))
        assert len(losses) == 3
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("network_class", NETWORKS)
def test_training_in_a_thread(network_class):
    """Handlers can only be installed in the main thread; a worker thread still trains."""
    X, y, _, _ = problem()
    results = []
    net = fresh(network_class)
    thread = threading.Thread(target=lambda: results.append(
        net.train(X, y, batch_size=BATCH, num_epochs=2, learning_rate=0.5, verbose=False)))
    thread.start()
    thread.join(60)
    assert results and results[0][0] == replay(network_class, 2, 0)[1]


def test_deferred_sigint_defers_and_reports():
    before = signal.getsignal(signal.SIGINT)
    # check() turns a pending Ctrl-C into one TrainingInterrupted carrying the history.
    with pytest.raises(TrainingInterrupted) as info:
        with deferred_sigint() as flag:
            flag.check([], [], 0)  # nothing pending: no-op
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between bytecodes, and only sets the flag
                pass
            assert flag.requested
            flag.check([0.5], [0.25], 1, 3)
    assert isinstance(info.value, KeyboardInterrupt)
    assert (info.value.losses, info.value.accuracies, info.value.epoch, info.value.batch) == ([0.5], [0.25], 1, 3)
    # A block that only shields work (the CLI saving its files) reads the flag afterwards.
    with deferred_sigint() as flag:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):
            pass
    assert flag.requested
    # Another exception ending the block propagates as itself.
    with pytest.raises(ValueError):
        with deferred_sigint():
            os.kill(os.getpid(), signal.SIGINT)
            raise ValueError
    assert signal.getsignal(signal.SIGINT) is before


def deliver(signum):
    os.kill(os.getpid(), signum)
    for _ in range(1000):  # the handler runs between bytecodes
        pass


@pytest.fixture
def stop_signals_not_ignored():
    """SIGTERM and SIGHUP not ignored in this process while the test delivers them, as in a terminal, even under
    nohup (which ignores SIGHUP, and StopSignals rightly leaves an ignored signal ignored). The handler does
    nothing, so that a terminal closing meanwhile still does not end the suite."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum, handler in previous.items():
        if handler is signal.SIG_IGN:
            signal.signal(signum, lambda *_: None)
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("stop_signals_not_ignored")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_stop_signals_act_as_ctrl_c_and_say_which_came(signum):
    before = signal.getsignal(signum)
    with StopSignals() as stop:
        with pytest.raises(KeyboardInterrupt):  # outside train: where Ctrl-C would raise
            deliver(signum)
        assert stop.received == signum
    assert signal.getsignal(signum) is before
    with StopSignals() as stop:
        with deferred_sigint() as flag:  # inside train: only the flag, as for Ctrl-C
            deliver(signum)
            assert flag.requested
            deliver(signal.SIGINT)  # a later signal does not change the first one's name
        assert stop.received == signum
        assert isinstance(signal.getsignal(signum), StopSignals)  # given back after the block
    assert signal.getsignal(signum) is before


def test_train_defers_sigterm_only_where_a_program_asked_for_it():
    X, y, _, _ = problem()
    net = fresh(fastscratch.SimpleNetwork)
    with StopSignals() as stop:
        with pytest.raises(TrainingInterrupted) as info:
            net.train(X, y, batch_size=BATCH, num_epochs=3, learning_rate=0.5, verbose=False,
                      callback=lambda epoch, *_: epoch == 0 and os.kill(os.getpid(), signal.SIGTERM))
    assert (info.value.epoch, info.value.batch, stop.received) == (1, 0, signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # a plain script keeps the default: ends at once


def test_an_ignored_stop_signal_stays_ignored_and_ctrl_c_still_works_without_sigint():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN), signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopSignals() as stop, deferred_sigint() as flag:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            deliver(signal.SIGHUP)
            deliver(signal.SIGINT)
            assert not flag.requested
            deliver(signal.SIGTERM)  # a background job's SIGINT is ignored; its SIGTERM still stops it cleanly
            assert flag.requested and stop.received == signal.SIGTERM
    finally:
        signal.signal(signal.SIGHUP, previous[0])
        signal.signal(signal.SIGINT, previous[1])


def test_training_interrupted_pickles():
    """Exceptions cross process boundaries (multiprocessing, joblib) by pickle."""
    err = pickle.loads(pickle.dumps(TrainingInterrupted([0.5, 0.25], [0.1, 0.2], 2, 7)))
    assert type(err) is TrainingInterrupted and isinstance(err, KeyboardInterrupt)
    assert (err.losses, err.accuracies, err.epoch, err.batch) == ([0.5, 0.25], [0.1, 0.2], 2, 7)
    assert str(err) == str(TrainingInterrupted([0.5, 0.25], [0.1, 0.2], 2, 7))


# -- a real Ctrl-C, sent to a training subprocess -------------------------------------------

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastscratch, fastscratch.reference
    from fastscratch.exceptions import TrainingInterrupted

    network_class = eval(sys.argv[1])
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (3000, 20))
    y = np.eye(4)[rng.integers(0, 4, 3000)]
    BATCH, LR = 10, 0.05

    def fresh():
        np.random.seed(9)
        return network_class(20, 4, [16, 8])

    def ready(epoch, loss, accuracy):
        if epoch == 0:
            print("ready", flush=True)

    net = fresh()
    try:
        net.train(X, y, batch_size=BATCH, num_epochs=10**6, learning_rate=LR, verbose=False, callback=ready)
        print(json.dumps({"error": "not interrupted"}))
        sys.exit(0)
    except TrainingInterrupted as err:
        interrupted = err
    replay = fresh()
    losses, _ = replay.train(X, y, batch_size=BATCH, num_epochs=interrupted.epoch, learning_rate=LR,
                             verbose=False)
    if interrupted.batch:
        replay.train(X[:interrupted.batch * BATCH], y[:interrupted.batch * BATCH], batch_size=BATCH,
                     num_epochs=1, learning_rate=LR, verbose=False)
    print(json.dumps({
        "epoch": interrupted.epoch, "batch": interrupted.batch,
        "losses_match": interrupted.losses == losses,
        "weights_match": all(np.array_equal(a.W, b.W) and np.array_equal(a.b, b.b)
                             for a, b in zip(net.layers, replay.layers)),
        "usable": bool(np.isfinite(net.forward(X[:5])).all()),
    }), flush=True)
""")


@pytest.mark.parametrize("network_class", NETWORKS)
def test_real_sigint_to_a_training_process(network_class, tmp_path):
    child = subprocess.Popen([sys.executable, "-c", CHILD, CLASS_PATHS[network_class]], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=tmp_path, **signalled())
    watchdog = threading.Timer(180, child.kill)  # readline() has no timeout of its own
    watchdog.start()
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=120)
    finally:
        watchdog.cancel()
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result.pop("epoch") >= 1 and result.pop("batch") >= 0, result
    assert result == {"losses_match": True, "weights_match": True, "usable": True}
