"""Group ``full-run``: the tutorial's whole script with the JIT network: untrained loss and accuracy, then
500 epochs of batch 30, lr 1e-3, evaluated on the test set after each. Opt-in: set
``FASTSCRATCH_BENCH_FULL=1`` (``make bench-full``); it takes minutes.

Runs in a child process (``benchmarks/seed_job.py --untrained --epochs 500``) so
that its peak RSS is its own, not this pytest process's. ``extra_info`` holds
the peak RSS, the float data size, the issue's budget (data + 100 MB), the RSS
after the imports alone (Python, NumPy, Numba and llvmlite take ~100 MB before
any data), the final accuracy and the per-epoch times.
"""
import os
import statistics

import pytest

EPOCHS = int(os.environ.get("FASTSCRATCH_BENCH_FULL_EPOCHS", "500"))  # fewer only to check the plumbing
BUDGET_OVER_DATA = 100 * 2 ** 20


@pytest.mark.skipif(os.environ.get("FASTSCRATCH_BENCH_FULL") != "1",
                    reason="the 500-epoch run is opt-in: FASTSCRATCH_BENCH_FULL=1 (make bench-full)")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_full_run(benchmark, record, mnist_raw, python_child, tmp_path, dtype):
    benchmark.group = "full-run"
    args = ["benchmarks/seed_job.py", "--impl", "jit", "--dtype", dtype, "--epochs", str(EPOCHS), "--untrained"]
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    result = benchmark.pedantic(python_child, args=(args, env), rounds=1)
    epoch_s = result["epoch_s"]
    record(implementation="jit", dtype=dtype, config=f"full run {EPOCHS} epochs", shapes="784-64-32-10",
           batch_size=30, epochs=EPOCHS, final_accuracy=result["final_accuracy"], final_loss=result["losses"][-1],
           untrained=result["untrained"], peak_rss_bytes=result["peak_rss_bytes"],
           peak_rss_before_train_bytes=result["peak_rss_before_train_bytes"], rss_bytes=result["rss_bytes"],
           data_bytes=result["data_bytes"], rss_budget_bytes=result["data_bytes"] + BUDGET_OVER_DATA,
           within_rss_budget=result["peak_rss_bytes"] <= result["data_bytes"] + BUDGET_OVER_DATA,
           peak_rss_above_import_bytes=result["peak_rss_bytes"] - result["rss_bytes"]["after_import"],
           median_epoch_s=statistics.median(epoch_s), first_epoch_s=epoch_s[0], train_s=sum(epoch_s),
           child_jit_is_reference_alias=result["jit_is_reference_alias"])
