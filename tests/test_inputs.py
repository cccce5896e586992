"""A call's claim on what is kept of its data (``inputs.DataClaim``): its states, the outcomes of a comparison, and
what ``train``'s first epoch does with each (``TrainCall._compiled``)."""
import copy

import numba
import numpy as np
import pytest

import fastscratch
from fastscratch import inputs, routing
from fastscratch.inputs import DataClaim
from fastscratch.kernels import structure
from fastscratch.train_call import TrainCall
from twins import problem

INT16, INT64 = np.dtype(np.int16), np.dtype(np.int64)


def network():
    np.random.seed(7)
    return fastscratch.SimpleNetwork(12, 4, [6])


def kept(rng, rows=300):
    """A network that trained on X (so that its structure is kept with X), and X, Y, X_val, y_val."""
    net = network()
    X, Y = problem(rng, rows)
    X_val, Y_val = problem(rng, 40)
    net.train(X, Y, X_val, Y_val.argmax(1), batch_size=10, num_epochs=1, verbose=False)
    return net, X, Y, X_val, Y_val.argmax(1)


def claim(net, X, **kwargs):
    return DataClaim("X_train", X, X, net.kept_data, INT16, **kwargs)


def test_nothing_kept_nothing_claimed(rng):
    net = network()
    X, _ = problem(rng, 60)
    c = claim(net, X)
    assert c.entry is None and not c.assumed and not c.proven and c.finite
    entry = c.indexed(INT16)  # built from X, proven, kept
    assert c.proven and not c.assumed and c.entry is entry
    assert claim(net, X, sample=False).indexed(INT16) is entry  # found again, compared in full


def test_a_kept_structure_whose_sampled_rows_match_is_assumed_until_compared(rng):
    net, X, *_ = kept(rng)
    c = claim(net, X)
    assert c.assumed and c.entry is not None and c.compare()
    c.settle(True, edited=False)
    assert c.proven and not c.assumed
    c.reopen()  # a callback ran: proven becomes assumed again, the entry kept
    assert c.assumed and c.entry is not None


def test_another_data_set_of_the_kept_shape_is_indexed_at_once(rng, monkeypatch):
    """The same array with other contents (shuffled in place, or a new data set written into it), or data of the
    kept shape given to a network whose ``kept_data`` keeps structures by shape."""
    net, X, *_ = kept(rng)
    entry = claim(net, X).entry
    X[:] = X[rng.permutation(len(X))]
    assert not structure.samples_match(X, *entry[:3], 16)
    built = []
    index = inputs.nonzero_structure
    monkeypatch.setattr(inputs, "nonzero_structure", lambda X, *a: built.append(len(X)) or index(X, *a))
    c = claim(net, X)
    assert built == [300] and c.proven and c.compare() and c.entry is not entry  # built from it, and kept
    assert claim(net, X).assumed and claim(net, X).entry is c.entry  # the next call finds it


def test_another_data_set_of_the_kept_shape_with_nan_is_refused_at_its_own_index(rng):
    """The mismatch's structure lists NaN among its values; the error names X's index, as check_finite does."""
    net, X, Y, *_ = kept(rng)
    other = rng.random(X.shape) * (rng.random(X.shape) > 0.75)
    other[17, 3] = np.nan
    c = claim(net, other)
    assert c.entry is None
    with pytest.raises(ValueError, match=r"X_train contains non-finite values \(NaN or inf\), first at index \(17, 3\)"):
        net.train(other, Y, batch_size=10, num_epochs=1, verbose=False)


@pytest.mark.parametrize("edited", [False, True])
@pytest.mark.parametrize("change", ["finite", "nan"])
def test_settle_after_a_difference(change, edited, rng):
    net, X, *_ = kept(rng)
    c = claim(net, X)
    c.buffers((12, 6, 4), lambda entry: "buffers")
    X[5] = np.nan if change == "nan" else X[5] + 1
    if change == "nan" and not edited:
        with pytest.raises(ValueError, match=r"X_train contains non-finite.*\(5, 0\)"):
            c.settle(False, edited)
    else:
        c.settle(False, edited)
    assert c.entry is None and c._buffers is None and not c.assumed  # dropped with what was built on it
    assert c.finite == (change == "finite" or not edited)  # NaN after a callback: read as the reference does
    if change == "finite":
        assert c.indexed(INT16) is c.entry and c.compare()  # indexed anew


def test_another_index_width_takes_another_place(rng):
    """A callback that makes a layer wider than 2**15 inputs needs int64 indices: another structure, kept apart."""
    net, X, *_ = kept(rng)
    c = claim(net, X)
    narrow = c.entry
    wide = c.indexed(INT64)
    assert wide.indices.dtype == INT64 and wide is not narrow and c.proven
    assert claim(net, X).entry is narrow and DataClaim("X", X, X, net.kept_data, INT64).entry is wide


def test_buffers_are_kept_per_sizes(rng):
    net, X, *_ = kept(rng)
    c = claim(net, X)
    built = []
    first = c.buffers((12, 6, 4), lambda entry: built.append(entry) or object())
    assert c.buffers((12, 6, 4), lambda entry: pytest.fail("rebuilt")) is first
    c.buffers((12, 7, 4), lambda entry: built.append(entry) or object())
    assert len(built) == 2 and built[0] is built[1] is c.entry


