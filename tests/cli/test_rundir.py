"""The run directory: claimed exclusively before any data is loaded; a bad ``--out`` fails first."""
import contextlib
import datetime
import json
import os
import signal
import subprocess
import sys

import pytest

from fastscratch import cli, datasets
from fastscratch.cli import record, rundir

SUBPROCESS_TIMEOUT = 600
STAMP = datetime.datetime(2026, 12, 1, 21, 13, 33)


@pytest.fixture
def no_data_loading(monkeypatch):
    """Fail the test if the command gets as far as loading data."""
    def load(*args, **kwargs):
        raise AssertionError("the data was loaded before the options were checked")
    monkeypatch.setattr(datasets, "load_dataset", load)


def usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: fastscratch" in err and "Traceback" not in err
    return err


# -- claiming

def test_a_claim_creates_the_directory_and_its_release_removes_it_when_no_run_was_kept(tmp_path):
    out = tmp_path / "a" / "b"
    claim = rundir.claim_run_directory(str(out))
    assert os.listdir(out) == [rundir.CLAIM]
    claim.release()
    assert not out.exists() and (tmp_path / "a").is_dir()


def test_an_empty_directory_is_claimed_and_given_back_empty(tmp_path):
    claim = rundir.claim_run_directory(str(tmp_path))
    with pytest.raises(rundir.RunDirectoryError, match="in use by another fastscratch run"):
        rundir.claim_run_directory(str(tmp_path))
    claim.release()
    assert os.listdir(tmp_path) == []
    rundir.claim_run_directory(str(tmp_path)).release()  # reusable


def test_a_kept_run_leaves_its_files_and_drops_the_marker(tmp_path):
    claim = rundir.claim_run_directory(str(tmp_path / "run"))
    (tmp_path / "run" / "history.json").write_text("{}")
    claim.holds_run = True
    claim.release()
    assert os.listdir(tmp_path / "run") == ["history.json"]
    with pytest.raises(rundir.RunDirectoryError, match="not an empty directory"):
        rundir.claim_run_directory(str(tmp_path / "run"))


def test_default_runs_in_the_same_second_get_different_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = rundir.claim_run_directory(None, now=STAMP)
    second = rundir.claim_run_directory(None, now=STAMP)
    assert first.path == os.path.join("runs", "20261201-211333")
    assert second.path == os.path.join("runs", "20261201-211333-2")
    assert sorted(os.listdir("runs")) == ["20261201-211333", "20261201-211333-2"]


CLAIM_IN_A_PROCESS = """
import datetime, sys, time
from fastscratch.cli import rundir
time.sleep(max(float(sys.argv[2]) - time.time(), 0))  # start together
out = None if sys.argv[1] == "-" else sys.argv[1]
try:
    claim = rundir.claim_run_directory(out, now=datetime.datetime(2026, 12, 1, 21, 13, 33))
except rundir.RunDirectoryError as err:
    print("lost:", err)
else:
    print("won:", claim.path)
sys.stdout.flush()
sys.stdin.read()  # a claim ends with its process: hold it until every process has tried
"""


