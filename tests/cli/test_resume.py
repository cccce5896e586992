"""``fastscratch train --resume DIR`` on the real MNIST, with real files and real processes.

A resumed run must end with the files an uninterrupted run writes: model.npz,
training.png and prediction.png byte for byte, history.csv but for its seconds
column, history.json but for the fields that say when and how long
(``LEGITIMATELY_DIFFERENT``). Every refusal is a usage error that names what
is wrong and leaves the directory as it was.
"""
import contextlib
import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from children import signalled

from fastscratch import _files, cli, datasets, environment, serialization
from fastscratch.cli import progress, rundir

EPOCHS = 6
SUBPROCESS_TIMEOUT = 600
#: history.json's fields that may differ between a resumed run and the same run done in one go: when it ran and
#: for how long, the command lines, where it was written, the machine and process it started on (the environment
#: record: versions, CPU, load, thread settings, BLAS pools), and the record of the resumes themselves.
LEGITIMATELY_DIFFERENT = {"seconds_per_epoch", "resumes"}
CONFIG_LEGITIMATELY_DIFFERENT = {"command", "out", "started_at", "total_seconds", *environment.record()}
DTYPES = ["float64", "float32"]


def train(mnist_dir, *argv):
    """``fastscratch train ARGV`` in this process; returns (exit code, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = cli.main(["train", "--data-dir", mnist_dir, *argv])
        except SystemExit as exit_info:
            code = exit_info.code
    return code, stdout.getvalue(), stderr.getvalue()


def read_history(out):
    with open(os.path.join(out, "history.json"), encoding="utf-8") as f:
        return json.load(f)


def csv_rows(out):
    with open(os.path.join(out, "history.csv"), newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def contents(out):
    """Every file of a directory, name -> bytes (a refusal must leave them all as they were), but the marker of a
    killed run, which a claim takes over and removes as it ends."""
    return {name: (out / name).read_bytes() for name in sorted(os.listdir(out)) if name != rundir.CLAIM}


def assert_same_run(resumed, straight):
    """``resumed`` holds the files the uninterrupted run in ``straight`` wrote, but for when and how long."""
    assert sorted(os.listdir(resumed)) == sorted(os.listdir(straight))
    for name in ("model.npz", "training.png", "prediction.png"):
        assert (resumed / name).read_bytes() == (straight / name).read_bytes(), name
    got, expected = csv_rows(resumed), csv_rows(straight)
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in got] == \
        [{k: v for k, v in row.items() if k != "seconds"} for row in expected]
    got, expected = read_history(resumed), read_history(straight)
    assert len(got["seconds_per_epoch"]) == len(expected["seconds_per_epoch"])
    assert set(got) == set(expected)
    for key in set(expected) - LEGITIMATELY_DIFFERENT - {"config"}:
        assert got[key] == expected[key], key
    assert set(got["config"]) == set(expected["config"])
    for key in set(expected["config"]) - CONFIG_LEGITIMATELY_DIFFERENT:
        assert got["config"][key] == expected["config"][key], key


@pytest.fixture(scope="module")
def straight(mnist_dir, tmp_path_factory):
    """dtype -> the directory of a 6-epoch run done in one go."""
    runs = {}
    for dtype in DTYPES:
        out = tmp_path_factory.mktemp("straight") / dtype
        code, _, stderr = train(mnist_dir, "--epochs", str(EPOCHS), "--dtype", dtype, "--out", str(out), "--quiet")
        assert code == 0, stderr
        runs[dtype] = out
    return runs


@pytest.fixture(scope="module")
def three_epochs(mnist_dir, tmp_path_factory):
    """A completed float64 run of 3 epochs, for the tests to copy."""
    out = tmp_path_factory.mktemp("three") / "run"
    code, _, stderr = train(mnist_dir, "--epochs", "3", "--out", str(out), "--quiet")
    assert code == 0, stderr
    return out


def copy_of(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


# -- the same files as a run done in one go

@pytest.mark.parametrize("dtype", DTYPES)
def test_three_epochs_then_three_more_are_the_six_epoch_run(dtype, mnist_dir, straight, tmp_path):
    out = tmp_path / "run"
    code, _, stderr = train(mnist_dir, "--epochs", "3", "--dtype", dtype, "--out", str(out), "--quiet")
    assert code == 0, stderr
    code, stdout, stderr = train(mnist_dir, "--resume", str(out), "--epochs", str(EPOCHS))
    assert code == 0, stderr
    assert stderr == "" and f"Resuming the run in {out} after epoch 3, to epoch 6" in stdout
    assert [line[:10] for line in stdout.splitlines() if line.startswith("Epoch")] == \
        ["Epoch    4", "Epoch    5", "Epoch    6"]
    assert_same_run(out, straight[dtype])
    (resume,) = read_history(out)["resumes"]
    assert resume["from_epoch"] == 3 and resume["epochs"] == EPOCHS
    assert resume["command"] == f"fastscratch train --data-dir {mnist_dir} --resume {out} --epochs 6"
    assert read_history(out)["config"]["command"].startswith("fastscratch train --data-dir")  # the first one


def wait_for_line(process, prefix, deadline):
    while not process.stdout.readline().startswith(prefix):
        assert process.poll() is None and time.monotonic() < deadline, f"the run ended before {prefix!r}"


def train_process(mnist_dir, *argv):
    return subprocess.Popen([sys.executable, "-m", "fastscratch", "train", "--data-dir", mnist_dir, *argv],
                            env=dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **signalled())


def stop_after(process, prefix, signum):
    """Send ``signum`` once ``process`` printed a line starting with ``prefix``; return (exit code, stderr)."""
    try:
        wait_for_line(process, prefix, time.monotonic() + SUBPROCESS_TIMEOUT)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)  # reads both pipes to the end
        return process.returncode, stderr
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_a_run_stopped_by_a_signal_resumes_to_the_straight_run(signum, mnist_dir, straight, tmp_path):
    out = tmp_path / "run"
    code, stderr = stop_after(train_process(mnist_dir, "--epochs", str(EPOCHS), "--out", str(out)),
                              "Epoch    2:", signum)
    assert code == 128 + signum, stderr
    history = read_history(out)
    assert history["status"] in ("interrupted", "terminated") and 2 <= history["completed_epochs"] < EPOCHS
    before = contents(out)
    code, stdout, _ = train(mnist_dir, "--resume", str(out), "--epochs", "1")
    assert code == 0 and contents(out) == before
    assert stdout == f"Nothing to do: {out} holds the weights after epoch {history['completed_epochs']}, more " \
                     f"than the 1 asked\n"
    code, stdout, stderr = train(mnist_dir, "--resume", str(out), "--quiet")  # to the 6 epochs it planned
    assert code == 0, stderr
    assert_same_run(out, straight["float64"])


def test_the_reference_backend_resumes_bit_for_bit(mnist_dir, tmp_path):
    options = ["--backend", "reference", "--hidden", "16", "--quiet"]
    code, _, stderr = train(mnist_dir, "--epochs", "2", "--out", str(tmp_path / "straight"), *options)
    assert code == 0, stderr
    code, _, stderr = train(mnist_dir, "--epochs", "1", "--out", str(tmp_path / "run"), *options)
    assert code == 0, stderr
    code, _, stderr = train(mnist_dir, "--resume", str(tmp_path / "run"), "--epochs", "2", "--quiet")
    assert code == 0, stderr
    assert_same_run(tmp_path / "run", tmp_path / "straight")


def test_a_run_stopped_after_its_last_epoch_is_only_finished(mnist_dir, straight, tmp_path, monkeypatch):
    real_exit = progress.LiveLine.__exit__

    def exit_then_ctrl_c(self, *exc):
        real_exit(self, *exc)
        raise KeyboardInterrupt  # Ctrl-C as training ended, before the files were shielded

    with monkeypatch.context() as patch:
        patch.setattr(progress.LiveLine, "__exit__", exit_then_ctrl_c)
        code, _, _ = train(mnist_dir, "--epochs", str(EPOCHS), "--out", str(tmp_path / "run"), "--quiet")
    history = read_history(tmp_path / "run")
    assert code == 130 and history["status"] == "interrupted" and history["completed_epochs"] == EPOCHS
    code, stdout, stderr = train(mnist_dir, "--resume", str(tmp_path / "run"))
    assert code == 0, stderr
    assert not [line for line in stdout.splitlines() if line.startswith("Epoch")]  # nothing trained
    assert_same_run(tmp_path / "run", straight["float64"])


def test_a_resume_killed_midway_resumes_from_the_weights_it_left(mnist_dir, straight, three_epochs, tmp_path):
    out = copy_of(three_epochs, tmp_path)
    code, _ = stop_after(train_process(mnist_dir, "--resume", str(out), "--epochs", "1000"), "Epoch    5:",
                         signal.SIGKILL)
    assert code == -signal.SIGKILL
    history = read_history(out)  # the checkpoint of epoch 4 at least (5's line comes before its checkpoint)
    assert history["status"] == "running" and history["completed_epochs"] >= 4 and history["model_epoch"] == 3
    (out / ".model.npz.0123456789ab.tmp").write_bytes(b"PK")  # what a kill while saving the model leaves
    code, stdout, stderr = train(mnist_dir, "--resume", str(out), "--epochs", str(EPOCHS))
    assert code == 0, stderr
    assert f"{out} held the {rundir.CLAIM} marker of a run that is gone (process" in stderr
    assert f"after epoch 3, to epoch {EPOCHS}" in stdout
    assert_same_run(out, straight["float64"])
    assert [resume["from_epoch"] for resume in read_history(out)["resumes"]] == [3, 3]


@pytest.mark.parametrize("epochs", [[], ["--epochs", "3"], ["--epochs", "2"]], ids=["planned", "same", "fewer"])
def test_epochs_already_done_are_said_and_nothing_changes(epochs, mnist_dir, three_epochs, tmp_path):
    out = copy_of(three_epochs, tmp_path)
    before = contents(out)
    code, stdout, stderr = train(mnist_dir, "--resume", str(out), *epochs)
    assert (code, stderr) == (0, "")
    assert stdout == f"Nothing to do: {out} holds a completed run of 3 epochs; pass a larger --epochs to train " \
                     f"it on\n"
    assert contents(out) == before


# -- refusals: a usage error naming what differs, the directory as it was

def refused(mnist_dir, out, *argv):
    """Resume ``out`` with ``argv``; assert a usage error that left ``out`` as it was; return its message."""
    before = contents(out) if out.is_dir() else None
    code, _, stderr = train(mnist_dir, "--resume", str(out), *argv)
    assert code == 2 and "usage: fastscratch train" in stderr and "Traceback" not in stderr, stderr
    assert (contents(out) if out.is_dir() else None) == before
    return stderr.splitlines()[-1]


def test_other_options_are_refused_naming_each(mnist_dir, three_epochs, tmp_path):
    out = copy_of(three_epochs, tmp_path)
    err = refused(mnist_dir, out, "--hidden", "16", "--lr", "0.01", "--dtype", "float64", "--epochs", "4")
    assert err == (f"fastscratch train: error: argument --resume: the run in {out} was trained with other options "
                   f"than those given: --hidden 64 32 (given: 16); --lr 0.001 (given: 0.01). Leave them out to "
                   f"continue the run as it was, or start a new run")
    for option, value, run_value in [("--seed", "7", "42"), ("--batch-size", "32", "30"),
                                     ("--activation", "relu", "sigmoid"), ("--loss", "cross_entropy", "l2"),
                                     ("--dtype", "float32", "float64"), ("--backend", "reference", "jit"),
                                     ("--dataset", "fashion-mnist", "mnist"), ("--hidden", None, "64 32")]:
        err = refused(mnist_dir, out, option, *([] if value is None else [value]))
        assert f"{option} {run_value} (given: {value or '(none)'})" in err


def other_data(mnist_dir, tmp_path):
    """MNIST's four files with one test label changed: other data in MNIST's format."""
    directory = tmp_path / "other"
    directory.mkdir()
    X_train, y_train, X_test, y_test = datasets.load_mnist(mnist_dir)
    y_test = y_test.copy()
    y_test[0] = (y_test[0] + 1) % 10
    for file, array in zip(datasets.DATASETS["mnist"].files, (X_train, y_train, X_test, y_test)):
        header = b"\0\0\x08" + bytes([array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
        (directory / file.name).write_bytes(header + array.tobytes())
    return directory


def test_other_data_is_refused_naming_the_file(mnist_dir, three_epochs, tmp_path):
    out = copy_of(three_epochs, tmp_path)
    other = other_data(mnist_dir, tmp_path)
    err = refused(mnist_dir, out, "--data-dir", str(other), "--no-verify", "--epochs", "4")
    changed = datasets.load_mnist(other, verify=False).sha256[3]
    canonical = datasets.DATASETS["mnist"].files[3].sha256
    assert err == (f"fastscratch train: error: argument --resume: the run in {out} was trained on other data than "
                   f"{other} holds: t10k-labels-idx1-ubyte has SHA-256 {changed}, the run's had {canonical}. Pass "
                   f"--data-dir with the run's files to continue it")


def test_the_data_is_found_where_the_run_found_it_as_the_run_read_it(mnist_dir, tmp_path, monkeypatch, capsys):
    """Without --data-dir and --no-verify a resumed run reads the directory the run was given, as the run did
    (here other data in MNIST's format, unverified); a directory gone since is named."""
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    other, out = other_data(mnist_dir, tmp_path), tmp_path / "run"
    code, _, stderr = train(str(other), "--epochs", "1", "--hidden", "16", "--no-verify", "--out", str(out), "--quiet")
    assert code == 0, stderr
    code = cli.main(["train", "--resume", str(out), "--epochs", "2", "--quiet"])
    history = read_history(out)
    assert code == 0 and history["status"] == "completed" and history["completed_epochs"] == 2
    assert history["resumes"][0]["data_directory"] == str(other) and not history["resumes"][0]["verified"]
    shutil.rmtree(other)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--resume", str(out), "--epochs", "3"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"fastscratch train: error: argument --resume: the run's data directory {other} is gone; pass --data-dir "
        f"with its files")


