"""``fastscratch train`` under faults: full disk, kills between writes, Ctrl-C at awkward moments, overflow.

Whatever happens, the run directory must hold a history that says what
happened, a ``model.npz`` that ``load`` accepts and that matches the epoch the
history names, and the exit code must agree with the history.
"""
import contextlib
import csv
import errno
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastscratch
from fastscratch import _files, _interrupt, cli, inputs, reference, serialization
from fastscratch.cli import progress, record, rundir
from fastscratch.datasets import prepare
from children import signalled
from test_train import ctrl_c_when, first_epoch_logged

SUBPROCESS_TIMEOUT = 600


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):  # the reference backend's small products
        yield


def run(mnist_dir, out, *options):
    """``main`` in this process; returns (exit code, history or None, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(["train", "--data-dir", mnist_dir, "--out", str(out), *options])
    return code, read_history(out), stderr.getvalue()


def read_history(out):
    path = os.path.join(out, "history.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def csv_epochs(out):
    with open(os.path.join(out, "history.csv"), newline="", encoding="utf-8") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def trained_reference(mnist_raw, epochs, batch_size=30, **kwargs):
    """The tutorial's network after ``epochs`` epochs, drawn as the command draws it."""
    np.random.seed(42)
    np.random.randint(0, 10000)
    X_train, Y_train, X_test, y_test = prepare(*mnist_raw)
    net = reference.SimpleNetwork(784, 10, [64, 32])
    if epochs:
        net.train(X_train, Y_train, X_test, y_test, batch_size=batch_size, num_epochs=epochs, verbose=False,
                  **kwargs)
    return net


def assert_model_is(path, expected, rtol=0.0):
    model = fastscratch.SimpleNetwork.load(path)
    for got, want in zip(model.layers, expected.layers):
        np.testing.assert_allclose(got.W, want.W, rtol=rtol, atol=0)
        np.testing.assert_allclose(got.b, want.b, rtol=rtol, atol=0)


def assert_consistent(out, history):
    """The two histories hold the same epochs; a final status lists every file, and they are all there."""
    assert csv_epochs(out) == list(range(history["completed_epochs"] + 1))
    if history["status"] != "running":
        assert sorted(history["files"]) == sorted(os.listdir(out))
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # no temporary file, no claim


# -- full disk

def test_full_disk_while_saving_the_model_is_a_clear_error_and_the_weights_go_elsewhere(
        mnist_dir, mnist_raw, tmp_path, monkeypatch):
    real_atomic_write = _files.atomic_write

    @contextlib.contextmanager
    def full_disk(path, *args, **kwargs):
        with real_atomic_write(path, *args, **kwargs) as f:
            yield f
            if os.fspath(path) == str(tmp_path / "run" / "model.npz"):
                raise OSError(28, "No space left on device")  # as a write or fsync would

    monkeypatch.setattr(serialization, "atomic_write", full_disk)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    code, history, stderr = run(mnist_dir, tmp_path / "run", "--epochs", "1", "--backend", "reference")
    assert code == 1
    assert "Traceback" not in stderr and "No space left on device" in stderr and "model.npz" in stderr
    assert history["status"] == "save failed" and history["completed_epochs"] == 1
    assert history["unsaved"] == {"model.npz": "No space left on device"}
    assert "model.npz" not in os.listdir(tmp_path / "run")
    assert history["model_saved_to"] in stderr
    assert_model_is(history["model_saved_to"], trained_reference(mnist_raw, 1))
    assert_consistent(tmp_path / "run", history)
    assert_private_temporary(history["model_saved_to"], tmp_path / "tmp")


def assert_private_temporary(path, tempdir):
    """A model saved elsewhere is in a new directory of ``tempdir`` that only its owner can enter, and 0600."""
    directory = os.path.dirname(path)
    assert os.path.dirname(directory) == str(tempdir) and os.listdir(directory) == ["model.npz"]
    assert os.stat(directory).st_mode & 0o777 == 0o700 and os.stat(path).st_mode & 0o777 == 0o600


