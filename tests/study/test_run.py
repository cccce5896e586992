"""Studies on a real LocalCluster of two worker processes: results, resume, failures, a SIGKILLed worker."""
import json
import logging
import os
import signal
import textwrap
import threading
import time

import pytest

from fastscratch.study import results, run, spec

GRID = '''implementation = ["reference", "jit"]
dtype = ["float64", "float32"]
hidden = [[12, 6]]
batch_size = 20
epochs = 2
seed = [1, 2]
'''


def distributed_client(cluster):
    from distributed import Client
    return Client(cluster, set_as_default=False)


def lines(directory):
    return results.read(directory)


def test_study_on_the_cluster_then_resume(cluster, write_spec, tmp_path):
    study = spec.load(write_spec(GRID))
    out = tmp_path / "out"
    seen = []
    progress = run.run(study, out, scheduler=cluster.scheduler_address, on_result=lambda r, p: seen.append(p.done))
    records = lines(out)
    assert progress.done == len(records) == 16 and progress.failed == 0 and seen == list(range(1, 17))
    assert len({r["key"] for r in records}) == 16
    workers = set(distributed_client(cluster).scheduler_info()["workers"])
    for r in records:
        assert r["status"] == "ok" and r["worker"] in workers and r["exclusive"] is True
        assert len(r["losses"]) == len(r["accuracies"]) == len(r["seconds_per_epoch"]) == 2
        assert r["warmup_seconds"] > 0 and r["machine"]["logical_cores"] >= 1
        assert r["thread_counts"]["numba"] == 1 and set(r["thread_counts"]["blas"].values()) == {1}
        assert r["versions"] == results.versions(r["implementation"])
        if r["implementation"] == "reference":
            assert r["max_rel_diff_vs_reference"] is None
        else:
            assert r["equivalence_steps"] == 15
            assert r["max_rel_diff_vs_reference"] <= (1e-12 if r["dtype"] == "float64" else 1e-5)
    # repeats of a cell agree; the seed changes the trajectory
    by_cell = {}
    for r in records:
        by_cell.setdefault((r["implementation"], r["dtype"], r["seed"]), []).append(r["losses"])
    assert all(a == b for a, b in by_cell.values())
    assert by_cell[("jit", "float64", 1)][0] != by_cell[("jit", "float64", 2)][0]

    again = run.run(study, out, scheduler=cluster.scheduler_address)
    assert (again.done, again.skipped) == (0, 16) and lines(out) == records


def test_order_is_shuffled_and_seeded(write_spec):
    study = spec.load(write_spec(GRID))
    order = [t[1].implementation for t in run.tasks(study)]
    assert order == [t[1].implementation for t in run.tasks(study)]
    assert order != sorted(order) and order != sorted(order, reverse=True)


def test_a_failing_cell_is_recorded_and_the_study_goes_on(cluster, write_spec, tmp_path):
    # ReLU outputs beyond 1 make the cross-entropy's log NaN: train raises NonFiniteLossError
    study = spec.load(write_spec('implementation = "jit"\nhidden = [8]\nactivation = ["relu", "sigmoid"]\n'
                                 'loss = "cross_entropy"\nlearning_rate = 0.01\n', repeats=1))
    progress = run.run(study, tmp_path, scheduler=cluster.scheduler_address)
    by_activation = {r["activation"]: r for r in lines(tmp_path)}
    assert (progress.done, progress.failed) == (2, 1)
    assert by_activation["sigmoid"]["status"] == "ok"
    failed = by_activation["relu"]
    assert failed["status"] == "failed" and failed["error"].startswith("NonFiniteLossError: training loss")
    assert "Traceback" in failed["traceback"] and failed["worker"]
    from fastscratch.study import report
    text = (tmp_path / "report.md").read_text() if report.write(tmp_path) else ""
    assert "## Failed cells" in text and "NonFiniteLossError" in text and "| 0.01 | 1 | 1 | 1 |" in text
    assert run.run(study, tmp_path, scheduler=cluster.scheduler_address).done == 0
    rerun = run.run(study, tmp_path, scheduler=cluster.scheduler_address, retry_failed=True)
    assert (rerun.done, rerun.failed) == (1, 1)
    assert len(lines(tmp_path)) == 3 and len(results.latest(lines(tmp_path))) == 2


