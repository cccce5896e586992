"""Group ``epoch``: one epoch of the seed's job, reference vs the JIT network, float64 and float32.

One epoch = ``train(X_train, Y_train, X_test, y_test, batch_size=30, num_epochs=1,
learning_rate=1e-3)`` on 784-64-32-10 sigmoid/L2: 2000 SGD steps, then the
per-sample accuracy loop over the 10,000 test images. Each round starts from
the same seeded weights (built in the untimed setup), so every round computes
the same losses, which are checked against the reference's.

``epochs=5`` runs five epochs per ``train`` call instead, as a long run does:
each call first indexes its training set (see the README), which a one-epoch
call pays in full; ``per_epoch_s`` in ``extra_info`` is the median call divided
by the epochs. It runs only when benchmarking.

The reference runs twice: as installed (``reference``, BLAS at its default
thread count) and with BLAS limited to one thread (``reference-blas1``); on a
busy 2-core machine two BLAS threads can thrash, and speed-ups are taken
against the faster of the two. With ``--benchmark-disable`` the job shrinks to
200 steps and 1,000 test images and ``reference-blas1`` is skipped.
"""
import numpy as np
import pytest

HIDDEN, BATCH, LR = (64, 32), 30, 1e-3
ROUNDS = {"reference": 3, "reference-blas1": 3, "jit": 9}  # JIT rounds are cheap: 9 steady its medians
BLAS_LIMIT = {"reference": None, "reference-blas1": 1, "jit": None}
FLOAT32_SANITY_RTOL = 1e-3  # float32 vs float32 reference: a sanity bound, not a target
FLOAT32_BLAS_RTOL = 1e-6  # float32 reference at another BLAS thread count: sgemm rounds differently (1 ulp seen)


@pytest.mark.parametrize("epochs", [1, 5])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", ["reference", "reference-blas1", "jit"])
def test_epoch(benchmark, record, epoch_job, build, blas_threads, reference_results, seed_reference_epoch,
               impl, dtype, epochs):
    benchmark.group = "epoch"
    if benchmark.disabled and (impl == "reference-blas1" or epochs > 1):
        pytest.skip("the one-BLAS-thread reference and multi-epoch calls run only with --benchmark-enable")
    config, X_train, Y_train, X_test, y_test = epoch_job(dtype)
    if epochs > 1:
        config += f" x{epochs}"

    def setup():
        return (build(impl, dtype),), {}

    def one_epoch(net):
        return net.train(X_train, Y_train, X_test, y_test, batch_size=BATCH, num_epochs=epochs,
                         learning_rate=LR, verbose=False)

    with blas_threads(BLAS_LIMIT[impl]):
        losses, accuracies = benchmark.pedantic(one_epoch, setup=setup, rounds=ROUNDS[impl],
                                                warmup_rounds=1 if impl == "jit" else 0)
    extra = {"blas_threads_limit": BLAS_LIMIT[impl], "epochs": epochs,
             "per_epoch_s": benchmark.stats.stats.median / epochs if benchmark.stats else None}
    if impl == "reference":
        reference_results[(config, dtype)] = (losses, accuracies)
    ref_losses, ref_accuracies = seed_reference_epoch(config, dtype, X_train, Y_train, X_test, y_test, epochs)
    if impl == "jit":
        extra.update(reference_loss=float(ref_losses[0]), reference_accuracy=float(ref_accuracies[0]),
                     loss_rel_diff=float(abs(losses[0] - ref_losses[0]) / abs(ref_losses[0])))
    record(implementation=impl, dtype=dtype, config=config,
           shapes="784-" + "-".join(map(str, HIDDEN)) + "-10", batch_size=BATCH,
           train_samples=len(X_train), test_samples=len(X_test), steps=epochs * (len(X_train) // BATCH),
           learning_rate=LR, loss=float(losses[0]), accuracy=float(accuracies[0]), **extra)
    # Correctness, not timing: every variant must reproduce the reference's epoch.
    rtol = 1e-9 if dtype == "float64" else FLOAT32_SANITY_RTOL if impl == "jit" else FLOAT32_BLAS_RTOL
    np.testing.assert_allclose(losses, ref_losses, rtol=rtol)
