"""``fastscratch study`` as a user runs it: on a separately started `dask scheduler` / `dask worker`, Ctrl-C
then the same command again, and report/compare from the results."""
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from fastscratch.study import results
from fastscratch.study.run import RESOURCE
from children import signalled

DASK = os.path.join(os.path.dirname(sys.executable), "dask")
GRID = '''implementation = ["reference", "jit"]
hidden = [[10]]
batch_size = 20
epochs = 2
seed = [1, 2, 3]
'''


def fastscratch(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "fastscratch", "study", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **signalled(), **kwargs)


def finish(proc, timeout=240):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(path, lines, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(results.read(path.parent)) >= lines:
            return
        if proc.poll() is not None:
            pytest.fail(f"the study ended before {lines} lines: {proc.communicate()}")
        time.sleep(0.05)
    pytest.fail(f"no {lines} lines in {path} after {timeout} s")


@pytest.fixture(scope="module")
def no_torch(tmp_path_factory):
    """An environment in which Python finds no torch (a sitecustomize blocks its import)."""
    site = tmp_path_factory.mktemp("no-torch")
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['torch'] = None  # torch is not installed\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def dask_cluster(no_torch):
    """`dask scheduler` and one `dask worker` with the timing resource, as the README tells users to start them
    (on a machine without torch)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen(
            [DASK, "worker", address, "--nworkers", "1", "--nthreads", "1", "--resources", f"{RESOURCE}=1",
             "--no-dashboard", "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**no_torch, "NUMBA_NUM_THREADS": "1"}))
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_run_on_an_existing_cluster_then_report(dask_cluster, write_spec, tmp_path):
    spec = write_spec(GRID)
    code, out, err = finish(fastscratch("run", spec, "--out", tmp_path, "--scheduler", dask_cluster))
    assert code == 0, err
    assert "12 cell-repeats run (0 failed), 0 already in" in err
    records = results.read(tmp_path)
    assert len(records) == 12 and len({r["key"] for r in records}) == 12
    assert {r["worker"].rsplit(":", 1)[0] for r in records} == {"tcp://127.0.0.1"}
    assert all(r["status"] == "ok" and r["thread_counts"]["numba"] == 1 for r in records)

    code, out, err = finish(fastscratch("run", spec, "--out", tmp_path, "--scheduler", dask_cluster))
    assert code == 0 and "0 cell-repeats run (0 failed), 12 already in" in err

    code, out, err = finish(fastscratch("report", tmp_path))
    assert code == 0, err
    report = (tmp_path / "report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| reference") or line.startswith("| jit")]
    assert len(rows) == 2 and "| 1.00x |" in rows[0] and rows[1].endswith("| 3 |")  # three seeds pooled
    assert "Workers ran with MALLOC_TRIM_THRESHOLD_=65536" in report  # this worker has Dask's default
    assert "e-1" in rows[1].split("|")[16]  # the jit's max rel diff: 1e-1x, not 0 and not large
    import matplotlib.image
    for name in ("speedups.png", "curves.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 200 and image.shape[1] > 500 and image.std() > 0.05

    code, out, err = finish(fastscratch("compare", tmp_path, tmp_path))
    assert code == 0, err
    assert "0 of 6 cells changed beyond x1.1" in out and "(too few runs to flag)" in out


def test_ctrl_c_then_the_same_command(write_spec, tmp_path):
    """SIGINT mid-study: exit 130 with every finished line; the same command again adds exactly the rest."""
    spec = write_spec(GRID.replace("seed = [1, 2, 3]", "seed = [1, 2, 3, 4, 5]"), repeats=3, train_rows=2000)
    out = tmp_path / "out"
    proc = fastscratch("run", spec, "--out", out)
    wait_for(out / results.FILENAME, 3, proc)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, timeout=60)
    assert code == 130, err
    assert "interrupted: every finished cell is in" in err
    first = (out / results.FILENAME).read_bytes()
    kept = results.read(out)
    assert 3 <= len(kept) < 30 and first.endswith(b"\n")

    code, _, err = finish(fastscratch("run", spec, "--out", out, "--quiet"))
    assert code == 0, err
    after = (out / results.FILENAME).read_bytes()
    records = results.read(out)
    assert after.startswith(first)  # nothing lost
    assert len(records) == 30 and len({r["key"] for r in records}) == 30  # nothing duplicated
    assert all(json.loads(line)["status"] == "ok" for line in after.splitlines())
    assert {r["thread_counts"]["numba_max"] for r in records} == {1}  # the study's largest `threads`


def test_sigterm_stops_the_study_as_ctrl_c_does(write_spec, tmp_path):
    """`kill`, `timeout` and batch schedulers end a job with SIGTERM: every finished line stays, the run says
    how it was stopped and exits 143, and the same command resumes."""
    spec = write_spec(GRID, repeats=2, train_rows=2000)
    out = tmp_path / "out"
    proc = fastscratch("run", spec, "--out", out)
    wait_for(out / results.FILENAME, 1, proc)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=60)
    assert code == 128 + signal.SIGTERM, err
    assert "terminated by SIGTERM: every finished cell is in" in err and "Traceback" not in err
    assert (out / results.FILENAME).read_bytes().endswith(b"\n") and len(results.read(out)) >= 1


def test_report_of_an_empty_directory(tmp_path):
    code, _, err = finish(fastscratch("report", tmp_path))
    assert code == 2 and "no results.jsonl in" in err


def test_an_unusable_out_is_a_clear_error(write_spec, tmp_path):
    out = tmp_path / "out"
    out.write_text("not a directory")
    code, _, err = finish(fastscratch("run", write_spec(GRID), "--out", out, "--quiet"))
    assert code == 1 and "Traceback" not in err and str(out) in err


def test_malformed_lines_are_skipped_by_run_report_and_compare(dask_cluster, write_spec, tmp_path):
    """Lines that are no record (an array, a field of the wrong type, NUL bytes) are named by file:line and
    skipped by all three commands, never a traceback; `run` runs their cells again."""
    spec = write_spec('implementation = "jit"\nhidden = [6]\nseed = [1, 2]\n', repeats=1)
    code, _, err = finish(fastscratch("run", spec, "--out", tmp_path, "--scheduler", dask_cluster, "--quiet"))
    assert code == 0, err
    path = tmp_path / results.FILENAME
    first, second = path.read_bytes().splitlines(keepends=True)
    record = json.loads(second)
    path.write_bytes(first + b"[1, 2]\n" + json.dumps({**record, "hidden": 6}).encode() + b"\n" + b"\0" * 30 + b"\n")
    for command in (("report", tmp_path), ("compare", tmp_path, tmp_path)):
        code, out, err = finish(fastscratch(*command))
        assert code == 0 and "Traceback" not in err, err
        for line in (2, 3, 4):
            assert f"{path}:{line}: " in err
        assert "'hidden' is 6, not a list" in err and "a JSON list, not a record" in err
    code, _, err = finish(fastscratch("run", spec, "--out", tmp_path, "--scheduler", dask_cluster, "--quiet"))
    assert code == 0 and "Traceback" not in err, err
    assert f"skipped {path}:3: 'hidden' is 6" in err and "1 cell-repeats run (0 failed), 1 already in" in err
    assert len(results.read(tmp_path)) == 2 and len(path.read_bytes().splitlines()) == 5


def test_the_scheduler_killed_mid_study(write_spec, tmp_path):
    """SIGKILL the `dask scheduler` while a study runs on it: the command says the scheduler was lost, keeps
    every line written, exits 1 and prints the command that resumes."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen([DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([DASK, "worker", address, "--nworkers", "1", "--nthreads", "1", "--resources",
                               f"{RESOURCE}=1", "--no-dashboard", "--host", "127.0.0.1", "--death-timeout", "5"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    try:
        spec = write_spec(GRID.replace("seed = [1, 2, 3]", "seed = [1, 2, 3, 4, 5]"), repeats=4, train_rows=2000)
        out = tmp_path / "out"
        proc = fastscratch("run", spec, "--out", out, "--scheduler", address, "--quiet")
        wait_for(out / results.FILENAME, 2, proc)
        scheduler.kill()
        before = (out / results.FILENAME).read_bytes()
        code, _, err = finish(proc, timeout=120)
        assert code == 1 and "Traceback" not in err, err
        assert f"lost the Dask scheduler {address} after" in err
        assert f"resume with:\n  fastscratch study run {spec} --out {out} --scheduler {address}" in err
        kept = results.read(out)
        assert 2 <= len(kept) < 40 and (out / results.FILENAME).read_bytes().startswith(before)
        assert all(r["status"] == "ok" for r in kept)
    finally:
        for proc in (worker, scheduler):
            proc.kill()
            proc.wait(timeout=20)


def test_missing_peers_are_named_before_running_and_failed_cells_on_every_run(dask_cluster, no_torch, write_spec,
                                                                               tmp_path):
    """Without torch: a note before running says which implementation cannot run and how to install it; each
    run, the first and the next, says how many cells are failed and the command that retries them."""
    spec = write_spec('implementation = ["jit", "torch"]\nhidden = [6]\n', repeats=2)
    out = tmp_path / "out"
    for attempt in range(2):
        code, _, err = finish(fastscratch("run", spec, "--out", out, "--scheduler", dask_cluster, "--quiet",
                                          env=no_torch))
        assert code == 1 and "Traceback" not in err, err
        assert (f"note: torch is not installed here, so the 2 cell-repeats of torch will fail. Install it with "
                f"`{sys.executable} -m pip install torch` (in a clone of fastscratch: `make peers`") in err
        assert (f"2 cell-repeats of this study are recorded as failed (their errors: `fastscratch study report {out}`)"
                f"; once their cause is fixed, run them again with:\n  fastscratch study run {spec} --out {out} "
                f"--scheduler {dask_cluster} --retry-failed") in err
    assert "0 cell-repeats run (0 failed), 4 already in" in err


def test_failures_are_printed_as_they_are_not_as_markup():
    import io

    from rich.console import Console

    from fastscratch.cli import study as cli
    from fastscratch.study import spec
    stream = io.StringIO()
    display = cli._Display(Console(file=stream, width=40, soft_wrap=True), spec.parse(
        {"grid": {"implementation": "jit"}}, "s[1]"), [], live=False)
    display.update({"status": "failed", "implementation": "torch", "dtype": "float64", "hidden": [6], "seed": 1,
                    "batch_size": 30, "repeat": 0, "error": "ImportError: pip install -e '.[peers]' [bold]x"}, None)
    assert stream.getvalue() == ("failed: torch on cpu mnist float64 6 batch 30 seed 1 repeat 0: ImportError: "
                                 "pip install -e '.[peers]' [bold]x\n")


def test_cuda_cells_without_a_gpu_are_announced_and_fail_alone(write_spec, tmp_path):
    """On a machine without an NVIDIA driver, `study run` says before running that the cuda cells will fail;
    they are recorded failed with the reason and the CPU cells run."""
    from fastscratch.implementations.devices import nvidia_driver
    pytest.importorskip("torch")
    if nvidia_driver() is not None:
        pytest.skip("this machine has an NVIDIA driver")
    spec = write_spec('implementation = "torch"\nhidden = [6]\ndevice = ["cpu", "cuda"]\n', repeats=1)
    code, _, err = finish(fastscratch("run", spec, "--out", tmp_path, "--quiet"))
    assert code == 1 and "Traceback" not in err, err
    assert ("note: no NVIDIA GPU driver is loaded on this machine, so the 1 cell-repeats on device 'cuda' will "
            "fail") in err
    assert "failed: torch on cuda mnist float64 6 batch 30 seed 42 repeat 0: RuntimeError: device 'cuda'" in err
    assert {(r["device"], r["status"]) for r in results.read(tmp_path)} == {("cpu", "ok"), ("cuda", "failed")}


def test_pinned_workers_beyond_the_cpus_are_refused_and_create_nothing(write_spec, tmp_path):
    """`--workers 3 --cpus-per-worker 1` on 2 CPUs: a usage error naming the option, before anything starts;
    --out is not created."""
    cpus = len(os.sched_getaffinity(0))
    out = tmp_path / "new" / "out"
    code, _, err = finish(fastscratch("run", write_spec(GRID), "--out", out, "--workers", cpus + 1,
                                      "--cpus-per-worker", 1))
    assert code == 2 and "Traceback" not in err, err
    assert f"argument --cpus-per-worker: {cpus + 1} workers x 1 CPUs need {cpus + 1} CPUs; this process may use {cpus}" in err
    assert not (tmp_path / "new").exists()


def test_a_run_refused_by_its_cluster_creates_nothing(write_spec, tmp_path):
    """A cluster that cannot run the study (no worker declares the timing resource): exit 1, the reason, and --out
    (here an existing empty folder) as it was."""
    from distributed import LocalCluster

    from fastscratch.study.run import NO_DASHBOARD, environ_kept
    out = tmp_path / "out"
    out.mkdir()
    # environ_kept: the nanny leaves its MALLOC_TRIM_THRESHOLD_ in this process, for the local clusters of later tests
    with environ_kept(), LocalCluster(n_workers=1, threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                                      **NO_DASHBOARD) as plain:
        code, _, err = finish(fastscratch("run", write_spec(GRID), "--out", out, "--scheduler",
                                          plain.scheduler_address))
    assert code == 1 and "Traceback" not in err and f'--resources "{RESOURCE}=1"' in err, err
    assert os.listdir(out) == []


def test_ctrl_c_before_the_first_cell_leaves_nothing(write_spec, tmp_path):
    """Stopped while its local cluster starts: exit 130, says nothing was written, and --out is gone again."""
    out = tmp_path / "out"
    proc = fastscratch("run", write_spec(GRID), "--out", out)
    deadline = time.monotonic() + 60
    while not (out / results.FILENAME).exists():  # the writer holds it: the cluster is starting
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc, timeout=60)
    assert code == 130 and "Traceback" not in err, err
    assert "interrupted before any cell finished: nothing was written" in err
    assert not out.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_in_the_middle_of_the_cluster_start(write_spec, tmp_path, signum):
    """Stopped while the local worker starts (a worker preload of the user's Dask configuration that takes
    seconds): the cluster comes up, then closes; exit 130 or 143, no traceback (a KeyboardInterrupt inside
    LocalCluster's start left nannies that Dask's exit handler failed to close, with a traceback)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "slow_preload.py").write_text("import os, pathlib, time\n\ndef dask_setup(worker):\n"
                                          "    pathlib.Path(os.environ['STARTED']).touch()\n    time.sleep(5)\n")
    started = tmp_path / "started"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "DASK_DISTRIBUTED__WORKER__PRELOAD": '["slow_preload"]', "STARTED": str(started)}
    out = tmp_path / "out"
    proc = fastscratch("run", write_spec(GRID), "--out", out, env=env)
    deadline = time.monotonic() + 120
    while not started.exists():  # the worker process is up and in its preload: the cluster is half-started
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signum)
    code, _, err = finish(proc, timeout=120)
    assert code == 128 + signum and "Traceback" not in err, err
    how = "interrupted" if signum == signal.SIGINT else "terminated by SIGTERM"
    assert f"{how} before any cell finished: nothing was written" in err
    assert not out.exists()


def progress_lines(err, name):
    return [line for line in err.splitlines() if line.startswith(f"{name}: ")]


def test_progress_without_a_terminal_is_plain_lines(cluster, write_spec, tmp_path):
    """stderr a pipe (a log, CI): a line at the start, at each tenth of the cell-repeats (--progress-interval 0:
    every tenth at once) and none of the live line's control codes."""
    spec = write_spec('implementation = "jit"\nhidden = [6]\nseed = [1, 2, 3, 4, 5]\n', repeats=2, name="piped")
    code, out, err = finish(fastscratch("run", spec, "--out", tmp_path, "--scheduler", cluster.scheduler_address,
                                        "--progress-interval", 0))
    assert code == 0 and "Traceback" not in err, err
    lines = progress_lines(err, "piped")
    assert [line.split(",")[0] for line in lines] == [f"piped: {n}/10 ({10 * n}%)" for n in range(11)]
    assert lines[0] == "piped: 0/10 (0%), 0 ok, 0 failed, 10 to run, elapsed 0:00:00, ETA ?"
    assert re.fullmatch(r"piped: 10/10 \(100%\), 10 ok, 0 failed, 0 to run, elapsed \d:\d\d:\d\d, ETA 0:00:00",
                        lines[-1])
    assert "\x1b" not in err and "\r" not in err and out == ""


