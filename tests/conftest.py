"""Shared fixtures: real MNIST from FASTSCRATCH_MNIST_DIR, loaded once per session."""
import os
import signal
import zlib

import numpy as np
import pytest

# The suite's children and its in-process commands compare what they print; whichever of them happens to
# compile a kernel first would add the compile notice. Its own tests set it back on.
os.environ["FASTSCRATCH_COMPILE_NOTICE"] = "0"


@pytest.fixture(scope="session")
def mnist_dir():
    path = os.environ.get("FASTSCRATCH_MNIST_DIR")
    if not path:
        pytest.skip("FASTSCRATCH_MNIST_DIR is not set; .ci/run sets it to ../shared/datasets/mnist")
    return path


@pytest.fixture(scope="session")
def mnist_raw(mnist_dir):
    """The four uint8 arrays, as the ``mnist`` package returns them."""
    from fastscratch.datasets import load_mnist
    return load_mnist(mnist_dir)


@pytest.fixture(scope="session")
def mnist_prepared(mnist_raw):
    """The tutorial's preparation in float64: X / 255 flattened, one-hot train targets, int test labels."""
    from fastscratch.datasets import prepare
    arrays = prepare(*mnist_raw)
    for a in arrays:
        a.setflags(write=False)
    return arrays


@pytest.fixture(scope="session")
def mnist_classifier(mnist_prepared, tmp_path_factory):
    """``(network, path of its model.npz)``: the tutorial's network (784-64-32-10 sigmoid, L2 loss, batch 30,
    ``np.random.seed(42)``) trained on all of MNIST for 5 epochs at learning rate 0.1 instead of 500 at 1e-3:
    94.49% on the test set (the tutorial's full run: 94.83%) in a few seconds."""
    from fastscratch import SimpleNetwork
    X_train, Y_train, X_test, y_test = mnist_prepared
    state = np.random.get_state()
    np.random.seed(42)
    try:
        network = SimpleNetwork(784, 10, [64, 32])
    finally:
        np.random.set_state(state)
    network.train(X_train, Y_train, X_test, y_test, batch_size=30, num_epochs=5, learning_rate=0.1, verbose=False)
    assert network.evaluate_accuracy(X_test, y_test) > 0.94
    path = tmp_path_factory.mktemp("classifier") / "model.npz"
    network.save(path)
    return network, path


@pytest.fixture
def rng(request):
    """A per-test generator, seeded from the test's name so failures reproduce."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session", autouse=True)
def sigint_as_in_a_terminal():
    """Deliver Ctrl-C as a terminal does, even when the suite runs as a background job.

    A shell starts background jobs with SIGINT ignored, the training
    subprocesses inherit that, and fastscratch rightly leaves an ignored
    SIGINT ignored, so the Ctrl-C tests would wait for an interrupt that never
    comes. A handler installed here is reset to the default in children.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def blas_past_127_rows(monkeypatch):
    """Batches of more than ``config.KERNEL_MAX_BATCH`` rows run the reference's BLAS products whatever the size
    of the hidden layers (none included) and the input's zeros: the BLAS path, for tests of it on small, fast
    networks and sparse data."""
    from fastscratch import config
    monkeypatch.setattr(config, "KERNEL_SMALL_HIDDEN_WEIGHTS", -1)