def test_versions_differing_on_the_worker_fail_the_cell(cluster, write_spec, tmp_path):
    study = spec.load(write_spec('implementation = "reference"\nhidden = [4]\n', repeats=1))
    key, config, repeat, versions = run.tasks(study)[0]
    record = cluster_run(cluster, key, config, repeat, {**versions, "numpy": "0.0"}, study.data)
    assert record["status"] == "failed" and "install the same versions" in record["error"]


def cluster_run(cluster, *args):
    from distributed import Client
    with Client(cluster) as client:
        return client.submit(run.run_cell, *args, pure=False, resources={run.RESOURCE: 1}).result()


def test_a_worker_killed_mid_cell(cluster, write_spec, tmp_path):
    """SIGKILL the worker running a cell: its nanny restarts it, the cell runs again, one line per cell."""
    from distributed import Client
    study = spec.load(write_spec('implementation = "reference"\nhidden = [32]\nbatch_size = 10\nepochs = 3\n'
                                 'seed = [1, 2, 3]\n', repeats=1, train_rows=6000, test_rows=500))
    killed = []

    def kill_one():
        with Client(cluster.scheduler_address) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not killed:
                busy = [w for w, keys in client.processing().items() if keys]
                if busy:
                    time.sleep(0.3)  # well inside the cell (each takes seconds)
                    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.05)

    killer = threading.Thread(target=kill_one)
    killer.start()
    progress = run.run(study, tmp_path, scheduler=cluster.scheduler_address)
    killer.join()
    records = lines(tmp_path)
    assert killed, "no cell was seen running"
    assert progress.done == len(records) == 3 and progress.failed == 0
    assert len({r["key"] for r in records}) == 3 and all(r["status"] == "ok" for r in records)
    with Client(cluster.scheduler_address) as client:
        client.wait_for_workers(2, timeout=60)  # the nanny brought it back, for the next module's use


def test_a_cluster_without_the_timing_resource_is_refused(write_spec, tmp_path):
    from distributed import LocalCluster
    study = spec.load(write_spec(GRID))
    with LocalCluster(n_workers=1, processes=False, **run.NO_DASHBOARD) as plain:
        with pytest.raises(run.ClusterError, match=f'--resources "{run.RESOURCE}=1"'):
            run.run(study, tmp_path / "out", scheduler=plain.scheduler_address)
    assert not (tmp_path / "out").exists()  # a refused run creates nothing


def test_an_unreachable_scheduler(write_spec, tmp_path, monkeypatch):
    monkeypatch.setattr(run, "CONNECT_TIMEOUT", "1s")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(run.ClusterError, match=f"cannot reach the Dask scheduler tcp://127.0.0.1:{port}"):
        with run.client_for(spec.load(write_spec(GRID)), f"tcp://127.0.0.1:{port}"):
            pass


def test_several_local_workers_mark_their_timings_shared(write_spec, tmp_path):
    """--workers 2: a LocalCluster of two processes started by the study; lines say the machine was shared."""
    from fastscratch.study import report
    study = spec.load(write_spec('implementation = "jit"\nhidden = [6]\nseed = [1, 2, 3]\nepochs = 2\n', repeats=1))
    before = dict(os.environ)
    progress = run.run(study, tmp_path, workers=2)
    assert dict(os.environ) == before  # the nannies' pre-spawn variables did not stay in this process
    records = lines(tmp_path)
    assert progress.done == 3 and all(r["status"] == "ok" and r["exclusive"] is False for r in records)
    assert all(r["thread_counts"]["numba_max"] == 1 for r in records)  # NUMBA_NUM_THREADS from pre-spawn-environ
    # and not the nanny's default MALLOC_TRIM_THRESHOLD_, which slows the reference's allocations
    assert all(r["environ"]["NUMBA_NUM_THREADS"] == "1" and r["environ"]["MALLOC_TRIM_THRESHOLD_"] is None
               for r in records)
    report.write(tmp_path)
    assert "timings are not comparable" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "curves.png").exists() and not (tmp_path / "speedups.png").exists()


