"""A run's record (configuration, epochs, status) and the files written from it: history, model, plots.

``history.json`` is written after every epoch while the run trains (status
"running"); at the end the model, the plots and ``history.csv`` are written,
then ``history.json`` with the final status, so a final status means every
other file is in place. Every file is written atomically.
"""
import contextlib
import csv
import hashlib
import io
import json
import os
import re
import signal
import tempfile
import time

import numpy as np

from fastscratch import _files, environment
from fastscratch.cli.options import PROG
from fastscratch.cli.output import stderr
from fastscratch.cli.text import finite_or_none, layer_sizes, reason

RUN_FILES = ("history.json", "history.csv", "model.npz", "training.png", "prediction.png")
#: The temporary files ``_files.atomic_write`` writes a run's files through: ``.history.json.<12 hex>.tmp``.
TEMPORARY = re.compile(r"\.(?:" + "|".join(map(re.escape, RUN_FILES)) + r")\.[0-9a-f]{12}\.tmp")


class Run:
    """One run's record: :meth:`checkpoint` after each epoch, :meth:`save` at the end (``history.json`` last).

    ``model_epoch`` and ``model_sha256`` say which weights ``model.npz`` holds
    (None while a new run trains: it has none yet). ``resumes`` records each
    later process that continued the run (:meth:`resumed`).
    """

    def __init__(self, out, config, untrained_loss, untrained_accuracy, class_names):
        self.out, self.config, self.class_names = out, config, class_names
        self.untrained_loss, self.untrained_accuracy = untrained_loss, untrained_accuracy
        self.losses, self.accuracies, self.seconds_per_epoch = [], [], []
        self.status, self.stopped_at, self.prediction = "running", None, None
        self.model_epoch = self.model_sha256 = None
        self.signal = None  # the name of the signal that stopped training: SIGINT, SIGTERM, SIGHUP
        self.files, self.unsaved, self.model_saved_to = ["history.json"], {}, None
        self.resumes, self.earlier_seconds = [], 0.0
        self.first_epoch, self.resumed_from = 0, None  # a resumed run's first epoch, and its status before
        self.checkpoint_failed = False
        self.checkpointed = None  # the completed epochs that the history.json on disk holds (None: none written)
        self.started = time.perf_counter()

    @classmethod
    def resumed(cls, out, history, network, epoch, epochs, resume, class_names):
        """The record of the run of ``history`` continued from the end of ``epoch`` to ``epochs``.

        Its epochs after ``epoch`` (done by a process killed before it could
        save them) are dropped; the configuration stays the run's but for the
        planned ``epochs``; ``resume`` (this process's command, time,
        environment) is added to ``resumes``. Until the end is saved, the
        model is the one in the directory, ``network``'s as it was read: that
        of ``epoch``.
        """
        untrained_loss = history["untrained_loss"]  # null in JSON for a non-finite one
        run = cls(out, {**history["config"], "epochs": epochs}, float("nan") if untrained_loss is None
                  else untrained_loss, history["untrained_accuracy"], class_names)
        run.losses, run.accuracies = history["losses"][:epoch], history["accuracies"][:epoch]
        run.seconds_per_epoch = history["seconds_per_epoch"][:epoch]
        run.model_epoch, run.model_sha256 = epoch, weights_sha256(network)
        run.resumes = [*history.get("resumes", []), resume]
        run.earlier_seconds = history["config"].get("total_seconds") or 0.0
        run.first_epoch, run.resumed_from = epoch, history["status"]
        return run

    def history_on_disk(self):
        """What the run directory's history.json holds after a failed save: the final record, or an old checkpoint."""
        if "history.json" not in self.unsaved:
            return "history.json says which files are missing"
        if self.checkpointed is None:
            return ("no history.json could be written there" if self.resumed_from is None else
                    f"history.json there is the run's record before this resume (status \"{self.resumed_from}\")")
        when = ("as training started" if self.checkpointed == self.first_epoch else
                f"after epoch {self.checkpointed} of the {len(self.losses)} completed")
        return f"history.json there is the checkpoint written {when} (status \"running\"), not the end of the run"

    def class_label(self, index):
        """``1``, or ``1 (Trouser)`` for a dataset whose classes have names."""
        name = self.class_names[index]
        return f"{index}" if name == str(index) else f"{index} ({name})"

    def add_epoch(self, loss, accuracy, seconds):
        self.losses.append(float(loss))
        self.accuracies.append(float(accuracy))
        self.seconds_per_epoch.append(seconds)

    def stop(self, status, epoch, batch, signum=None):
        """Training ended in the (0-based) ``epoch`` after ``batch`` of its batches (None: unknown).

        ``epoch`` equal to the planned epochs means the end came after the last
        one (a Ctrl-C during its evaluation): nothing of an epoch was dropped.
        A stop by a signal (``status`` "interrupted") records it: SIGINT (Ctrl-C,
        the default) keeps the status "interrupted", SIGTERM and SIGHUP make it
        "terminated".
        """
        if status == "interrupted":
            self.signal = signal.Signals(signum or signal.SIGINT).name
            if self.signal != "SIGINT":
                status = "terminated"
        self.status = status
        if epoch < self.config["epochs"]:
            self.stopped_at = {"epoch": epoch + 1, "batches_done": batch}

    def total_seconds(self):
        return time.perf_counter() - self.started

    def history(self):
        return {
            "untrained_loss": finite_or_none(self.untrained_loss),
            "untrained_accuracy": self.untrained_accuracy,
            "losses": [finite_or_none(v) for v in self.losses],
            "accuracies": self.accuracies,
            "seconds_per_epoch": self.seconds_per_epoch,
            "status": self.status,
            "completed_epochs": len(self.losses),
            # Where training stopped early (epochs count from 1); model.npz holds the end of model_epoch.
            "stopped_at": self.stopped_at,
            "signal": self.signal,
            "model_epoch": self.model_epoch,
            "model_sha256": self.model_sha256,
            "files": self.files,
            "unsaved": self.unsaved,
            "model_saved_to": self.model_saved_to,
            "prediction": self.prediction,
            "resumes": self.resumes,
            "config": self.config,
        }

    def write_history(self):
        _files.write_text(os.path.join(self.out, "history.json"), json.dumps(self.history(), indent=2) + "\n")
        self.checkpointed = len(self.losses)

    def checkpoint(self):
        """Write ``history.json`` as it is during training. A failure (a full disk) does not stop training:
        the previous checkpoint stays whole, it is said once, and :meth:`save` writes every file again."""
        try:
            self.write_history()
        except OSError as err:
            if not self.checkpoint_failed:
                print(f"{PROG} train: warning: could not checkpoint {os.path.join(self.out, 'history.json')}: "
                      f"{reason(err)}; training goes on and the run is written at the end", file=stderr())
            self.checkpoint_failed = True

    def save(self, network, image):
        """Write every file of the run, ``history.json`` last; record what could not be written."""
        self.config["total_seconds"] = round(self.earlier_seconds + self.total_seconds(), 3)
        self.model_sha256 = weights_sha256(network)
        self.config["numba"] = environment.numba_threads()  # the threading layer is known once kernels ran
        writers = {"model.npz": lambda path: save_model(network, path),
                   "training.png": self._plot_training,
                   "prediction.png": lambda path: self._plot_prediction(image, path),
                   "history.csv": self._write_csv}
        self.files = []
        for name, write in writers.items():
            try:
                write(os.path.join(self.out, name))
                self.files.append(name)
            except OSError as err:
                self.unsaved[name] = reason(err)
        if "model.npz" in self.unsaved:
            self.model_saved_to = save_model_elsewhere(network, self.out)
        if self.unsaved:
            self.status = "save failed"
        self.files.append("history.json")
        try:
            self.write_history()
        except OSError as err:
            self.unsaved["history.json"] = reason(err)
            self.status = "save failed"

    def _write_csv(self, path):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["epoch", "loss", "accuracy", "seconds"])
        writer.writerow([0, repr(self.untrained_loss), repr(self.untrained_accuracy), ""])
        for epoch, row in enumerate(zip(self.losses, self.accuracies, self.seconds_per_epoch), start=1):
            writer.writerow([epoch, *map(repr, row)])
        _files.write_text(path, buffer.getvalue())

    def _plot_training(self, path):
        from fastscratch import plotting

        c = self.config
        loss = {"l2": "L2"}.get(c["loss"], c["loss"])
        title = (f"{c['dataset_title']}: {layer_sizes(c['layer_sizes'])} {c['activation']}, {loss} loss, "
                 f"batch {c['batch_size']}, "
                 f"lr {c['learning_rate']:g}" + ("" if self.status == "completed" else
                                                 f"\n{self.status} after {len(self.losses)} of {c['epochs']} epochs"))
        # The x-axis spans the epochs run, not those planned: 3 epochs of 500 would be squashed against its left edge.
        plotting.plot_training([self.untrained_loss, *self.losses], [self.untrained_accuracy, *self.accuracies],
                               path, title=title)

    def _plot_prediction(self, image, path):
        from fastscratch import plotting

        plotting.plot_prediction(image, self.class_label(self.prediction["predicted_class"]),
                                 self.class_label(self.prediction["correct_class"]), path,
                                 title=self.config["dataset_title"])