@pytest.mark.parametrize("out", ["shared", "-"], ids=["same --out", "default names"])
def test_processes_claiming_at_once(out, tmp_path):
    import time

    start = time.time() + 3  # after every interpreter has started
    processes = [subprocess.Popen([sys.executable, "-c", CLAIM_IN_A_PROCESS, out, str(start)], cwd=tmp_path,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        # Each answers, then holds its claim: a winner that ended before a late starter tried would leave
        # its marker unlocked, which the late one rightly takes over as a killed run's.
        results = [p.stdout.readline().strip() for p in processes]
    finally:
        for p in processes:
            p.communicate(timeout=SUBPROCESS_TIMEOUT)
    winners = [r.split(": ", 1)[1] for r in results if r.startswith("won:")]
    if out == "shared":
        assert len(winners) == 1, results
        assert all("in use" in r or "not an empty directory" in r for r in results if r.startswith("lost:"))
    else:
        assert len(set(winners)) == 4, results  # four processes, four directories
        assert len(os.listdir(tmp_path / "runs")) == 4


def test_two_real_runs_on_the_same_out_exactly_one_wins(mnist_dir, tmp_path):
    out = tmp_path / "shared"
    env = dict(os.environ, FASTSCRATCH_MNIST_DIR=mnist_dir, OPENBLAS_NUM_THREADS="1")
    argv = [sys.executable, "-m", "fastscratch", "train", "--epochs", "1", "--hidden", "8", "--quiet",
            "--data-dir", mnist_dir, "--out", str(out)]
    processes = [subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    results = []
    for p in processes:  # read to the end: a child never waits on a pipe nobody reads
        _, err = p.communicate(timeout=SUBPROCESS_TIMEOUT)
        results.append((p.returncode, err))
    assert sorted(code for code, _ in results) == [0, 2], results
    (loser_err,) = [err for code, err in results if code == 2]
    assert "argument --out" in loser_err and "Traceback" not in loser_err
    assert sorted(os.listdir(out)) == sorted(record.RUN_FILES)
    with open(out / "history.json", encoding="utf-8") as f:
        assert json.load(f)["status"] == "completed"


# -- checked before the data is loaded

def test_empty_out_is_a_usage_error(no_data_loading, capsys):
    assert "argument --out: must not be empty" in usage_error(["train", "--out", ""], capsys)


def test_out_below_a_file_is_a_usage_error(no_data_loading, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    err = usage_error(["train", "--out", str(tmp_path / "file" / "sub")], capsys)
    assert "argument --out: cannot create" in err and f"{tmp_path / 'file'} is not a directory" in err


def test_unwritable_out_is_a_usage_error(no_data_loading, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    mounted = False
    if os.geteuid() == 0:  # root ignores permissions: a read-only file system stops it
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(locked)],
                                 capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("running as root and cannot mount a read-only tmpfs")
    else:
        locked.chmod(0o555)
    try:
        for out in (locked / "run", locked):
            err = usage_error(["train", "--out", str(out)], capsys)
            assert "argument --out: cannot" in err and str(locked) in err
    finally:
        if mounted:
            subprocess.run(["umount", str(locked)], check=True)
        locked.chmod(0o755)
    assert os.listdir(locked) == []


def test_a_marker_that_a_killed_run_left_is_taken_over_with_a_note(tmp_path, monkeypatch, capsys):
    (tmp_path / rundir.CLAIM).write_text("12345\n")  # no process holds it: its run was killed while loading

    def load(*args, **kwargs):
        assert (tmp_path / rundir.CLAIM).read_text() == f"{os.getpid()}\n"  # this run's claim now
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "load_dataset", load)
    assert cli.main(["train", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert f"{tmp_path} held the {rundir.CLAIM} marker of a run that is gone (process 12345)" in err
    assert os.listdir(tmp_path) == []  # given back empty, as it was found once the dead run's marker is gone


HOLD_A_CLAIM = """
import sys
from fastscratch.cli import rundir
claim = rundir.claim_run_directory(sys.argv[1])
print("claimed", flush=True)
sys.stdin.readline()
claim.release()
"""


def test_a_marker_that_a_live_run_holds_is_refused_with_its_process(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_A_CLAIM, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "claimed\n"
        with pytest.raises(rundir.RunDirectoryError, match=rf"in use by another fastscratch run \(process {holder.pid}\); "):
            rundir.claim_run_directory(str(tmp_path))
        assert (tmp_path / rundir.CLAIM).read_text() == f"{holder.pid}\n"  # the holder's claim is untouched
    finally:
        holder.communicate("\n", timeout=SUBPROCESS_TIMEOUT)
    assert os.listdir(tmp_path) == []
    rundir.claim_run_directory(str(tmp_path)).release()


@contextlib.contextmanager
def no_room_for_a_byte():
    """Every write of a byte to a file fails (EFBIG), as on a full disk where a new empty file still fits.

    A file size limit of 0 does it without root, a mount or a real full disk;
    SIGXFSZ is ignored so that the write returns the error instead of ending the process.
    """
    import resource

    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, limits[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, handler)


@pytest.mark.parametrize("exists", [False, True], ids=["new directory", "empty directory"])
def test_a_full_disk_while_claiming_is_a_usage_error_that_leaves_no_marker(exists, no_data_loading, tmp_path,
                                                                              capsys):
    out = tmp_path / "run"
    if exists:
        out.mkdir()
    with no_room_for_a_byte(), pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --out: cannot write to {out}: File too large" in err and "Traceback" not in err
    assert os.listdir(out) == [] if exists else not out.exists()
    rundir.claim_run_directory(str(out)).release()  # the same --out is free once there is room again


def test_a_stop_while_claiming_leaves_nothing_and_no_traceback(no_data_loading, tmp_path, monkeypatch, capsys):
    real_check_empty = rundir._check_empty
    calls = []

    def check_then_ctrl_c(path):  # the second look, with the marker made and locked
        calls.append(path)
        real_check_empty(path)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(rundir, "_check_empty", check_then_ctrl_c)
    (tmp_path / "run").mkdir()
    assert cli.main(["train", "--out", str(tmp_path / "run")]) == 130
    assert "interrupted before training started; nothing saved" in capsys.readouterr().err
    assert os.listdir(tmp_path / "run") == []