def test_a_run_whose_model_went_elsewhere_continues_once_it_is_back(mnist_dir, tmp_path, monkeypatch):
    real_atomic_write = _files.atomic_write

    @contextlib.contextmanager
    def full_disk(path, *args, **kwargs):
        with real_atomic_write(path, *args, **kwargs) as f:
            yield f
            if os.fspath(path) == str(tmp_path / "run" / "model.npz"):
                raise OSError(28, "No space left on device")

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(serialization, "atomic_write", full_disk)
        code, _, _ = train(mnist_dir, "--epochs", "1", "--hidden", "16", "--out", str(out), "--quiet")
    history = read_history(out)
    assert code == 1 and history["status"] == "save failed" and "model.npz" not in os.listdir(out)
    assert refused(mnist_dir, out, "--epochs", "2").endswith(
        f"the run in {out} has no model.npz to continue from; it saved its weights to {history['model_saved_to']} "
        f"instead: copy that file to {out / 'model.npz'} to continue it")
    shutil.copy(history["model_saved_to"], out / "model.npz")
    code, _, stderr = train(mnist_dir, "--resume", str(out), "--epochs", "2", "--quiet")
    assert code == 0, stderr
    history = read_history(out)
    assert (history["status"], history["completed_epochs"], history["unsaved"]) == ("completed", 2, {})
    assert sorted(os.listdir(out)) == sorted(history["files"])


