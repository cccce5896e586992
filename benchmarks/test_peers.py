"""Group ``peers``: PyTorch eager (CPU) and JAX ``jit`` + ``lax.scan`` doing one epoch of the seed's job.

The identical job: 784-64-32-10 sigmoid starting from the weights of the seeded
fastscratch network (copied, per round, in the untimed setup); the tutorial's
L2 conventions (the reported loss is the squared error summed over the batch
and divided by the batch size, but the gradient is that of the *summed* squared
error, 2 * (pred - target)); plain SGD, lr 1e-3, batches of 30 in order, the
last incomplete batch dropped; then the accuracy on the 10,000 test images
(batched argmax, which is what the reference's per-sample loop computes).

Each peer's epoch loss must match the reference's: rtol 1e-9 in float64, 1e-4
in float32 (against the float32 reference; the accumulation orders differ).
Each peer is skipped when it is not installed (``make peers`` installs both).
Speed-ups are against the reference's epoch in the same run (group ``epoch``).
PyTorch runs at its default thread count (``torch``) and, when benchmarking,
also with one thread (``torch-1thread``), since intra-op threads can thrash on
a busy 2-core machine. With ``--benchmark-disable`` the job shrinks as in
``test_epoch.py``.
"""
import functools

import numpy as np
import pytest

BATCH, LR = 30, 1e-3
LOSS_RTOL = {"float64": 1e-9, "float32": 1e-4}
ROUNDS = 3


# --- PyTorch eager ------------------------------------------------------------------------------

def torch_epoch(torch, params, X, Y, X_test, y_test):
    """One epoch with autograd on the summed squared error and an in-place SGD update."""
    flat = [p for layer in params for p in layer]
    num_batches = len(X) // BATCH
    total = torch.zeros((), dtype=X.dtype)
    for b in range(num_batches):
        h = X[b * BATCH:(b + 1) * BATCH]
        for W, bias in params:
            h = torch.sigmoid(h @ W + bias)
        sse = torch.sum(torch.square(h - Y[b * BATCH:(b + 1) * BATCH]))
        grads = torch.autograd.grad(sse, flat)
        with torch.no_grad():
            for p, g in zip(flat, grads):
                p.sub_(g, alpha=LR)
            total += sse / BATCH
    with torch.no_grad():
        h = X_test
        for W, bias in params:
            h = torch.sigmoid(h @ W + bias)
        accuracy = (h.argmax(dim=1) == y_test).double().mean().item()
    return (total / num_batches).item(), accuracy


def run_torch(dtype, data, weights, threads=None):
    torch = pytest.importorskip("torch")
    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    X, Y, X_test, y_test = (torch.from_numpy(np.array(a)) for a in data)  # writable copies

    def setup():
        params = [tuple(torch.tensor(a, requires_grad=True) for a in layer) for layer in weights]
        return (torch, params, X, Y, X_test, y_test), {}

    facts = {"peer_version": torch.__version__, "peer_threads": torch.get_num_threads(),
             "peer_threads_default": default_threads,
             "peer_notes": "eager, autograd.grad of the summed squared error, p.sub_(g, alpha=lr)"}
    return setup, torch_epoch, facts


# --- JAX ----------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def jax_epoch_function():
    import jax
    import jax.numpy as jnp

    def forward(params, x):
        for W, b in params:
            x = jax.nn.sigmoid(x @ W + b)
        return x

    def summed_squared_error(params, x, t):
        return jnp.sum(jnp.square(forward(params, x) - t))

    @jax.jit
    def epoch(params, X_batches, Y_batches, X_test, y_test):
        batch = X_batches.shape[1]

        def step(carry, xt):
            params, total = carry
            sse, grads = jax.value_and_grad(summed_squared_error)(params, *xt)
            params = jax.tree.map(lambda p, g: p - LR * g, params, grads)
            return (params, total + sse / batch), None

        (params, total), _ = jax.lax.scan(step, (params, jnp.zeros((), X_batches.dtype)), (X_batches, Y_batches))
        accuracy = jnp.mean(jnp.argmax(forward(params, X_test), axis=1) == y_test)
        return total / X_batches.shape[0], accuracy

    def run(params, X_batches, Y_batches, X_test, y_test):
        loss, accuracy = epoch(params, X_batches, Y_batches, X_test, y_test)
        return float(loss), float(accuracy)  # blocks until the device is done
    return run


def run_jax(dtype, data, weights, threads=None):
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # float64 arrays stay float64; float32 ones stay float32
    import jax.numpy as jnp
    X, Y, X_test, y_test = data
    num_batches = len(X) // BATCH
    X_batches = jnp.asarray(X[:num_batches * BATCH].reshape(num_batches, BATCH, -1))
    Y_batches = jnp.asarray(Y[:num_batches * BATCH].reshape(num_batches, BATCH, -1))
    X_test, y_test = jnp.asarray(X_test), jnp.asarray(y_test)
    assert X_batches.dtype == np.dtype(dtype)

    def setup():
        params = [tuple(jnp.array(a) for a in layer) for layer in weights]
        return (params, X_batches, Y_batches, X_test, y_test), {}

    facts = {"peer_version": jax.__version__, "peer_devices": str(jax.devices()),
             "peer_notes": "jax.jit of the whole epoch: lax.scan over batches, value_and_grad, then accuracy"}
    return setup, jax_epoch_function(), facts


PEERS = {"torch": (run_torch, None), "torch-1thread": (run_torch, 1), "jax": (run_jax, None)}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", list(PEERS))
def test_peer(benchmark, record, epoch_job, build, seed_reference_epoch, impl, dtype):
    benchmark.group = "peers"
    if benchmark.disabled and impl == "torch-1thread":
        pytest.skip("the one-thread PyTorch variant runs only with --benchmark-enable")
    config, *data = epoch_job(dtype)
    net = build("reference", dtype)  # the seeded starting weights, as the epoch group uses
    weights = [(layer.W.copy(), layer.b.copy()) for layer in net.layers]
    run, threads = PEERS[impl]
    if benchmark.disabled:
        threads = 1  # smoke run: no timing, and one thread cannot thrash on a busy machine
    setup, epoch, facts = run(dtype, data, weights, threads)
    try:
        loss, accuracy = benchmark.pedantic(epoch, setup=setup, rounds=ROUNDS,
                                            warmup_rounds=1 if impl == "jax" else 0)
    finally:
        if "peer_threads_default" in facts:
            import torch
            torch.set_num_threads(facts["peer_threads_default"])
    ref_losses, ref_accuracies = seed_reference_epoch(config, dtype, *data)
    rel = abs(loss - float(ref_losses[0])) / abs(float(ref_losses[0]))
    record(implementation=impl, dtype=dtype, config=config, shapes="784-64-32-10", batch_size=BATCH,
           train_samples=len(data[0]), test_samples=len(data[2]), steps=len(data[0]) // BATCH, learning_rate=LR,
           loss=loss, accuracy=accuracy, reference_loss=float(ref_losses[0]),
           reference_accuracy=float(ref_accuracies[0]), loss_rel_diff=rel, loss_rtol=LOSS_RTOL[dtype], **facts)
    assert rel <= LOSS_RTOL[dtype], f"{impl} {dtype} epoch loss {loss!r} vs reference {ref_losses[0]!r}"
