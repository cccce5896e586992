"""End-to-end runs of ``fastscratch train`` on the real MNIST (FASTSCRATCH_MNIST_DIR), 2 epochs.

The reference for every number is the tutorial's script run here, in this
process, with ``fastscratch.reference`` (same seed, same order of draws).
"""
import contextlib
import csv
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import matplotlib.image as mpimg
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import fastscratch
from fastscratch import cli, reference
from fastscratch.cli import record
from children import signalled

EPOCHS = 2
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUBPROCESS_TIMEOUT = 600  # seconds; a loaded 2-core machine can be slow, a hang must still end


# The reference makes thousands of small BLAS calls per epoch. With OpenBLAS's two threads and another
# busy process on a 2-core machine each call waits for a core, and an epoch takes 5-10 times longer;
# one BLAS thread gives the same numbers (checked below against the command's own processes).
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# -- the tutorial's script, in this process

@pytest.fixture(scope="module")
def seed_script(mnist_raw):
    """Section 4 of the tutorial with fastscratch.reference, 2 epochs; returns its numbers and network."""
    from fastscratch.datasets import prepare

    np.random.seed(42)
    X_train, y_train, X_test, y_test = mnist_raw  # (loading draws nothing from np.random)
    img_idx = np.random.randint(0, X_test.shape[0])
    X_train, Y_train, X_test, y_test = prepare(X_train, y_train, X_test, y_test)
    network = reference.SimpleNetwork(num_inputs=X_train.shape[1], num_outputs=10, hidden_layers_sizes=[64, 32])
    loss_untrained = network.loss_function(network.forward(X_train), Y_train)
    accuracy_untrained = network.evaluate_accuracy(X_test, y_test)
    losses, accuracies = network.train(X_train, Y_train, X_test, y_test, batch_size=30, num_epochs=EPOCHS,
                                       verbose=False)
    predicted_class = network.predict(np.expand_dims(X_test[img_idx], 0))
    return {"untrained_loss": loss_untrained, "untrained_accuracy": accuracy_untrained, "losses": losses,
            "accuracies": accuracies, "img_idx": img_idx, "predicted_class": predicted_class,
            "correct_class": y_test[img_idx], "network": network, "X_test": X_test, "y_test": y_test}


# -- runs of the command

def train_argv(mnist_dir, out, *options):
    return ["train", "--epochs", str(EPOCHS), "--data-dir", mnist_dir, "--out", str(out), *options]


def read_history(out):
    with open(os.path.join(out, "history.json"), encoding="utf-8") as f:
        return json.load(f)