def not_a_run(tmp_path, case):
    path = tmp_path / "run"
    if case == "a file":
        path.write_text("")
    elif case != "missing":
        path.mkdir()
        if case != "empty":
            (path / "history.json").write_text({"not JSON": "{", "another record": '{"status": "completed"}'}[case])
    return path


@pytest.mark.parametrize("case, message", [
    ("missing", "no such directory: {path}"), ("a file", "{path} is not a directory"),
    ("empty", "{path} is not a fastscratch run directory: it has no history.json"),
    ("not JSON", "{path} is not a fastscratch run directory: its history.json cannot be read"),
    ("another record", "{path} is not a fastscratch run directory: its history.json is not a run's record")])
def test_what_is_not_a_run_directory_is_refused(case, message, mnist_dir, tmp_path):
    path = not_a_run(tmp_path, case)
    assert message.format(path=path) in refused(mnist_dir, path)
    assert not (tmp_path / "run" / rundir.CLAIM).exists()


def test_a_run_still_going_is_refused_and_resumes_once_stopped(mnist_dir, tmp_path):
    out = tmp_path / "run"
    process = train_process(mnist_dir, "--epochs", "1000", "--hidden", "16", "--out", str(out))
    try:
        wait_for_line(process, "Epoch    1:", time.monotonic() + SUBPROCESS_TIMEOUT)
        code, _, stderr = train(mnist_dir, "--resume", str(out), "--epochs", "1000")
        assert code == 2 and "Traceback" not in stderr
        assert f"argument --resume: {out} is in use by another fastscratch run (process {process.pid}); resume it " \
               f"once that run has stopped (Ctrl-C or kill stops it and keeps it)" in stderr
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    done = read_history(out)["completed_epochs"]
    code, _, stderr = train(mnist_dir, "--resume", str(out), "--epochs", str(done + 1), "--quiet")
    assert code == 0, stderr
    assert read_history(out)["status"] == "completed" and read_history(out)["completed_epochs"] == done + 1


