"""The two pictures: the tutorial's twin-axis training plot and the prediction image."""
import os
import subprocess
import sys
import threading

import matplotlib.colors as mcolors
import matplotlib.image as mpimg
import numpy as np
import pytest

from fastscratch import plotting


def seed_like_history(num_epochs, rng):
    """Untrained value first, then a decreasing loss and a rising accuracy, as the tutorial's run."""
    t = np.arange(num_epochs + 1)
    losses = 0.2 + 4.2 * np.exp(-t / 3) + rng.normal(0, 0.01, t.size)
    accuracies = np.clip(0.12 + 0.8 * (1 - np.exp(-t / 20)), 0, 1)
    return losses.tolist(), accuracies.tolist()


def colour_fraction(image, colour, tolerance=0.15):
    rgb = image[..., :3]
    return np.mean(np.all(np.abs(rgb - np.array(mcolors.to_rgb(colour))) < tolerance, axis=-1))


def test_training_figure_is_the_tutorials(rng):
    losses, accuracies = seed_like_history(500, rng)
    fig = plotting.training_figure(losses, accuracies)
    ax_loss, ax_acc = fig.axes

    assert ax_loss.get_xlim() == (0, 510)  # the tutorial's set_xlim([0, 510]) for 500 epochs
    assert ax_acc.get_xlim() == (0, 510)
    assert ax_acc.get_ylim() == (0, 1)
    assert ax_loss.get_xlabel() == "Epochs"
    assert ax_loss.get_ylabel() == "Training Loss"
    assert ax_acc.get_ylabel() == "Val Accuracy"
    (loss_line,), (acc_line,) = ax_loss.get_lines(), ax_acc.get_lines()
    assert mcolors.to_rgb(loss_line.get_color()) == (1, 0, 0)
    assert mcolors.to_rgb(acc_line.get_color()) == (0, 0, 1)
    assert mcolors.to_rgb(ax_loss.yaxis.label.get_color()) == (1, 0, 0)
    assert mcolors.to_rgb(ax_acc.yaxis.label.get_color()) == (0, 0, 1)
    # Point i is the state after i epochs: the untrained value sits at epoch 0.
    np.testing.assert_array_equal(loss_line.get_xdata(), np.arange(501))
    np.testing.assert_array_equal(loss_line.get_ydata(), losses)
    np.testing.assert_array_equal(acc_line.get_ydata(), accuracies)


@pytest.mark.parametrize("num_epochs, right", [(0, 1), (1, 1.1), (2, 2.1), (50, 51), (1000, 1020)])
def test_epoch_axis_ends_a_little_past_the_last_epoch(num_epochs, right, rng):
    fig = plotting.training_figure(*seed_like_history(num_epochs, rng))
    assert fig.axes[0].get_xlim() == pytest.approx((0, right))


def test_num_epochs_sets_the_range_for_a_partial_run(rng):
    losses, accuracies = seed_like_history(3, rng)
    fig = plotting.training_figure(losses, accuracies, num_epochs=500, title="interrupted")
    assert fig.axes[0].get_xlim() == (0, 510)
    assert fig.axes[0].get_title() == "interrupted"


def test_plot_training_writes_a_png(tmp_path, rng):
    path = tmp_path / "training.png"
    assert plotting.plot_training(*seed_like_history(500, rng), path) == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = mpimg.imread(path)
    assert image.shape[0] >= 400 and image.shape[1] >= 600
    assert colour_fraction(image, "red") > 0.001  # the loss curve and its axis labels
    assert colour_fraction(image, "blue") > 0.001  # the accuracy curve and its axis labels
    assert os.listdir(tmp_path) == ["training.png"]  # no temporary file left


def test_plot_training_accepts_a_lone_untrained_point(tmp_path):
    path = plotting.plot_training([4.4], [0.12], tmp_path / "training.png")
    assert mpimg.imread(path).shape[2] == 4


def test_plot_prediction_writes_the_image_and_classes(tmp_path, rng):
    image = np.zeros((28, 28), dtype=np.uint8)
    image[4:24, 12:16] = 255  # a "1"
    fig = plotting.prediction_figure(image, 1, 7)
    (ax,) = fig.axes
    assert not ax.axison
    assert "1" in ax.get_title() and "7" in ax.get_title()
    assert ax.get_images()[0].get_cmap().name == "binary"

    path = tmp_path / "prediction.png"
    assert plotting.plot_prediction(image, 1, 7, path) == path
    picture = mpimg.imread(path)
    assert picture.shape[0] >= 300 and picture.shape[1] >= 300
    gray = picture[..., :3].mean(axis=-1)
    assert (gray < 0.1).mean() > 0.02  # the stroke is drawn black (binary colour map)
    assert (gray > 0.9).mean() > 0.5  # on white


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        plotting.plot_training([1.0, 0.5], [0.1, 0.2], tmp_path / "missing" / "training.png")
    assert os.listdir(tmp_path) == []


def test_a_write_that_fails_midway_keeps_the_previous_png(tmp_path, monkeypatch):
    """PNGs go through the one atomic writer (fsync, rename): a full disk mid-write keeps the old file."""
    path = tmp_path / "training.png"
    plotting.plot_training([1.0, 0.5], [0.1, 0.2], path)
    before = path.read_bytes()
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space"):
        plotting.plot_training([1.0, 0.4, 0.3], [0.1, 0.2, 0.3], path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["training.png"]


def test_plotting_never_needs_pyplot_or_a_display(tmp_path):
    code = ("import sys, fastscratch.plotting as p; p.plot_prediction([[0, 1], [1, 0]], 0, 0, sys.argv[1]); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "MPLBACKEND")}
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.png")],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert mpimg.imread(tmp_path / "p.png").ndim == 3


def test_a_path_that_is_not_a_regular_file_is_written_in_place(tmp_path):
    """Writing to /dev/null must not replace the device with a file (a rename would)."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()))
    reader.start()
    plotting.plot_training([1.0, 0.5], [0.1, 0.2], fifo)
    reader.join(timeout=60)
    assert fifo.is_fifo()
    assert received and received[0][:8] == b"\x89PNG\r\n\x1a\n"


def test_loss_axis_is_logarithmic_so_the_untrained_loss_does_not_flatten_the_curve(rng):
    losses, accuracies = seed_like_history(500, rng)
    losses[0] = 1.6e6  # an untrained ReLU network's loss
    fig = plotting.training_figure(losses, accuracies)
    ax_loss = fig.axes[0]
    assert ax_loss.get_yscale() == "log"
    low, high = ax_loss.get_ylim()
    assert low <= min(losses) and high >= max(losses)
    # The trained half of the run spans a visible share of the axis (on a linear one: 0.0003%).
    late = losses[250:]
    assert (np.log(max(late)) - np.log(min(late))) / (np.log(high) - np.log(low)) > 0.001
    fig.canvas.draw()
    labels = [t.get_text() for t in ax_loss.get_yticklabels(which="both") if t.get_text()]
    assert labels and all("times" not in label and "^" not in label for label in labels)  # plain numbers


def test_loss_axis_stays_linear_for_losses_that_a_log_axis_cannot_show(rng):
    losses, accuracies = seed_like_history(10, rng)
    losses[3] = 0.0
    assert plotting.training_figure(losses, accuracies).axes[0].get_yscale() == "linear"