def run_in_process(mnist_dir, out, *options):
    """``main`` on a run directory; returns (exit code, history, stdout, stderr)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = cli.main(train_argv(mnist_dir, out, *options))
    history = read_history(out) if os.path.exists(os.path.join(out, "history.json")) else None
    return code, history, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def reference_backend_run(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "reference"
    code, history, stdout, stderr = run_in_process(mnist_dir, out, "--backend", "reference")
    assert code == 0, stderr
    return out, history, stdout


@pytest.fixture(scope="module")
def jit_run(mnist_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "jit"
    code, history, stdout, stderr = run_in_process(mnist_dir, out, "--quiet")
    assert code == 0, stderr
    assert stdout == "" and stderr == ""  # --quiet
    return out, history


def subprocess_env(mnist_dir):
    env = dict(os.environ, FASTSCRATCH_MNIST_DIR=mnist_dir, PYTHONUNBUFFERED="1", **ONE_BLAS_THREAD)
    env.pop("COLUMNS", None)
    return env


def command():
    """The installed ``fastscratch`` script when there is one, else ``python -m fastscratch``."""
    script = shutil.which("fastscratch", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "fastscratch"]


def assert_same_history(history, expected, rtol=1e-9):
    np.testing.assert_allclose(history["untrained_loss"], expected["untrained_loss"], rtol=rtol)
    np.testing.assert_allclose(history["losses"], expected["losses"], rtol=rtol)
    assert history["untrained_accuracy"] == expected["untrained_accuracy"]
    assert history["accuracies"] == expected["accuracies"]


# -- the numbers

def test_defaults_are_the_tutorials():
    args = cli.build_parser().parse_args(["train"])
    assert (args.seed, args.hidden, args.activation, args.loss, args.batch_size, args.lr, args.epochs,
            args.backend, args.dtype) == (42, [64, 32], "sigmoid", "l2", 30, 1e-3, 500, "jit", "float64")


def test_reference_backend_is_the_tutorials_script_exactly(reference_backend_run, seed_script):
    _, history, _ = reference_backend_run
    assert history["untrained_loss"] == seed_script["untrained_loss"]
    assert history["untrained_accuracy"] == seed_script["untrained_accuracy"]
    assert history["losses"] == seed_script["losses"]
    assert history["accuracies"] == seed_script["accuracies"]
    assert history["prediction"] == {"test_image_index": seed_script["img_idx"],
                                     "predicted_class": seed_script["predicted_class"],
                                     "correct_class": seed_script["correct_class"],
                                     "predicted_name": str(seed_script["predicted_class"]),
                                     "correct_name": str(seed_script["correct_class"])}
    assert history["config"]["network_class"] == "fastscratch.reference.SimpleNetwork"


def test_output_has_the_tutorials_lines(reference_backend_run, seed_script):
    _, _, stdout = reference_backend_run
    lines = stdout.splitlines()
    assert lines[0] == "Untrained : training loss = {:.6f} | val accuracy = {:.2f}%".format(
        seed_script["untrained_loss"], seed_script["untrained_accuracy"] * 100)
    for i, (loss, accuracy) in enumerate(zip(seed_script["losses"], seed_script["accuracies"])):
        assert lines[1 + i].startswith("Epoch {:4d}: training loss = {:.6f} | val accuracy = {:.2f}%".format(
            i + 1, loss, accuracy * 100))  # epochs count from 1, as in the progress bar and history.csv
    assert "Predicted class: {}; Correct class: {}".format(
        seed_script["predicted_class"], seed_script["correct_class"]) in lines


def test_both_backends_give_the_same_history(jit_run, reference_backend_run):
    _, jit = jit_run
    _, ref, _ = reference_backend_run
    assert_same_history(jit, ref)
    assert jit["prediction"] == ref["prediction"]
    assert jit["config"]["network_class"] == f"{fastscratch.SimpleNetwork.__module__}.SimpleNetwork"


# -- the run directory

def test_history_json_holds_the_run_and_its_configuration(jit_run):
    out, history = jit_run
    assert history["status"] == "completed"
    assert history["completed_epochs"] == len(history["losses"]) == len(history["accuracies"]) == EPOCHS
    assert len(history["seconds_per_epoch"]) == EPOCHS and all(s > 0 for s in history["seconds_per_epoch"])
    config = history["config"]
    assert {k: config[k] for k in ("epochs", "batch_size", "learning_rate", "hidden", "layer_sizes", "activation",
                                   "loss", "seed", "dtype", "backend")} == {
        "epochs": EPOCHS, "batch_size": 30, "learning_rate": 1e-3, "hidden": [64, 32],
        "layer_sizes": [784, 64, 32, 10], "activation": "sigmoid", "loss": "l2", "seed": 42,
        "dtype": "float64", "backend": "jit"}
    assert config["out"] == os.path.abspath(out)
    assert config["command"].startswith("fastscratch train --epochs 2")
    assert set(config["versions"]) >= {"python", "numpy", "numba", "fastscratch"}
    assert config["versions"]["fastscratch"] == fastscratch.__version__
    assert config["versions"]["numpy"] == np.__version__
    assert config["cpu_count"] == os.cpu_count()
    assert config["numba"]["num_threads"] >= 1
    assert "blas" in config


def test_history_csv_has_the_untrained_row_then_one_per_epoch(jit_run):
    out, history = jit_run
    with open(out / "history.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(EPOCHS + 1))
    assert float(rows[0]["loss"]) == history["untrained_loss"]
    assert float(rows[0]["accuracy"]) == history["untrained_accuracy"]
    assert rows[0]["seconds"] == ""
    assert [float(r["loss"]) for r in rows[1:]] == history["losses"]
    assert [float(r["accuracy"]) for r in rows[1:]] == history["accuracies"]
    assert [float(r["seconds"]) for r in rows[1:]] == history["seconds_per_epoch"]


def assert_png(path, min_height, min_width):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_height and image.shape[1] >= min_width
    assert image.shape[0] <= 4000 and image.shape[1] <= 4000
    return image


def test_pngs_are_sensible_images(jit_run):
    out, _ = jit_run
    training = assert_png(out / "training.png", 400, 600)
    rgb = training[..., :3]
    assert np.mean(np.all(np.abs(rgb - [1, 0, 0]) < 0.15, axis=-1)) > 0.001  # red loss
    assert np.mean(np.all(np.abs(rgb - [0, 0, 1]) < 0.15, axis=-1)) > 0.001  # blue accuracy
    prediction = assert_png(out / "prediction.png", 300, 300)
    gray = prediction[..., :3].mean(axis=-1)
    assert (gray < 0.1).mean() > 0.01 and (gray > 0.9).mean() > 0.5  # a dark digit on white
    assert sorted(os.listdir(out)) == sorted(record.RUN_FILES)  # and no temporary files


def test_model_npz_reloads_to_the_same_predictions(reference_backend_run, jit_run, seed_script):
    X_test, y_test = seed_script["X_test"], seed_script["y_test"]
    ref_out, ref_history, _ = reference_backend_run
    reloaded = reference.SimpleNetwork.load(ref_out / "model.npz")
    np.testing.assert_array_equal(reloaded.forward(X_test), seed_script["network"].forward(X_test))
    assert reloaded.evaluate_accuracy(X_test, y_test) == ref_history["accuracies"][-1]

    jit_out, jit_history = jit_run
    reloaded = fastscratch.SimpleNetwork.load(jit_out / "model.npz")
    np.testing.assert_allclose(reloaded.forward(X_test), seed_script["network"].forward(X_test), rtol=1e-7)
    assert reloaded.evaluate_accuracy(X_test, y_test) == jit_history["accuracies"][-1]
    index = jit_history["prediction"]["test_image_index"]
    assert reloaded.predict(X_test[index]) == jit_history["prediction"]["predicted_class"]


def test_no_hidden_layer_in_float32(mnist_dir, mnist_raw, tmp_path):
    code, history, _, stderr = run_in_process(mnist_dir, tmp_path / "run", "--hidden", "--dtype", "float32",
                                              "--epochs", "0", "--backend", "reference", "--seed", "7", "--quiet")
    assert code == 0, stderr
    assert history["losses"] == [] and history["config"]["layer_sizes"] == [784, 10]
    model = reference.SimpleNetwork.load(tmp_path / "run" / "model.npz")
    assert [layer.W.shape for layer in model.layers] == [(784, 10)] and model.dtype == np.float32

    from fastscratch.datasets import prepare
    np.random.seed(7)
    np.random.randint(0, 10000)
    X_train, Y_train, X_test, y_test = prepare(*mnist_raw, dtype=np.float32)
    network = reference.SimpleNetwork(784, 10, [], dtype=np.float32)
    assert history["untrained_loss"] == float(network.loss_function(network.forward(X_train), Y_train))
    assert history["untrained_accuracy"] == network.evaluate_accuracy(X_test, y_test)
    assert_png(tmp_path / "run" / "training.png", 400, 600)


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_the_run(mnist_dir, tmp_path):
    with np.errstate(all="ignore"):
        code, history, _, stderr = run_in_process(mnist_dir, tmp_path / "run", "--loss", "cross_entropy",
                                                  "--lr", "1000", "--epochs", "1", "--quiet")
    assert code == 1
    assert "non-finite" in stderr and "Traceback" not in stderr
    assert history["status"] == "non-finite loss" and history["losses"] == []
    fastscratch.SimpleNetwork.load(tmp_path / "run" / "model.npz")


# -- bad options: argparse's message, exit code 2, no traceback

def bad_option_cases(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "history.json").write_text("{}")
    (tmp_path / "file").write_text("")
    return [
        (["--epochs", "-1"], "--epochs"), (["--epochs", "two"], "--epochs"), (["--epochs", "1.5"], "--epochs"),
        (["--batch-size", "0"], "--batch-size"), (["--lr", "0"], "--lr"), (["--lr", "-1e-3"], "--lr"),
        (["--lr", "inf"], "--lr"), (["--lr", "nan"], "--lr"), (["--lr", "fast"], "--lr"),
        (["--hidden", "64", "0"], "--hidden"), (["--hidden", "x"], "--hidden"),
        (["--activation", "softmax"], "--activation"), (["--loss", "hinge"], "--loss"),
        (["--seed", "-1"], "--seed"), (["--seed", str(2 ** 32)], "--seed"), (["--dtype", "float16"], "--dtype"),
        (["--backend", "cuda"], "--backend"), (["--data-dir", str(tmp_path / "nowhere")], "--data-dir"),
        (["--out", str(tmp_path / "full")], "--out"), (["--out", str(tmp_path / "file")], "--out"),
        (["--dataset", "cifar10"], "--dataset"), (["--bogus"], "unrecognized arguments: --bogus"),
    ]


BAD_OPTIONS = 22


@pytest.mark.parametrize("case", range(BAD_OPTIONS))
def test_bad_option_is_a_usage_error(case, tmp_path, capsys):
    cases = bad_option_cases(tmp_path)
    assert len(cases) == BAD_OPTIONS
    options, named = cases[case]
    argv = ["train", "--out", str(tmp_path / "run"), *options]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage: fastscratch" in err and "error:" in err and named in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    assert "usage: fastscratch" in capsys.readouterr().err


def test_batch_larger_than_the_data_is_a_usage_error(mnist_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(train_argv(mnist_dir, tmp_path / "run", "--batch-size", "60001", "--quiet"))
    assert exit_info.value.code == 2
    assert "--batch-size" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_data_dir_without_mnist_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = cli.main(["train", "--data-dir", str(tmp_path / "empty"), "--out", str(tmp_path / "run")])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("fastscratch train: error:") and str(tmp_path / "empty") in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options, expected_code", [(["--lr", "0"], 2), (["--data-dir", "EMPTY"], 1)],
                         ids=["bad option", "no MNIST"])
def test_errors_in_a_real_process_have_no_traceback(options, expected_code, mnist_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    options = [str(tmp_path / "empty") if o == "EMPTY" else o for o in options]
    result = subprocess.run([*command(), "train", "--out", str(tmp_path / "run"), *options], cwd=tmp_path,
                            env=subprocess_env(mnist_dir), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == expected_code
    assert "error:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


# -- real processes

def test_real_process_writes_a_default_run_directory(mnist_dir, tmp_path, jit_run):
    result = subprocess.run([*command(), "train", "--epochs", str(EPOCHS)], cwd=tmp_path,
                            env=subprocess_env(mnist_dir), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    (run,) = os.listdir(tmp_path / "runs")  # runs/<timestamp>
    assert sorted(os.listdir(tmp_path / "runs" / run)) == sorted(record.RUN_FILES)
    history = read_history(tmp_path / "runs" / run)
    assert_same_history(history, jit_run[1])
    assert "Predicted class: {}; Correct class: {}".format(
        history["prediction"]["predicted_class"], history["prediction"]["correct_class"]) in result.stdout


def ctrl_c_when(process, ready, signum=signal.SIGINT):
    """Send SIGINT (or ``signum``) to ``process`` once ``ready(deadline)`` returns; return (exit code, stderr).

    ``process`` is started with ``signalled()``. A watchdog kills it if it is not ready in time (which
    also ends a read in ``ready`` that would block), and after the signal its output is read to the end: a child
    blocked writing to a full pipe would never exit.
    """
    watchdog = threading.Timer(SUBPROCESS_TIMEOUT, process.kill)
    watchdog.start()
    try:
        ready(time.monotonic() + SUBPROCESS_TIMEOUT)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
        return process.returncode, stderr
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.communicate()


def first_epoch_logged(process):
    """``ready`` for ``ctrl_c_when``: the line of epoch 1 has been read from ``process``'s stdout."""
    def ready(deadline):
        while not process.stdout.readline().startswith("Epoch    1:"):
            assert process.poll() is None and time.monotonic() < deadline, "the run ended before epoch 1"
    return ready


