"""``fastscratch train --dataset NAME`` and ``--no-verify``: recorded in the history, shown in the plots."""
import contextlib
import io
import json
import os

import pytest
from threadpoolctl import threadpool_limits

from fastscratch import cli, datasets, plotting

FASHION_DIR = datasets.DATASETS["fashion-mnist"].system_dirs[0]  # Debian's dataset-fashion-mnist


def run(*argv):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
            threadpool_limits(limits=1, user_api="blas"):
        code = cli.main(["train", "--epochs", "1", "--hidden", "16", *argv])
    return code, stdout.getvalue(), stderr.getvalue()


def read_history(out):
    with open(os.path.join(out, "history.json"), encoding="utf-8") as f:
        return json.load(f)


def test_the_choices_are_the_known_datasets():
    (action,) = [a for a in cli.build_parser()._subparsers._group_actions[0].choices["train"]._actions
                 if a.dest == "dataset"]
    assert sorted(action.choices) == sorted(datasets.DATASETS) and action.default == "mnist"


def test_fashion_mnist_is_named_in_the_history_the_log_and_the_plots(tmp_path):
    if not all(os.path.exists(os.path.join(FASHION_DIR, f"{file.name}.gz"))
               for file in datasets.DATASETS["fashion-mnist"].files):
        pytest.skip(f"Fashion-MNIST is not in {FASHION_DIR} (apt-get install dataset-fashion-mnist)")
    out = tmp_path / "run"
    code, stdout, stderr = run("--dataset", "fashion-mnist", "--data-dir", FASHION_DIR, "--out", str(out))
    assert code == 0, stderr
    history = read_history(out)
    config = history["config"]
    assert (config["dataset"], config["dataset_title"], config["verified"], config["verify"]) == (
        "fashion-mnist", "Fashion-MNIST", True, True)
    assert config["data_directory"] == FASHION_DIR
    names = datasets.DATASETS["fashion-mnist"].classes
    prediction = history["prediction"]
    assert prediction["predicted_name"] == names[prediction["predicted_class"]]
    assert prediction["correct_name"] == names[prediction["correct_class"]]
    assert (f"Correct class: {prediction['correct_class']} ({prediction['correct_name']})") in stdout
    assert history["accuracies"][0] > 0.3  # it learns the clothes, not MNIST's digits


def test_other_data_needs_no_verify_and_the_history_says_it_was_not_verified(mnist_dir, tmp_path):
    code, _, stderr = run("--dataset", "fashion-mnist", "--data-dir", mnist_dir, "--out", str(tmp_path / "a"))
    assert code == 1 and "--no-verify" in stderr and "verify=False" not in stderr and "Traceback" not in stderr
    assert not (tmp_path / "a").exists()

    code, _, stderr = run("--dataset", "fashion-mnist", "--data-dir", mnist_dir, "--no-verify",
                          "--out", str(tmp_path / "b"))
    assert code == 0, stderr
    config = read_history(tmp_path / "b")["config"]
    assert (config["dataset"], config["verified"], config["verify"]) == ("fashion-mnist", False, False)


def test_mnist_read_without_verification_is_still_recognised(mnist_dir, tmp_path):
    code, stdout, stderr = run("--data-dir", mnist_dir, "--no-verify", "--out", str(tmp_path / "run"))
    assert code == 0, stderr
    config = read_history(tmp_path / "run")["config"]
    assert (config["dataset"], config["verified"], config["verify"]) == ("mnist", True, False)
    assert "Predicted class: " in stdout and "(" not in stdout.split("Predicted class: ")[1].split("\n")[0]


def test_prediction_figure_shows_the_dataset_and_the_class_names():
    fig = plotting.prediction_figure([[0, 1], [1, 0]], "9 (Ankle boot)", "7 (Sneaker)", title="Fashion-MNIST")
    assert fig.axes[0].get_title().splitlines() == [
        "Fashion-MNIST", "Predicted class: 9 (Ankle boot)", "Correct class: 7 (Sneaker)"]
