"""The fused epoch: no allocation per batch, and results independent of the thread count."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numba import config

ALLOCATIONS = textwrap.dedent("""
    import json
    import numpy as np
    from numba import njit
    from numba.core.runtime import rtsys
    import fastscratch

    def allocations(run):
        before = rtsys.get_allocation_stats().alloc
        run()
        return rtsys.get_allocation_stats().alloc - before

    rng = np.random.default_rng(0)
    X = rng.random((3000, 20)) * (rng.random((3000, 20)) > 0.7)
    Y = np.eye(4)[rng.integers(0, 4, 3000)]
    labels = rng.integers(0, 4, 200)
    np.random.seed(0)
    net = fastscratch.SimpleNetwork(20, 4, [8, 6])
    assert net.builtin_functions
    net.kept_data.capacity = 0  # each call indexes its data: the same per-call work for both sizes
    train = lambda n: net.train(X[:n], Y[:n], X[:200], labels, batch_size=30, num_epochs=2, verbose=False)
    train(300)  # compile
    per_epoch = {n: allocations(lambda: train(n)) for n in (300, 3000)}

    @njit
    def allocating_loop(n):  # the same probe must see an allocation that creeps into a loop
        total = 0.0
        for i in range(n):
            total += np.zeros(3)[0]
        return total
    allocating_loop(1)
    print(json.dumps({"train": per_epoch, "probe": allocations(lambda: allocating_loop(100))}))
""")


def run_python(code, **env):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(config.DISABLE_JIT, reason="counts the allocations of compiled code (NRT), which is off")
def test_training_loop_allocates_nothing_per_batch():
    stats = run_python(ALLOCATIONS, NUMBA_NRT_STATS="1")
    assert stats["probe"] >= 100  # the probe sees allocations in compiled loops...
    # ...and none in the batch loop: 2 x 10 and 2 x 100 batches cost the same. What remains is the
    # per-call boxing of the arrays handed to the kernels (a few dozen per epoch, never per batch).
    assert stats["train"]["300"] == stats["train"]["3000"]
    assert stats["train"]["3000"] < 2 * 200


THREADS = textwrap.dedent("""
    import json
    import numpy as np
    import fastscratch
    rng = np.random.default_rng(1)
    X = rng.random((600, 50)) * (rng.random((600, 50)) > 0.8)
    Y = np.eye(10)[rng.integers(0, 10, 600)]
    np.random.seed(42)
    net = fastscratch.SimpleNetwork(50, 10, [64, 32])
    losses, accuracies = net.train(X, Y, X, Y.argmax(1), batch_size=30, num_epochs=2, verbose=False)
    print(json.dumps({"losses": [float(v) for v in losses], "W": net.layers[0].W.sum().item()}))
""")


def test_results_do_not_depend_on_thread_counts():
    runs = [run_python(THREADS, NUMBA_NUM_THREADS=str(n), OPENBLAS_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n))
            for n in (1, 2)]
    np.testing.assert_allclose(runs[0]["losses"], runs[1]["losses"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(runs[0]["W"], runs[1]["W"], rtol=1e-12, atol=0)