def remove_temporaries(out):
    """Remove the temporary files that a process killed while writing left in the run directory ``out``.

    Only for a directory this process has claimed: no other process writes
    there, so such a file is no one's.
    """
    for name in os.listdir(out):
        if TEMPORARY.fullmatch(name):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(out, name))


def weights_sha256(network):
    """The SHA-256 of a network's weights and biases, layer by layer: what history.json says model.npz holds."""
    digest = hashlib.sha256()
    for layer in network.layers:
        for array in (layer.W, layer.b):
            digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def save_model(network, path):
    """``network.save``, which writes atomically: a full disk or a kill never leaves half a model."""
    network.save(path)


def save_model_elsewhere(network, out):
    """Save the model in the temporary directory when the run directory could not take it; return the path.

    It goes to ``model.npz`` in a new directory that only this user may
    enter (``tempfile.mkdtemp``: a name no one can predict, mode 0700), and
    the file itself is made 0600: weights are the user's, even on a shared
    machine's ``/tmp``.
    """
    try:
        directory = tempfile.mkdtemp(prefix=f"fastscratch-{os.path.basename(os.path.abspath(out))}-")
    except OSError:
        return None
    path = os.path.join(directory, "model.npz")
    try:
        save_model(network, path)
        os.chmod(path, 0o600)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(directory)
        return None
    return path
