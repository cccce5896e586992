"""Group ``startup``: the first epoch of a fresh process, with an empty and with a warm Numba cache.

Each round runs ``benchmarks/seed_job.py`` in a child process with
``NUMBA_CACHE_DIR`` pointing at a fresh temporary directory (``cold``) or at one
a previous child filled (``warm``). The timed value is the child's whole wall
time (interpreter start, imports, data, epochs); what the issue asks about is in
``extra_info``: ``first_epoch_overhead_s`` = first epoch minus the fastest later
epoch, measured inside the child, plus ``import_s``, which holds any compilation
done at import time.

With ``--benchmark-disable`` only ``warm`` float64 runs, as a smoke test: one
single-threaded child on 3,000 training and 1,000 test images for 2 epochs,
using the environment's own Numba cache (warmed by the in-process tests before
it) instead of a pre-warmed temporary one.
"""
import os
import statistics

import pytest

FULL = {"epochs": 3, "train": 60000, "test": 10000, "rounds": 3}
SMOKE = {"epochs": 2, "train": 3000, "test": 1000, "rounds": 1}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_startup(benchmark, record, mnist_raw, python_child, tmp_path, cache, dtype):
    benchmark.group = "startup"
    if benchmark.disabled and (dtype != "float64" or cache == "cold"):
        pytest.skip("only the warm float64 start-up smoke test runs without --benchmark-enable")
    size = SMOKE if benchmark.disabled else FULL
    args = ["benchmarks/seed_job.py", "--impl", "jit", "--dtype", dtype, "--epochs", str(size["epochs"]),
            "--train-samples", str(size["train"]), "--test-samples", str(size["test"])]
    children = []
    counter = iter(range(10 ** 6))

    def setup():
        if benchmark.disabled:  # smoke: the environment's own cache, which earlier tests warmed
            return (os.environ.get("NUMBA_CACHE_DIR"),), {}
        if cache == "cold":
            cache_dir = tmp_path / f"cold-{next(counter)}"
            cache_dir.mkdir()
        else:
            cache_dir = tmp_path / "warm"
        return (str(cache_dir),), {}

    # Smoke run: single-threaded child, so a busy machine cannot make it thrash.
    threads = {"NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"} if benchmark.disabled else {}

    def child(cache_dir):
        env = dict(threads, **({"NUMBA_CACHE_DIR": cache_dir} if cache_dir else {}))
        result = python_child(args, env=env)
        children.append(result)
        return result

    if cache == "warm" and not benchmark.disabled:
        (tmp_path / "warm").mkdir()
        child(str(tmp_path / "warm"))  # fills the cache; not timed
        children.clear()
    benchmark.pedantic(child, setup=setup, rounds=size["rounds"])

    def med(key):
        values = [c[key] for c in children if c[key] is not None]
        return statistics.median(values) if values else None

    record(implementation="jit", dtype=dtype, config=f"startup {cache} cache", cache=cache,
           shapes="784-64-32-10", batch_size=30, train_samples=size["train"], test_samples=size["test"],
           epochs=size["epochs"], first_epoch_overhead_s=med("first_epoch_overhead_s"),
           first_epoch_s=med("first_epoch_s"), later_epoch_s=med("later_epoch_s"), import_s=med("import_s"),
           load_s=med("load_s"), child_total_s=med("total_s"),
           child_jit_is_reference_alias=children[-1]["jit_is_reference_alias"],
           child_numba_threads=children[-1].get("numba_threads"), rounds=len(children))