def test_a_run_stopped_by_a_non_finite_loss_is_refused(mnist_dir, tmp_path):
    out = tmp_path / "run"
    with np.errstate(all="ignore"):
        code, _, _ = train(mnist_dir, "--loss", "cross_entropy", "--lr", "1000", "--epochs", "2", "--out", str(out),
                           "--quiet")
    assert code == 1 and read_history(out)["status"] == "non-finite loss"
    assert refused(mnist_dir, out, "--epochs", "3").endswith(
        f"the run in {out} stopped on a non-finite loss in epoch 1; continuing it would repeat that (the same "
        f"weights, data and options give the same loss): start a new run, with a smaller --lr")


def test_a_run_killed_before_it_saved_its_weights_is_refused(mnist_dir, tmp_path):
    out = tmp_path / "run"
    code, _ = stop_after(train_process(mnist_dir, "--epochs", "1000", "--hidden", "16", "--out", str(out)),
                         "Epoch    1:", signal.SIGKILL)
    assert code == -signal.SIGKILL and "model.npz" not in os.listdir(out)
    assert refused(mnist_dir, out).endswith(
        f"the run in {out} ended before it saved its weights (history.json says \"running\" and names no model: it "
        f"was killed, with SIGKILL or a crash, before it could save); there is nothing to continue from: start a "
        f"new run")


def test_a_model_that_is_not_the_runs_is_refused(mnist_dir, three_epochs, straight, tmp_path):
    out = copy_of(three_epochs, tmp_path)
    shutil.copy(straight["float64"] / "model.npz", out / "model.npz")  # the same network, 3 epochs further
    assert refused(mnist_dir, out, "--epochs", "4").endswith(
        f"the run in {out} cannot be continued: its model.npz does not hold the weights history.json describes "
        f"(those after epoch 3); it was replaced, or a kill came while the run was saving")
    shutil.copy(straight["float32"] / "model.npz", out / "model.npz")
    assert refused(mnist_dir, out, "--epochs", "4").endswith(
        f"its model.npz holds a 784-64-32-10 float32 network, the run's is 784-64-32-10 float64")
    (out / "model.npz").unlink()
    assert refused(mnist_dir, out, "--epochs", "4").endswith(f"the run in {out} has no model.npz to continue from")


def test_resume_and_out_together_are_a_usage_error(mnist_dir, three_epochs, tmp_path):
    err = refused(mnist_dir, three_epochs, "--out", str(tmp_path / "new"))
    assert "argument --out: not allowed with argument --resume" in err
    assert not (tmp_path / "new").exists()
