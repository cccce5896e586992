"""A train call's session: what the callback changes between epochs is read as the reference reads it."""
import numpy as np
import pytest

import fastscratch
from fastscratch import reference

EDITS = {
    "X_train *= 0.5": lambda X, X_val, epoch: X.__imul__(0.5),
    "X_train rows zeroed": lambda X, X_val, epoch: X.__setitem__(slice(epoch * 50, epoch * 50 + 50), 0.0),
    "X_val[:] = reversed": lambda X, X_val, epoch: X_val.__setitem__(slice(None), X_val[::-1].copy()),
    "both": lambda X, X_val, epoch: (X.__imul__(1.5), X_val.__imul__(0.25)),
}


@pytest.fixture(params=[2, 1], ids=["compared-during-the-epoch", "compared-first"])
def threads(request, monkeypatch):
    from numba import config
    monkeypatch.setattr(config, "NUMBA_NUM_THREADS", request.param)


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
