"""Group ``script end to end``: the tutorial's script at 3 epochs in a fresh process, the reference against the
drop-in, as a newcomer first meets it.

Each round runs ``benchmarks/seed_job.py --untrained`` (import, load, the
untrained loss on the 60,000 training rows and accuracy on the test set,
then 3 epochs) in a child process, the two implementations alternating, one
BLAS thread for both, the drop-in with a warm kernel cache (the environment's
own, filled by an untimed first child). The timed value is the child's wall
time (a drop-in round's reference child runs in the untimed setup before it); ``extra_info`` has the child's own figures (``total_s``: import to the
last epoch) and ``paired_speedup``, the median of the rounds' reference /
drop-in ratios of ``total_s``.

With ``--benchmark-disable`` one small drop-in child runs, as a smoke test.
"""
import statistics

import pytest

FULL = {"epochs": 3, "train": 60000, "test": 10000, "rounds": 3}
SMOKE = {"epochs": 1, "train": 3000, "test": 1000, "rounds": 1}


@pytest.mark.parametrize("impl", ["reference", "jit"])
def test_script(benchmark, record, mnist_raw, python_child, impl):
    benchmark.group = "script end to end"
    if benchmark.disabled and impl == "reference":
        pytest.skip("only the drop-in's smoke run without --benchmark-enable")
    size = SMOKE if benchmark.disabled else FULL
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def args(which):
        return ["benchmarks/seed_job.py", "--impl", which, "--untrained", "--epochs", str(size["epochs"]),
                "--train-samples", str(size["train"]), "--test-samples", str(size["test"])]
    if not benchmark.disabled:
        python_child(args("jit"), env=env)  # warms the kernel cache; not timed
    children, paired, references = [], [], []

    def setup():  # the reference's run before each drop-in round, for a paired ratio; untimed
        if impl == "jit" and not benchmark.disabled:
            references.append(python_child(args("reference"), env=env)["total_s"])
        return (), {}

    def child():
        result = python_child(args(impl), env=env)
        children.append(result)
        if references:
            paired.append(references[-1] / result["total_s"])
        return result

    benchmark.pedantic(child, setup=setup, rounds=size["rounds"])
    assert children[0]["losses"] and children[0]["untrained"]["loss"] > 0
    record(implementation=impl, dtype="float64", config="script end to end", shapes="784-64-32-10", batch_size=30,
           train_samples=size["train"], test_samples=size["test"], epochs=size["epochs"],
           total_s=statistics.median(c["total_s"] for c in children),
           build_s=statistics.median(c["build_s"] for c in children),
           epoch_s=[statistics.median(c["epoch_s"][i] for c in children) for i in range(size["epochs"])],
           paired_speedup=statistics.median(paired) if paired else None, pairs=len(paired), rounds=len(children),
           blas_threads_limit=1)