def test_ctrl_c_keeps_the_run_and_exits_130(mnist_dir, tmp_path, seed_script):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "fastscratch", "train", "--epochs", "1000",
                                "--data-dir", mnist_dir, "--out", str(out)],
                               cwd=tmp_path, env=subprocess_env(mnist_dir), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, **signalled())
    code, stderr = ctrl_c_when(process, first_epoch_logged(process))
    assert code == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted at epoch" in stderr and len(stderr.strip().splitlines()) == 1
    history = read_history(out)
    assert history["status"] == "interrupted"
    assert 1 <= len(history["losses"]) < 1000
    assert len(history["accuracies"]) == len(history["seconds_per_epoch"]) == len(history["losses"])
    np.testing.assert_allclose(history["losses"][0], seed_script["losses"][0], rtol=1e-9)
    assert history["accuracies"][0] == seed_script["accuracies"][0]
    with open(out / "history.csv", encoding="utf-8") as f:
        assert len(f.read().splitlines()) == 2 + len(history["losses"])
    model = fastscratch.SimpleNetwork.load(out / "model.npz")
    assert [layer.W.shape for layer in model.layers] == [(784, 64), (64, 32), (32, 10)]
    assert all(math.isfinite(v) for layer in model.layers for v in (layer.W.sum(), layer.b.sum()))
    assert_png(out / "training.png", 400, 600)
    assert_png(out / "prediction.png", 300, 300)