def test_models_saved_elsewhere_get_unpredictable_private_paths(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    network = reference.SimpleNetwork(4, 2, [3])
    paths = {record.save_model_elsewhere(network, "runs/20261201-211333") for _ in range(2)}
    assert len(paths) == 2 and None not in paths  # the same run directory name twice: two paths
    for path in paths:
        assert_private_temporary(path, tmp_path)


def fail_history_writes(monkeypatch, failing):
    """``_files.write_text`` of history.json raises ENOSPC at the writes numbered in ``failing`` (1-based)."""
    real_write_text = _files.write_text
    count = [0]

    def write_text(path, text):
        if os.path.basename(path) == "history.json":
            count[0] += 1
            if count[0] in failing:
                raise OSError(28, "No space left on device")
        real_write_text(path, text)

    monkeypatch.setattr(_files, "write_text", write_text)


def test_a_failed_checkpoint_warns_and_training_goes_on(mnist_dir, mnist_raw, tmp_path, monkeypatch):
    fail_history_writes(monkeypatch, {1, 2})  # the checkpoints before and after the first epoch
    code, history, stderr = run(mnist_dir, tmp_path / "run", "--epochs", "2", "--backend", "reference")
    assert "Traceback" not in stderr and stderr.count("could not checkpoint") == 1
    assert (code, history["status"], history["completed_epochs"]) == (0, "completed", 2)
    assert_model_is(tmp_path / "run" / "model.npz", trained_reference(mnist_raw, 2))
    assert_consistent(tmp_path / "run", history)


def test_a_disk_that_fills_during_training_is_a_clear_error(mnist_dir, tmp_path, monkeypatch):
    fail_history_writes(monkeypatch, set(range(2, 100)))  # every write after the first checkpoint
    code, history, stderr = run(mnist_dir, tmp_path / "run", "--epochs", "1", "--backend", "reference")
    assert code == 1 and "Traceback" not in stderr and "No space left on device" in stderr
    assert history["status"] == "running"  # the first checkpoint, whole: the final history did not fit
    assert history["completed_epochs"] == 0
    assert "history.json there is the checkpoint written as training started" in stderr


@contextlib.contextmanager
def read_only_after(out, history_writes):
    """The directory ``out`` turns read-only (EROFS) once ``history.json`` has been written ``history_writes`` times.

    Every call that would change the directory fails as on a file system
    remounted read-only; reading it still works. Root ignores permission bits
    and a remount needs privileges, so the calls themselves fail here.
    """
    real = {name: getattr(os, name) for name in ("open", "unlink", "replace", "rename", "mkdir", "rmdir")}
    writes = [0]
    changing = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    root = os.path.abspath(out)

    def refuse(path):
        path = os.path.abspath(os.fspath(path))
        if writes[0] >= history_writes and (path == root or path.startswith(root + os.sep)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    def open_(path, flags, *args, **kwargs):
        if flags & changing:
            refuse(path)
        return real["open"](path, flags, *args, **kwargs)

    def replace(src, dst, *args, **kwargs):
        refuse(dst)
        real["replace"](src, dst, *args, **kwargs)
        writes[0] += os.path.basename(os.fspath(dst)) == "history.json"

    def changes(name):
        def change(path, *args, **kwargs):
            refuse(path)
            return real[name](path, *args, **kwargs)
        return change

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", open_)
        patch.setattr(os, "replace", replace)
        for name in ("unlink", "rename", "mkdir", "rmdir"):
            patch.setattr(os, name, changes(name))
        yield


def test_a_run_directory_that_turns_read_only_mid_run_ends_in_messages_that_say_what_is_where(
        mnist_dir, mnist_raw, tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    out = tmp_path / "run"
    with read_only_after(out, history_writes=2):  # as training started, and after epoch 1 of 3
        code, history, stderr = run(mnist_dir, out, "--epochs", "3", "--backend", "reference", "--quiet")
    assert code == 1 and "Traceback" not in stderr, stderr
    assert stderr.count("could not checkpoint") == 1 and "Read-only file system" in stderr
    assert history["status"] == "running" and history["completed_epochs"] == 1  # what the directory holds
    assert "history.json there is the checkpoint written after epoch 1 of the 3 completed" in stderr
    assert "last epoch's checkpoint" not in stderr
    assert f"the run in {out} is incomplete: nothing could be written there" in stderr
    assert "the weights after epoch 3 were saved instead to" in stderr
    (saved_to,) = [line.rsplit(" ", 1)[1] for line in stderr.splitlines() if "were saved instead to" in line]
    assert_model_is(saved_to, trained_reference(mnist_raw, 3))
    assert_private_temporary(saved_to, tmp_path / "tmp")
    assert f"could not remove {out / rundir.CLAIM} (Read-only file system); no process holds it" in stderr
    assert sorted(os.listdir(out)) == [rundir.CLAIM, "history.json"]
    with pytest.raises(rundir.RunDirectoryError, match="not an empty directory"):  # the run's, not the marker's
        rundir.claim_run_directory(str(out))


def test_ctrl_c_after_train_returns_keeps_an_honest_run(mnist_dir, mnist_raw, tmp_path, monkeypatch):
    real_exit = progress.LiveLine.__exit__

    def exit_then_ctrl_c(self, *exc):
        real_exit(self, *exc)
        raise KeyboardInterrupt  # as a Ctrl-C between train's return and the shielded saving

    monkeypatch.setattr(progress.LiveLine, "__exit__", exit_then_ctrl_c)
    code, history, stderr = run(mnist_dir, tmp_path / "run", "--epochs", "1", "--quiet")
    assert code == 130 and history["status"] == "interrupted"
    assert history["completed_epochs"] == history["model_epoch"] == 1
    assert_model_is(tmp_path / "run" / "model.npz", trained_reference(mnist_raw, 1), rtol=1e-9)
    assert_consistent(tmp_path / "run", history)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 300 kB tmpfs (too small for the model, big enough for the rest), when this process may mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_really_full_disk(mnist_dir, tmp_path, tiny_disk):
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TMPDIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "fastscratch", "train", "--epochs", "1", "--quiet",
                             "--data-dir", mnist_dir, "--out", str(tiny_disk / "run")],
                            env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "No space left on device" in result.stderr
    history = read_history(tiny_disk / "run")
    assert history["status"] == "save failed" and "model.npz" in history["unsaved"]
    fastscratch.SimpleNetwork.load(history["model_saved_to"])
    assert history["model_saved_to"].startswith(str(tmp_path))
    assert_consistent(tiny_disk / "run", history)


# -- kills between writes (a subprocess that dies at a chosen write, as SIGKILL would)

KILL_AT = """
import os, sys
from fastscratch import _files, cli, serialization
target, nth = sys.argv[1], int(sys.argv[2])
real_atomic_write = _files.atomic_write
writes = 0

class Killing:
    def __init__(self, path, *args, **kwargs):
        global writes
        self.context, self.path = real_atomic_write(path, *args, **kwargs), path
        if os.path.basename(path) == target:
            writes += 1
            self.kill = writes == nth
    def __enter__(self):
        self.file = self.context.__enter__()
        return self
    def write(self, data):
        self.file.write(data)
        if os.path.basename(self.path) == target and self.kill:
            self.file.flush()
            os._exit(9)  # killed half-way through this file
    def __getattr__(self, name):
        return getattr(self.file, name)
    def __exit__(self, *exc):
        return self.context.__exit__(*exc)

_files.atomic_write = serialization.atomic_write = Killing
cli.main(sys.argv[3:])
"""


# history.json is written at the start, after each of the 2 epochs, then last with the final status.
@pytest.mark.parametrize("target, nth, epochs, csv_written", [("history.json", 4, 2, True), ("model.npz", 1, 2, False),
                                                             ("history.json", 3, 1, False)],
                         ids=["final history", "model", "second epoch's checkpoint"])
def test_a_kill_between_writes_leaves_agreeing_whole_files(target, nth, epochs, csv_written, mnist_dir, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--epochs", "2", "--hidden", "16", "--quiet", "--data-dir", mnist_dir, "--out", str(out)]
    result = subprocess.run([sys.executable, "-c", KILL_AT, target, str(nth), *argv],
                            env=dict(os.environ, OPENBLAS_NUM_THREADS="1"), capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == 9, result.stderr
    history = read_history(out)
    assert history["status"] == "running"  # never a final status unless every other file is in place
    assert history["completed_epochs"] == epochs
    files = os.listdir(out)
    assert target == "history.json" or target not in files  # a killed write leaves no partial file
    assert ("history.csv" in files) == csv_written  # written only with the other final files
    if csv_written:  # from the same record as the history.json checkpoint it sits beside
        assert csv_epochs(out) == list(range(epochs + 1))
    if "model.npz" in files:
        fastscratch.SimpleNetwork.load(out / "model.npz")


# -- Ctrl-C at awkward moments

def test_ctrl_c_while_train_indexes_the_data_keeps_an_honest_run(mnist_dir, mnist_raw, tmp_path, monkeypatch):
    real_prepare = inputs.prepare_train

    def prepare_then_ctrl_c(*args, **kwargs):
        real_prepare(*args, **kwargs)
        raise KeyboardInterrupt  # what SIGINT raises while train sets up, before its first batch

    monkeypatch.setattr(inputs, "prepare_train", prepare_then_ctrl_c)
    code, history, stderr = run(mnist_dir, tmp_path / "run", "--epochs", "3")
    assert code == 130 and "Traceback" not in stderr and "interrupted at epoch 1" in stderr
    assert history["status"] == "interrupted" and history["completed_epochs"] == 0
    assert history["stopped_at"] == {"epoch": 1, "batches_done": 0} and history["model_epoch"] == 0
    assert_model_is(tmp_path / "run" / "model.npz", trained_reference(mnist_raw, 0))
    assert_consistent(tmp_path / "run", history)


def test_a_real_ctrl_c_as_training_starts(mnist_dir, tmp_path):
    """SIGINT right after the first history.json appears: while train sets up, or early in epoch 1."""
    import time

    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "fastscratch", "train", "--epochs", "50", "--quiet",
                                "--data-dir", mnist_dir, "--out", str(out)],
                               env=dict(os.environ, OPENBLAS_NUM_THREADS="1"), stderr=subprocess.PIPE, text=True,
                               **signalled())

    def history_written(deadline):
        while not (out / "history.json").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the run ended before training"
            time.sleep(0.005)

    code, stderr = ctrl_c_when(process, history_written)
    assert code == 130 and "Traceback" not in stderr, stderr
    history = read_history(out)
    assert history["status"] == "interrupted"
    assert history["model_epoch"] == history["completed_epochs"] < 50
    fastscratch.SimpleNetwork.load(out / "model.npz")
    assert_consistent(out, history)


def test_ctrl_c_while_saving_finishes_the_files_and_the_exit_code_matches(mnist_dir, tmp_path, monkeypatch):
    real_save_model = record.save_model

    def save_model_and_press_ctrl_c(*args):
        os.kill(os.getpid(), signal.SIGINT)
        real_save_model(*args)

    monkeypatch.setattr(record, "save_model", save_model_and_press_ctrl_c)
    code, history, stderr = run(mnist_dir, tmp_path / "run", "--epochs", "1", "--quiet")
    assert "Ctrl-C came while the run was being saved" in stderr
    assert (code, history["status"]) == (0, "completed")
    assert_consistent(tmp_path / "run", history)


def interrupt_after_checks(monkeypatch, checks):
    """Ctrl-C as the ``checks``-th poll of train's interrupt flag is reached."""
    real_check = _interrupt._Flag.check
    count = [0]

    def check(self, *args):
        count[0] += 1
        if count[0] == checks:
            self.requested = True
        return real_check(self, *args)

    monkeypatch.setattr(_interrupt._Flag, "check", check)


@pytest.mark.parametrize("backend, batch_size", [("reference", 30), ("jit", 256)],
                         ids=["reference", "jit on the BLAS loop"])
def test_ctrl_c_mid_epoch_saves_the_model_of_the_last_whole_epoch(backend, batch_size, mnist_dir, mnist_raw,
                                                                  tmp_path, monkeypatch, request):
    if backend == "jit":
        request.getfixturevalue("blas_past_127_rows")  # the batch loop, which polls for Ctrl-C at every batch
    batches = 60000 // batch_size
    interrupt_after_checks(monkeypatch, batches + 5)  # the 5th batch of epoch 2
    code, history, stderr = run(mnist_dir, tmp_path / "run", "--epochs", "3", "--backend", backend,
                                "--batch-size", str(batch_size), "--quiet")
    assert code == 130 and history["status"] == "interrupted"
    assert history["completed_epochs"] == 1 and history["model_epoch"] == 1
    assert history["stopped_at"] == {"epoch": 2, "batches_done": 4}
    assert_model_is(tmp_path / "run" / "model.npz", trained_reference(mnist_raw, 1, batch_size),
                    rtol=0 if backend == "reference" else 1e-9)
    assert_consistent(tmp_path / "run", history)


# -- overflow: never a model that load refuses

@pytest.mark.parametrize("backend", ["jit", "reference"])
@pytest.mark.parametrize("epochs", [1, 2])
def test_an_overflowing_update_keeps_the_last_finite_weights(epochs, backend, mnist_dir, mnist_raw, tmp_path):
    with np.errstate(all="ignore"):
        code, history, stderr = run(mnist_dir, tmp_path / "run", "--epochs", str(epochs), "--backend", backend,
                                    "--batch-size", "60000", "--lr", "1e308", "--quiet")
    assert code == 1 and "Traceback" not in stderr and "non-finite" in stderr
    assert history["status"] == "non-finite loss" and history["model_epoch"] == 0
    assert "the last finite ones" in stderr
    assert_model_is(tmp_path / "run" / "model.npz", trained_reference(mnist_raw, 0))
    assert_consistent(tmp_path / "run", history)


def test_ctrl_c_during_the_last_epochs_evaluation_drops_nothing(mnist_dir, mnist_raw, tmp_path, monkeypatch):
    interrupt_after_checks(monkeypatch, 2)  # the JIT polls before its one epoch and once after it
    code, history, stderr = run(mnist_dir, tmp_path / "run", "--epochs", "1", "--quiet")
    assert code == 130 and history["status"] == "interrupted" and "after the last epoch" in stderr
    assert history["completed_epochs"] == history["model_epoch"] == 1 and history["stopped_at"] is None
    assert_model_is(tmp_path / "run" / "model.npz", trained_reference(mnist_raw, 1), rtol=1e-9)
    assert_consistent(tmp_path / "run", history)


# -- SIGTERM and SIGHUP: what kill, timeout, systemd, Docker, batch schedulers and a closed terminal send

STOP_SIGNALS = [pytest.param(signal.SIGTERM, id="SIGTERM"), pytest.param(signal.SIGHUP, id="SIGHUP")]

SIGNAL_AT = """
import os, signal, sys
from fastscratch import cli, datasets
from fastscratch.cli import record
signum, moment = getattr(signal, sys.argv[1]), sys.argv[2]
if sys.argv[3] == "background":  # a job started with `&` by a script: SIGINT ignored
    signal.signal(signal.SIGINT, signal.SIG_IGN)
real = {"loading": datasets.load_dataset, "saving": record.save_model}[moment]

def send_then_go_on(*args, **kwargs):
    os.kill(os.getpid(), signum)
    return real(*args, **kwargs)

if moment == "loading":
    datasets.load_dataset = send_then_go_on
else:
    record.save_model = send_then_go_on
sys.exit(cli.main(sys.argv[4:]))
"""


def train_process(mnist_dir, out, *prefix, epochs=1000, ignoring=()):
    """A real ``fastscratch train`` (or the ``SIGNAL_AT`` wrapper around it, with ``prefix``) on a small network,
    started with the stop signals at their defaults, whatever the suite's are, except ``ignoring`` (as a shell
    starts background jobs, or nohup)."""
    argv = ["train", "--epochs", str(epochs), "--hidden", "16", "--data-dir", mnist_dir, "--out", str(out)]
    start = [sys.executable, "-c", SIGNAL_AT, *prefix] if prefix else [sys.executable, "-m", "fastscratch"]
    return subprocess.Popen([*start, *argv], env=dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **signalled(*ignoring))


def assert_terminated(out, history, signum, stderr):
    assert "Traceback" not in stderr, stderr
    assert history["status"] == "terminated" and history["signal"] == signum.name
    assert f"terminated by {signum.name}" in stderr
    assert history["model_epoch"] == history["completed_epochs"]
    model = fastscratch.SimpleNetwork.load(out / "model.npz")
    assert [layer.W.shape for layer in model.layers] == [(784, 16), (16, 10)]
    assert_consistent(out, history)  # every file in place, and the marker released


@pytest.mark.parametrize("signum", STOP_SIGNALS)
@pytest.mark.parametrize("moment", ["as training starts", "after an epoch"])
def test_a_stop_signal_during_training_keeps_the_run(signum, moment, mnist_dir, tmp_path):
    import time

    out = tmp_path / "run"
    process = train_process(mnist_dir, out)

    def ready(deadline):
        if moment == "as training starts":  # the first history.json: train sets up, or runs epoch 1
            while not (out / "history.json").exists():
                assert process.poll() is None and time.monotonic() < deadline, "the run ended before training"
                time.sleep(0.005)
        else:
            first_epoch_logged(process)(deadline)

    code, stderr = ctrl_c_when(process, ready, signum)
    assert code == 128 + signum, stderr
    history = read_history(out)
    assert_terminated(out, history, signum, stderr)
    assert history["completed_epochs"] < 1000 and history["stopped_at"]["epoch"] == history["completed_epochs"] + 1
    if moment == "after an epoch":
        assert history["completed_epochs"] >= 1


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_a_stop_signal_while_the_data_loads_saves_nothing(signum, mnist_dir, tmp_path):
    process = train_process(mnist_dir, tmp_path / "run", signum.name, "loading", "terminal")
    stdout, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr and f"terminated by {signum.name} before training started" in stderr
    assert not (tmp_path / "run").exists()  # the claimed directory is given back


@pytest.mark.parametrize("signum", STOP_SIGNALS)
def test_a_stop_signal_while_saving_finishes_the_files(signum, mnist_dir, tmp_path):
    out = tmp_path / "run"
    process = train_process(mnist_dir, out, signum.name, "saving", "terminal", epochs=1)
    stdout, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert process.returncode == 0, stderr
    assert f"{signum.name} came while the run was being saved; the files were finished first" in stderr
    history = read_history(out)
    assert (history["status"], history["signal"], history["completed_epochs"]) == ("completed", None, 1)
    assert_consistent(out, history)


def test_sigterm_stops_a_background_job_whose_ctrl_c_is_ignored(mnist_dir, tmp_path):
    """A script's `fastscratch train ... &` ignores SIGINT, and `kill %1` sends SIGTERM: the run is still kept."""
    out = tmp_path / "run"
    process = train_process(mnist_dir, out, ignoring=[signal.SIGINT])
    code, stderr = ctrl_c_when(process, first_epoch_logged(process), signal.SIGTERM)
    assert code == 143, stderr
    history = read_history(out)
    assert_terminated(out, history, signal.SIGTERM, stderr)
    assert 1 <= history["completed_epochs"] < 1000


def test_an_ignored_sighup_stays_ignored(mnist_dir, tmp_path):
    """Under nohup a closed terminal must not stop the run."""
    out = tmp_path / "run"
    process = train_process(mnist_dir, out, epochs=3, ignoring=[signal.SIGHUP])
    code, stderr = ctrl_c_when(process, first_epoch_logged(process), signal.SIGHUP)
    assert code == 0, stderr
    assert read_history(out)["status"] == "completed"


def test_a_terminal_that_closes_takes_the_output_not_the_run(mnist_dir, tmp_path):
    """Closing the terminal sends SIGHUP and leaves nothing to write to: every later write fails (here EPIPE,
    on a tty EIO), and the run must still be kept and the exit code still say SIGHUP."""
    import time

    out = tmp_path / "run"
    process = train_process(mnist_dir, out)
    try:
        first_epoch_logged(process)(time.monotonic() + SUBPROCESS_TIMEOUT)
        process.stdout.close()
        process.stderr.close()
        process.send_signal(signal.SIGHUP)
        code = process.wait(timeout=SUBPROCESS_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == 129
    history = read_history(out)
    assert history["status"] == "terminated" and history["signal"] == "SIGHUP" and history["completed_epochs"] >= 1
    fastscratch.SimpleNetwork.load(out / "model.npz")
    assert_consistent(out, history)
