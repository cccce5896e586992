"""The run's record as files: the training plot of a run that stopped early is drawn over the epochs it ran."""
import contextlib
import io
import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from fastscratch import _interrupt, cli, plotting
from fastscratch.cli.record import Run


@pytest.fixture
def drawn(monkeypatch):
    """The training figures drawn, as they were when written."""
    figures = []
    real = plotting.training_figure

    def spy(*args, **kwargs):
        figures.append(real(*args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(plotting, "training_figure", spy)
    return figures


def interrupt_after_epochs(monkeypatch, epochs):
    """Ctrl-C as training polls for it after epoch ``epochs``."""
    real_check = _interrupt._Flag.check

    def check(self, losses, accuracies, epoch, batch=0):
        if len(losses) >= epochs:
            self.requested = True
        return real_check(self, losses, accuracies, epoch, batch)

    monkeypatch.setattr(_interrupt._Flag, "check", check)


def train(mnist_dir, out, *options):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as stderr:
        code = cli.main(["train", "--data-dir", mnist_dir, "--out", str(out), "--hidden", "8", *options])
    with open(out / "history.json", encoding="utf-8") as f:
        return code, json.load(f), stderr.getvalue()


def test_an_interrupted_runs_plot_spans_the_epochs_it_ran(mnist_dir, tmp_path, monkeypatch, drawn):
    """3 epochs of a planned 500: the x-axis ends just past epoch 3 (not at 510, where the three points were
    squashed against the left edge), and the title says how far the run got."""
    interrupt_after_epochs(monkeypatch, 3)
    code, history, stderr = train(mnist_dir, tmp_path / "run", "--epochs", "500")
    assert code == 130 and history["status"] == "interrupted" and history["completed_epochs"] == 3, stderr
    (figure,) = drawn
    for axes in figure.axes:
        assert axes.get_xlim() == pytest.approx((0, 3.1))
    assert figure.axes[0].get_title().endswith("\ninterrupted after 3 of 500 epochs")
    (loss_line,) = figure.axes[0].get_lines()
    assert list(loss_line.get_xdata()) == [0, 1, 2, 3]
    assert mpimg.imread(tmp_path / "run" / "training.png").shape[2] == 4


def test_a_completed_runs_plot_is_the_tutorials(mnist_dir, tmp_path, drawn):
    code, history, stderr = train(mnist_dir, tmp_path / "run", "--epochs", "2")
    assert code == 0 and history["status"] == "completed", stderr
    (figure,) = drawn
    assert figure.axes[0].get_xlim() == pytest.approx((0, 2.1))
    assert "\n" not in figure.axes[0].get_title()


def tutorial_config(epochs):
    return {"dataset_title": "MNIST", "layer_sizes": [784, 64, 32, 10], "activation": "sigmoid", "loss": "l2",
            "batch_size": 30, "learning_rate": 1e-3, "epochs": epochs}


@pytest.mark.parametrize("status, run, right", [("completed", 500, 510), ("terminated", 3, 3.1),
                                                ("non-finite loss", 120, 122.4)])
def test_the_epoch_axis_is_the_epochs_run(status, run, right, tmp_path, drawn, rng):
    """The tutorial's full run keeps the tutorial's axis (set_xlim([0, 510]) for 500 epochs); any other run is
    drawn over the epochs it ran, whatever was planned."""
    record = Run(tmp_path, tutorial_config(500), 4.4, 0.1, [str(i) for i in range(10)])
    for epoch in range(1, run + 1):
        record.add_epoch(0.2 + 4.2 * np.exp(-epoch / 3) + rng.normal(0, 0.01), 0.9 * (1 - np.exp(-epoch / 20)), 0.3)
    record.status = status
    record._plot_training(tmp_path / "training.png")
    (figure,) = drawn
    assert figure.axes[0].get_xlim() == pytest.approx((0, right))
    assert figure.axes[1].get_xlim() == pytest.approx((0, right))
    assert figure.axes[0].get_title().endswith("lr 0.001" if status == "completed" else f"{run} of 500 epochs")