def test_ctrl_c_before_training_exits_130_and_saves_nothing(monkeypatch, tmp_path, capsys):
    from fastscratch import datasets

    def interrupted_load(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "load_dataset", interrupted_load)
    (tmp_path / "mnist").mkdir()
    code = cli.main(["train", "--data-dir", str(tmp_path / "mnist"), "--out", str(tmp_path / "run")])
    assert code == 130
    assert "interrupted before training" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- what the command says when something is off

def test_a_network_that_dies_is_said_once_and_trains_on_as_the_reference(mnist_dir, mnist_raw, tmp_path):
    from fastscratch import functions
    from fastscratch.datasets import prepare

    code, history, _, stderr = run_in_process(mnist_dir, tmp_path / "run", "--activation", "relu", "--hidden", "16",
                                              "--lr", "0.05", "--epochs", "4", "--backend", "reference", "--quiet")
    assert code == 0, stderr
    assert stderr.count("warning: the network stopped learning in epoch 3") == 1, stderr
    np.random.seed(42)
    np.random.randint(0, 10000)
    X_train, Y_train, X_test, y_test = prepare(*mnist_raw)
    network = reference.SimpleNetwork(784, 10, [16], activation_function=functions.relu,
                                      derivated_activation_function=functions.derivated_relu)
    losses, accuracies = network.train(X_train, Y_train, X_test, y_test, batch_size=30, num_epochs=4,
                                       learning_rate=0.05, verbose=False)
    assert (history["losses"], history["accuracies"]) == (losses, accuracies)  # the check changed nothing
    assert losses[1] == losses[2] == losses[3]