#: (X_train compared the same, X_val compared the same, X_val made non-finite, a callback ran) -> (the epoch's
#: result kept, runs of the epoch, error): what the first epoch does with each outcome of the comparison beside it.
OUTCOMES = {
    "both the same": ((True, True, False, False), (True, 1, None)),
    "X_train changed": ((False, True, False, False), (True, 2, None)),
    "X_val changed, finite": ((True, False, False, False), (True, 1, None)),
    "X_val changed, not finite": ((True, False, True, False), (False, 1, "X_val")),
    "X_val made non-finite by a callback": ((True, False, True, True), (True, 1, None)),
    "both changed, X_val not finite": ((False, False, True, False), (False, 1, "X_val")),
}


@pytest.mark.parametrize("case", OUTCOMES)
def test_the_first_epoch_beside_the_comparison(case, rng, monkeypatch):
    (train_same, val_same, val_nan, edited), (kept_result, runs, error) = OUTCOMES[case]
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    net, X, Y, X_val, y_val = kept(rng)
    once = copy.deepcopy(net)
    once.train(X, Y, X_val, y_val, batch_size=10, num_epochs=1, verbose=False)
    before = [layer.W.copy() for layer in net.layers]
    prepared = inputs.prepare_train(net, X, Y, X_val, y_val, 10, 1, 1e-3, 1)
    assert prepared.train.assumed and prepared.val.assumed
    if val_nan:
        X_val[3, 4] = np.inf
    monkeypatch.setattr(DataClaim, "compare", lambda self, threads=None: {"X_train": train_same,
                                                                          "X_val": val_same}[self.name])
    call = TrainCall(net, prepared)
    call.edited = edited
    ran = []
    run = TrainCall._run
    monkeypatch.setattr(TrainCall, "_run", lambda self, route: ran.append(1) or run(self, route))
    route = routing.route(net, routing.Call.EPOCH, 10)
    if error:
        with pytest.raises(ValueError, match=f"{error} contains non-finite"):
            call._compiled(route)
    else:
        assert call._compiled(route) is not None
    assert len(ran) == runs
    expected = [layer.W for layer in once.layers] if kept_result else before
    for layer, W in zip(net.layers, expected):  # put back before an error; one epoch's step otherwise
        np.testing.assert_array_equal(layer.W, W)
    assert prepared.train.proven or error is not None  # compared, or indexed anew for the epoch run again
    assert prepared.val.entry is None if not val_same else prepared.val.proven
    assert prepared.val.finite == (not (val_nan and edited))


def test_x_train_made_non_finite_by_a_callback_runs_the_batch_loop(rng, monkeypatch):
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    net, X, Y, *_ = kept(rng)
    before = [layer.W.copy() for layer in net.layers]
    prepared = inputs.prepare_train(net, X, Y, None, None, 10, 1, 1e-3, 1)
    X[9, 2] = np.nan
    monkeypatch.setattr(DataClaim, "compare", lambda self, threads=None: False)
    call = TrainCall(net, prepared)
    call.edited = True
    assert call._compiled(routing.route(net, routing.Call.EPOCH, 10)) is None
    assert not prepared.train.finite
    assert routing.route(net, routing.Call.EPOCH, 10, input_finite=False).way is routing.Way.BATCH_LOOP
    for layer, W in zip(net.layers, before):
        np.testing.assert_array_equal(layer.W, W)


def test_a_claim_on_data_of_another_dtype_reads_it_converted_without_a_copy(rng):
    """float64 data claimed as float32: compared as it narrows; ``X`` is converted only when read, from the data
    until a callback (``reopen``), then from the proven structure, since the reference reads its copy made at the
    call; a reopened copied claim stays proven."""
    np.random.seed(7)
    net = fastscratch.SimpleNetwork(12, 4, [6], dtype=np.float32)
    X, Y = problem(rng, 300)
    net.train(X, Y, batch_size=10, num_epochs=1, verbose=False)  # keeps X's float32 structure
    c = DataClaim("X_train", X, X, net.kept_data, INT16, dtype=np.float32)
    assert c.copied and c.assumed and c.rows == 300 and c._X is None
    assert c.compare() and c._X is None  # compared as it narrows: no copy
    c.settle(True, edited=False)
    np.testing.assert_array_equal(c.rows_of(10, 20), X[10:20].astype(np.float32))
    assert c._X is None
    c.reopen()
    assert c.proven and not c.assumed
    at_call = X.astype(np.float32)
    X[:5] = 0.75  # a callback's write: not in the reference's copy
    assert c.rows_of(0, 5).dtype == np.float32
    np.testing.assert_array_equal(c.rows_of(0, 5), at_call[:5])
    np.testing.assert_array_equal(c.X, at_call)


@pytest.mark.parametrize("value, finite", [(0.5, True), (np.nan, False), (1e300, False)])
def test_a_copied_claim_says_whether_its_data_is_finite_without_raising(value, finite, rng):
    X, _ = problem(rng, 40)
    X[3, 2] = value
    c = DataClaim("X_val", X, X, fastscratch.SimpleNetwork(12, 4, [6], dtype=np.float32).kept_data, INT16,
                  dtype=np.float32)
    assert c.all_finite() is finite
    if not finite:
        with pytest.raises(ValueError, match=r"X_val .*\(3, 2\)"):
            c.X
