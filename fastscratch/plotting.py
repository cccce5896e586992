"""The tutorial's two pictures: the training curves and the prediction on one test image.

Figures are built with matplotlib's object API on the Agg canvas, never through
``pyplot``: no global state, no display needed, safe in tests and threads.
Each ``*_figure`` function returns the ``Figure`` (for inspection); each
``plot_*`` function draws it, writes it to a path and returns that path.
"""
import io
import math
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter, MaxNLocator

from fastscratch import _files

LOSS_COLOR = "red"
ACCURACY_COLOR = "blue"
DPI = 150


def x_limit(num_epochs):
    """Right end of the epoch axis: a little past the last epoch, 510 for 500 as in the tutorial."""
    return num_epochs + max(0.02 * num_epochs, 0.1) if num_epochs > 0 else 1


def training_figure(losses, accuracies, *, num_epochs=None, title=None):
    """Return the tutorial's twin-axis figure of a training run.

    ``losses`` and ``accuracies`` start with the untrained values, as the
    tutorial prepends them, so point ``i`` is the state after ``i`` epochs.
    The loss is red on the left axis, the accuracy blue on the right axis
    (fixed to [0, 1]). ``num_epochs`` sets the x range (default: the epochs
    given).

    The loss axis is logarithmic (when every loss is positive): the untrained
    loss is often 10-100 times the trained one (1e6 times with ReLU), and on
    a linear axis it flattens the rest of the curve into the bottom edge.
    """
    losses, accuracies = list(losses), list(accuracies)
    if num_epochs is None:
        num_epochs = max(len(losses), len(accuracies)) - 1
    marker = "o" if max(len(losses), len(accuracies)) <= 30 else None  # a few points: show them

    fig = Figure()
    FigureCanvasAgg(fig)
    ax_loss = fig.subplots()
    ax_loss.set_xlim([0, x_limit(num_epochs)])
    ax_loss.set_xlabel("Epochs")
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10]))  # 0, 100, ... 500
    ax_loss.set_ylabel("Training Loss", color=LOSS_COLOR)
    ax_loss.plot(losses, color=LOSS_COLOR, marker=marker, markersize=3)
    if losses and all(loss > 0 for loss in losses if math.isfinite(loss)):
        ax_loss.set_yscale("log")
        ax_loss.yaxis.set_major_formatter(_PlainLogFormatter())
        ax_loss.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))
    ax_loss.tick_params(axis="y", which="both", labelcolor=LOSS_COLOR)

    ax_acc = ax_loss.twinx()  # a second axes sharing the same x-axis
    ax_acc.set_xlim([0, x_limit(num_epochs)])
    ax_acc.set_ylim([0, 1])
    ax_acc.set_ylabel("Val Accuracy", color=ACCURACY_COLOR)
    ax_acc.plot(accuracies, color=ACCURACY_COLOR, marker=marker, markersize=3)
    ax_acc.tick_params(axis="y", labelcolor=ACCURACY_COLOR)

    if title:
        ax_loss.set_title(title, fontsize="medium")
    fig.tight_layout()
    return fig


class _PlainLogFormatter(LogFormatter):
    """matplotlib's choice of which log ticks to label, written as plain numbers: 0.3, 1, 4, 1e+06."""

    def __call__(self, x, pos=None):
        return f"{x:g}" if super().__call__(x, pos) else ""


def plot_training(losses, accuracies, path, *, num_epochs=None, title=None):
    """Write ``training_figure(...)`` as a PNG to ``path`` and return ``path``."""
    return _save(training_figure(losses, accuracies, num_epochs=num_epochs, title=title), path)


def prediction_figure(image, predicted_class, true_class, *, title=None):
    """Return a figure of one image (binary colour map, no axes) titled with both classes.

    The classes may be numbers or labels such as ``"9 (Ankle boot)"``;
    ``title`` (the dataset's name) goes above them.
    """
    fig = Figure(figsize=(3.6, 3.6 if title else 3.3))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.imshow(image, cmap="binary")
    ax.axis("off")
    ax.set_title((f"{title}\n" if title else "") + f"Predicted class: {predicted_class}\nCorrect class: {true_class}",
                 color="black" if predicted_class == true_class else "darkred")
    fig.tight_layout()
    return fig


def plot_prediction(image, predicted_class, true_class, path, *, title=None):
    """Write ``prediction_figure(...)`` as a PNG to ``path`` and return ``path``."""
    return _save(prediction_figure(image, predicted_class, true_class, title=title), path)


def _save(fig, path):
    """Render to memory, then write atomically: a partial PNG never takes the place of a good one.

    A path that is not a regular file (``/dev/null``, a pipe) is written in
    place: renaming onto it would replace the device itself.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "wb") as f:
            f.write(buffer.getbuffer())
        return path
    _files.write_bytes(path, buffer.getvalue())
    return path
