"""Group ``peers``: PyTorch eager (CPU) and JAX ``jit`` + ``lax.scan`` doing one epoch of the seed's job.

The peers are ``fastscratch.implementations`` runners (``torch``, ``jax``; see
their docstrings for the objective they differentiate): 784-64-32-10 sigmoid
from the seeded reference weights, L2, lr 1e-3, batches of 30 in order, the last
incomplete batch dropped, then the accuracy on the test images. Each round
prepares a fresh run and warms it up (JAX compiles) in the untimed setup.

Each peer's epoch loss must match the reference's: rtol 1e-9 in float64, 1e-4
in float32 (against the float32 reference; the accumulation orders differ).
Each peer is skipped when it is not installed (``make peers`` installs both), and
the GPU ones (``torch-cuda``, ``torch-graph``, ``jax-cuda``) where there is no GPU.
Speed-ups are against the reference's epoch in the same run (group ``epoch``).
PyTorch runs at two threads (``torch``) and, when benchmarking, also with one
(``torch-1thread``), since intra-op threads can thrash on a busy 2-core machine.
With ``--benchmark-disable`` the job shrinks as in ``test_epoch.py``.
"""
import os

import pytest

from fastscratch import implementations
from fastscratch.implementations import Config

LOSS_RTOL = {"float64": 1e-9, "float32": 1e-4}
ROUNDS = 3
#: benchmark name -> (implementation, CPU threads, device); the GPU ones are skipped where there is no GPU
PEERS = {"torch": ("torch", os.cpu_count(), "cpu"), "torch-1thread": ("torch", 1, "cpu"), "jax": ("jax", 1, "cpu"),
         "torch-cuda": ("torch", 1, "cuda"), "torch-graph": ("torch-graph", 1, "cuda"), "jax-cuda": ("jax", 1, "cuda")}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", list(PEERS))
def test_peer(benchmark, record, epoch_job, seed_reference_epoch, impl, dtype):
    benchmark.group = "peers"
    if benchmark.disabled and impl == "torch-1thread":
        pytest.skip("the one-thread PyTorch variant runs only with --benchmark-enable")
    name, threads, device = PEERS[impl]
    try:
        runner = implementations.get(name)
    except ImportError as err:
        pytest.skip(str(err))
    if benchmark.disabled:
        threads = 1  # smoke run: no timing, and one thread cannot thrash on a busy machine
    config_name, *data = epoch_job(dtype)
    config = Config(name, dtype, epochs=1, threads=threads, device=device)  # the other defaults: the seed's job
    try:
        runner.device_facts(config)
    except RuntimeError as err:
        pytest.skip(str(err))
    weights = implementations.initial_weights(config)
    runs, out = [], []

    def setup():
        runs.append(runner.prepare(config, data, weights))
        runs[-1].warmup()
        return (), {}

    def epoch():
        runs[-1].train(lambda loss, accuracy: out.append((loss, accuracy)))
        return out[-1]

    loss, accuracy = benchmark.pedantic(epoch, setup=setup, rounds=ROUNDS)
    ref_losses, ref_accuracies = seed_reference_epoch(config_name, dtype, *data)
    rel = abs(loss - float(ref_losses[0])) / abs(float(ref_losses[0]))
    facts = {"peer_version": runner.version(), "peer_threads": threads, "peer_notes": runner.NOTES}
    record(implementation=impl, dtype=dtype, config=config_name, shapes="784-64-32-10", batch_size=config.batch_size,
           train_samples=len(data[0]), test_samples=len(data[2]), steps=len(data[0]) // config.batch_size,
           learning_rate=config.learning_rate, loss=loss, accuracy=accuracy, reference_loss=float(ref_losses[0]),
           reference_accuracy=float(ref_accuracies[0]), loss_rel_diff=rel, loss_rtol=LOSS_RTOL[dtype], **facts)
    assert rel <= LOSS_RTOL[dtype], f"{impl} {dtype} epoch loss {loss!r} vs reference {ref_losses[0]!r}"