def test_data_dir_at_the_parent_folder_hints_at_the_datasets_subfolder(mnist_dir, tmp_path, capsys):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist").symlink_to(mnist_dir)
    code = cli.main(["train", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run")])
    assert code == 1 and not (tmp_path / "run").exists()
    err = capsys.readouterr().err
    assert f"hint: {tmp_path / 'data' / 'mnist'} holds MNIST's files: pass --data-dir {tmp_path / 'data' / 'mnist'}\n" \
        in err


def test_data_dir_at_fashion_mnist_suggests_the_dataset_not_no_verify(tmp_path, capsys):
    from fastscratch import datasets

    fashion = datasets.DATASETS["fashion-mnist"].system_dirs[0]
    if not os.path.isdir(fashion):
        pytest.skip(f"Fashion-MNIST is not in {fashion}")
    code = cli.main(["train", "--data-dir", fashion, "--out", str(tmp_path / "run")])
    assert code == 1
    err = capsys.readouterr().err
    assert f"{fashion} holds Fashion-MNIST: pass --dataset fashion-mnist (--no-verify would train on it as MNIST)" \
        in err


def test_the_reference_backend_runs_on_one_blas_thread(mnist_dir, tmp_path):
    """Its 30-row products gain nothing from more threads, and on a busy machine each waits for a core."""
    env = subprocess_env(mnist_dir)
    for name in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        env.pop(name, None)
    histories = {}
    for options in (["--backend", "reference"], ["--backend", "reference", "--blas-threads", "2"]):
        out = tmp_path / str(len(histories))
        result = subprocess.run([*command(), "train", "--epochs", "0", "--quiet", "--out", str(out), *options],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT)
        assert result.returncode == 0, result.stderr
        config = read_history(out)["config"]
        histories[config["blas_threads"]] = {pool["num_threads"] for pool in config["blas"]["loaded"]
                                             if pool["user_api"] == "blas"}
    assert histories == {1: {1}, 2: {2}}


def test_paths_with_brackets_are_printed_whole(mnist_dir, tmp_path):
    out = tmp_path / "run[peers]"
    code, _, stdout, stderr = run_in_process(mnist_dir, out, "--epochs", "0", "--hidden", "8")
    assert code == 0, stderr
    assert f"Run saved in {out} (" in stdout


# -- --quiet does what its help and docs/command.md say

DOCS = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "command.md")


def test_quiet_is_described_alike_in_the_help_and_the_docs(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    with open(DOCS, encoding="utf-8") as f:
        (row,) = [line for line in f if line.startswith("| `--quiet` |")]
    meaning = row.strip().strip("|").split(" | ")[-1].strip()
    assert f"--quiet {meaning}" in help_text


def test_quiet_prints_nothing_on_stdout_and_still_says_how_a_stopped_run_was_kept(mnist_dir, tmp_path, monkeypatch):
    from fastscratch import _interrupt

    real_check = _interrupt._Flag.check

    def ctrl_c_after_epoch_1(self, losses, accuracies, epoch, batch=0):
        self.requested = self.requested or len(losses) >= 1
        return real_check(self, losses, accuracies, epoch, batch)

    monkeypatch.setattr(_interrupt._Flag, "check", ctrl_c_after_epoch_1)
    code, history, stdout, stderr = run_in_process(mnist_dir, tmp_path / "run", "--quiet", "--hidden", "8")
    assert code == 130 and history["completed_epochs"] == 1
    assert stdout == ""
    assert stderr.splitlines() == [f"fastscratch train: interrupted at epoch 2; kept 1 completed epochs of {EPOCHS}: "
                                   f"history and the weights after epoch 1 saved in {tmp_path / 'run'}"]