def test_progress_lines_are_at_most_one_per_interval(cluster, write_spec, tmp_path):
    """The default interval (10 s) on a study of a few seconds: its first line and its last, nothing between."""
    spec = write_spec('implementation = "jit"\nhidden = [6]\nseed = [1, 2, 3, 4, 5]\n', repeats=2, name="few")
    start = time.monotonic()
    code, _, err = finish(fastscratch("run", spec, "--out", tmp_path, "--scheduler", cluster.scheduler_address))
    assert code == 0, err
    if time.monotonic() - start > 9:
        pytest.skip("the machine is too busy for a study of a few seconds")
    assert [line.split(",")[0] for line in progress_lines(err, "few")] == ["few: 0/10 (0%)", "few: 10/10 (100%)"]


def test_progress_on_a_terminal_is_the_live_line(cluster, write_spec, tmp_path):
    """stderr a terminal (a pty): the live line, and no plain progress lines."""
    import pty
    spec = write_spec('implementation = "jit"\nhidden = [6]\nseed = [1, 2]\n', repeats=1, name="tty")
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "fastscratch", "study", "run", str(spec), "--out", str(tmp_path),
                             "--scheduler", cluster.scheduler_address, "--progress-interval", "0"],
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "120"})
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(timeout=120) == 0, seen
    text = seen.decode(errors="replace")
    assert "tty" in text and "2 ok, 0 failed, 0 to run" in text and "ETA" in text and "\x1b[" in text
    assert "tty: 0/2 (0%)" not in text and "elapsed" not in text


def test_failures_are_grouped_by_reason(dask_cluster, no_torch, write_spec, tmp_path):
    """Six torch cell-repeats fail for one reason: its first failure is printed as it comes, the others only
    counted; at the end the run's failures grouped as the report groups them (reason, count, cells)."""
    spec = write_spec('implementation = ["jit", "torch"]\nhidden = [6]\nseed = [1, 2, 3]\n', repeats=2)
    code, _, err = finish(fastscratch("run", spec, "--out", tmp_path, "--scheduler", dask_cluster, "--quiet",
                                      env=no_torch))
    assert code == 1 and "Traceback" not in err, err
    assert err.count("failed: torch on cpu mnist float64 6 batch 30 seed ") == 1
    reason = ("ImportError: implementation 'torch' needs torch, which is not installed: "
              f"`{sys.executable} -m pip install torch`")
    assert (f"6 cell-repeats failed in this run, for 1 reason:\n  6 x {reason}") in err
    assert "\n      torch float64, seed 1; torch float64, seed 2; torch float64, seed 3\n" in err
    from fastscratch.study import report
    report.write(tmp_path)
    assert f"| {reason}" in (tmp_path / "report.md").read_text()  # the same reason in the report