def test_a_cluster_without_workers(write_spec, tmp_path, monkeypatch):
    from distributed import LocalCluster
    monkeypatch.setattr(run, "WAIT_FOR_WORKERS", 1)
    with LocalCluster(n_workers=0, processes=False, **run.NO_DASHBOARD) as empty:
        with pytest.raises(run.ClusterError, match=f"no worker joined {empty.scheduler_address} within 1 s"):
            run.run(spec.load(write_spec(GRID)), tmp_path / "new" / "out", scheduler=empty.scheduler_address)
    assert not (tmp_path / "new").exists()


def test_a_data_dir_that_workers_lack_is_refused_before_any_cell(cluster, write_spec, mnist_dir, tmp_path):
    """The spec's folder checked where the cells read it: here it is gone after the spec was read, as it would be
    missing on the workers of another host."""
    data = tmp_path / "data"
    data.mkdir()
    for name in os.listdir(mnist_dir):
        (data / name).symlink_to(os.path.join(mnist_dir, name))
    path = write_spec(GRID)
    path.write_text(path.read_text().replace(repr(str(mnist_dir)), repr(str(data))))
    study = spec.load(path)
    (data / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(run.ClusterError) as raised:
        run.run(study, tmp_path / "out", scheduler=cluster.scheduler_address)
    message = str(raised.value)
    assert message.startswith(f"[data] dir {data} does not hold MNIST's four files on every worker: tcp://")
    assert message.count("has no t10k-images-idx3-ubyte[.gz]") == 2  # both workers named
    assert not (tmp_path / "out").exists()


def test_pinned_workers_side_by_side(write_spec, tmp_path):
    """--workers 2 --cpus-per-worker 1 on a 2-core machine: each worker bound to its own CPU before any cell,
    one thread each, a calibration timed alone and with both busy, and lines marked with their isolation."""
    from fastscratch.study import report
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 CPUs")
    study = spec.load(write_spec('implementation = "jit"\nhidden = [6]\nseed = [1, 2, 3, 4]\n', repeats=1))
    progress = run.run(study, tmp_path, workers=2, cpus_per_worker=1)
    records = lines(tmp_path)
    assert progress.done == 4 and all(r["status"] == "ok" for r in records)
    assert {r["isolation"] for r in records} == {"pinned beside 1 other"} and all(r["exclusive"] for r in records)
    by_worker = {}
    for r in records:
        by_worker.setdefault(r["worker"], set()).add(tuple(r["cpus"]))
        assert len(r["cpus"]) == 1 and r["thread_counts"]["numba_max"] == 1
        assert set(r["thread_counts"]["blas"].values()) == {1}
    cpus = [c for sets in by_worker.values() for c in sets]
    assert all(len(sets) == 1 for sets in by_worker.values()) and len(set(cpus)) == len(cpus)  # disjoint
    (calibration,) = [json.loads(line) for line in (tmp_path / run.CALIBRATION).read_text().splitlines()]
    assert calibration["workers"] == 2 and sorted(map(tuple, calibration["cpus"])) == [(0,), (1,)]
    assert calibration["ratio"] == pytest.approx(sum(calibration["busy"]) / 2 / calibration["alone"])
    report.write(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## Calibration of pinned workers" in text and f"| {calibration['ratio']:.2f} |" in text
    assert "Cells ran pinned beside 1 other (4)." in text and "not comparable" not in text


def test_pinned_sets_are_disjoint_and_bounded():
    available = sorted(os.sched_getaffinity(0))
    assert run.pinned_sets(1, 1) == [available[:1]]
    with pytest.raises(run.ClusterError, match=f"need {len(available) + 1} CPUs; this process may use"):
        run.pinned_sets(len(available) + 1, 1)
    with pytest.raises(run.ClusterError, match="cells of 2 threads, more than --cpus-per-worker 1"):
        run.pinned_sets(1, 1, max_threads=2)


def test_a_gpu_cell_without_a_gpu_fails_alone_and_the_study_goes_on(cluster, write_spec, tmp_path):
    """torch and jax on `cuda` on a machine without a GPU: each such cell is recorded failed with the reason;
    the CPU cells (here on Fashion-MNIST) run."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the refusal is for machines without one")
    path = write_spec("", repeats=1)
    path.write_text(path.read_text().replace("[grid]\n", "") + textwrap.dedent('''
        [[grid]]
        implementation = "torch"
        device = ["cpu", "cuda"]
        hidden = [6]
        dataset = "fashion-mnist"
        [[grid]]
        implementation = "torch-graph"
        device = "cuda"
        hidden = [6]
        dataset = "fashion-mnist"
        '''))
    study = spec.load(path)
    progress = run.run(study, tmp_path, scheduler=cluster.scheduler_address)
    by_cell = {(r["implementation"], r["device"]): r for r in lines(tmp_path)}
    assert (progress.done, progress.failed) == (3, 2)
    ok = by_cell[("torch", "cpu")]
    assert ok["status"] == "ok" and ok["dataset"] == "fashion-mnist" and ok["device_facts"]["device"] == "cpu"
    for cell in (("torch", "cuda"), ("torch-graph", "cuda")):
        assert by_cell[cell]["status"] == "failed"
        assert "device 'cuda': PyTorch" in by_cell[cell]["error"] and "sees no CUDA GPU" in by_cell[cell]["error"]


def test_a_task_that_errors_is_recorded_with_its_error(cluster, write_spec, tmp_path, monkeypatch):
    """A task that raises outside run_cell's own handling (as a worker killed too often does, KilledWorker): its
    line holds that exception, as ``Name: message``."""
    def broken(*args):
        raise MemoryError("the task itself failed")
    monkeypatch.setattr(run, "run_cell", broken)  # a local function: sent to the workers by value
    study = spec.load(write_spec('implementation = "jit"\nhidden = [4]\n', repeats=1))
    progress = run.run(study, tmp_path, scheduler=cluster.scheduler_address)
    (record,) = lines(tmp_path)
    assert (progress.done, progress.failed) == (1, 1)
    assert record["status"] == "failed" and record["error"] == "MemoryError: the task itself failed"


def test_a_result_cut_in_transit_ends_the_run_as_a_lost_scheduler(cluster, write_spec, tmp_path):
    """The connection drops while a result comes back (as when the scheduler dies then): the run stops with
    SchedulerLost, at once, and nothing is logged with a traceback (as_completed's own fetch of the results logged
    tornado's "Exception in callback" and never gave the future back, so the run waited forever)."""
    from distributed.comm.core import CommClosedError

    class Kept(logging.Handler):
        def __init__(self):
            super().__init__(level=logging.ERROR)
            self.records = []

        def emit(self, record):
            self.records.append(record)

    async def cut(comm, **msg):
        comm.abort()
    study = spec.load(write_spec('implementation = "jit"\nhidden = [4]\nseed = [1, 2]\n', repeats=1))
    handlers = cluster.scheduler.handlers
    kept = Kept()
    outcome = []

    def study_run():
        try:
            outcome.append(run.run(study, tmp_path, scheduler=cluster.scheduler_address))
        except Exception as err:  # noqa: BLE001  (the test looks at it)
            outcome.append(err)
    gather, handlers["gather"] = handlers["gather"], cut
    for name in ("tornado.application", "asyncio", "distributed"):
        logging.getLogger(name).addHandler(kept)
    try:
        worker = threading.Thread(target=study_run, daemon=True)  # the old code never returned
        worker.start()
        worker.join(timeout=120)
    finally:
        handlers["gather"] = gather
        for name in ("tornado.application", "asyncio", "distributed"):
            logging.getLogger(name).removeHandler(kept)
    assert outcome, "the run did not end"
    (err,) = outcome
    assert isinstance(err, run.SchedulerLost) and isinstance(err.__cause__, CommClosedError), err
    assert str(err).startswith(f"lost the Dask scheduler {cluster.scheduler_address} after 0 of 2 cell-repeats")
    assert not [r.getMessage() for r in kept.records if r.exc_info]
    assert lines(tmp_path) == []
