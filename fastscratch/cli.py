"""The tutorial's MNIST script as a command: ``fastscratch train``.

With no options it does what section 4 of the tutorial does, in the same
order (so with the same random draws): seed NumPy with 42, load MNIST, draw
the index of the test image to show, prepare the data, build a 784-64-32-10
sigmoid network with the L2 loss, report its untrained loss (training set)
and accuracy (test set), train 500 epochs with batch 30 and lr 1e-3, and
predict the drawn test image. Around that it adds a live progress display and
a run directory holding the history, the weights and the two plots.

Epochs are numbered from 1 in the log lines, the progress bar and
``history.csv``, whose epoch 0 is the untrained network.

A run never loses or overwrites another: the run directory is claimed
(created, or an empty one locked) before any data is loaded; every file is
written atomically; ``model.npz`` always holds the weights of the last epoch
that ended with finite weights, and the history says which epoch that is; the
history's status is final only once every other file is in place.
"""
import argparse
import contextlib
import csv
import datetime
import io
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time

from fastscratch import _files
from fastscratch.datasets import DATASETS as DATASET_NAMES
from fastscratch.functions import ACTIVATIONS, LOSSES

PROG = "fastscratch"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
NUM_INPUTS = 784  # 28 x 28 pixels in every dataset of MNIST's format
NUM_CLASSES = 10  # classes are the digits from 0 to 9

RUN_FILES = ("history.json", "history.csv", "model.npz", "training.png", "prediction.png")
CLAIM = ".fastscratch-run"  # exclusive marker of a run directory in use; removed when the run ends
RUNS = "runs"  # parent of the default run directories


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Bad options end in ``SystemExit(2)`` with an argparse message, as usual.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args.run(args, args.parser)


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="The 'neural network from scratch' tutorial, compiled with Numba.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = commands.add_parser(
        "train", help="train the tutorial's classifier on MNIST (or a dataset in its format) and save the run",
        description="Train the tutorial's classifier on MNIST or another dataset in its format (defaults: "
                    "exactly the tutorial's run) and "
                    "write history.json, history.csv, model.npz, training.png and prediction.png "
                    "to the run directory.",
        formatter_class=_HelpFormatter)
    add_train_arguments(train)
    train.set_defaults(run=run_train, parser=train)
    from fastscratch.study.cli import add_study_parser  # keeps Dask out of `fastscratch train`'s imports
    add_study_parser(commands)
    return parser


def add_train_arguments(train):
    train.add_argument("--epochs", type=_count, default=500, metavar="N", help="training epochs")
    train.add_argument("--batch-size", type=_size, default=30, metavar="N", help="mini-batch size")
    train.add_argument("--lr", type=_learning_rate, default=1e-3, metavar="RATE",
                       help="learning rate (SGD step on the summed gradient)")
    train.add_argument("--hidden", type=_size, nargs="*", default=[64, 32], metavar="SIZE",
                       help="hidden layer sizes, input to output; give none for no hidden layer")
    train.add_argument("--activation", choices=sorted(ACTIVATIONS), default="sigmoid",
                       help="activation of every layer")
    train.add_argument("--loss", choices=sorted(LOSSES), default="l2", help="training loss")
    train.add_argument("--seed", type=_seed, default=42, help="seed of np.random (0 to 2**32 - 1)")
    train.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                       help="floating-point type of the data and the network")
    train.add_argument("--backend", choices=["jit", "reference"], default="jit",
                       help="jit: fastscratch.SimpleNetwork (Numba); "
                            "reference: fastscratch.reference.SimpleNetwork (the tutorial's NumPy code)")
    train.add_argument("--dataset", choices=sorted(DATASET_NAMES), default="mnist",
                       help="the dataset in MNIST's format to train on")
    train.add_argument("--data-dir", metavar="DIR",
                       help="read the dataset's four IDX files (.gz or not) from DIR, never download; "
                            "default: $FASTSCRATCH_<DATASET>_DIR, a system-wide copy, the user cache, a download")
    train.add_argument("--no-verify", action="store_true",
                       help="skip the check of the files' SHA-256 digests, to read any data in MNIST's format "
                            "and file names (the run's history records it)")
    train.add_argument("--out", metavar="DIR",
                       help="run directory: created, or an existing empty one; "
                            "default: a new runs/<timestamp>")
    train.add_argument("--quiet", action="store_true", help="print nothing but errors")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except the empty ones (None, False) that the help text already explains."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


# -- argument types: each raises ArgumentTypeError, which argparse turns into a usage error (exit 2)

def _integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _size(text):
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _count(text):
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _seed(text):
    value = _integer(text)
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**32 - 1, got {value}")
    return value


def _learning_rate(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be finite and > 0, got {text}")
    return value


# -- the command

def run_train(args, parser):
    from rich.console import Console

    # Every check that needs no data comes first, then the run directory is claimed: a bad option or a
    # directory in use fails at once, not after loading the data.
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        parser.error(f"argument --data-dir: no such directory: {args.data_dir}")
    layer_sizes = [NUM_INPUTS, *args.hidden, NUM_CLASSES]
    problem = memory_problem(layer_sizes, args.dtype)
    if problem:
        parser.error(f"argument --hidden: {problem}")
    try:
        claim = claim_run_directory(args.out)
    except RunDirectoryError as err:
        parser.error(f"argument --out: {err}")
    console = Console(quiet=args.quiet, highlight=False, markup=False)  # paths may hold '['
    try:
        return _train(args, parser, claim, console)
    except KeyboardInterrupt:  # before training started: from then on _train keeps what was done
        print(f"{PROG} {args.command}: interrupted" + (
            f"; {claim.path} holds the run as last checkpointed" if claim.kept else
            " before training started; nothing saved"), file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        weights = _bytes(_parameter_bytes(layer_sizes, args.dtype))
        print(f"{PROG} {args.command}: error: out of memory for a {_sizes(layer_sizes)} {args.dtype} network "
              f"and its outputs over the data (the weights alone need {weights}); try smaller --hidden sizes"
              + (f"; {claim.path} holds the run as last checkpointed" if claim.kept else ""), file=sys.stderr)
        return 1
    finally:
        claim.release()


def _train(args, parser, claim, console):
    import numpy as np

    import fastscratch
    from fastscratch import datasets, reference
    from fastscratch._interrupt import deferred_sigint
    from fastscratch.exceptions import NonFiniteLossError, TrainingInterrupted

    network_class = fastscratch.SimpleNetwork if args.backend == "jit" else reference.SimpleNetwork
    dtype = np.dtype(args.dtype)
    started_at = datetime.datetime.now(datetime.timezone.utc)

    # The tutorial's order: seed, load, draw the test image's index, prepare, build (weights drawn last).
    np.random.seed(args.seed)
    try:
        loaded = datasets.load_dataset(args.dataset, args.data_dir, download=args.data_dir is None,
                                       progress=not args.quiet, verify=not args.no_verify)
    except (datasets.MNISTError, OSError, ValueError) as err:
        print(f"{PROG} {args.command}: error: {str(err).replace('pass verify=False', 'pass --no-verify')}",
              file=sys.stderr)
        return 1
    X_train, y_train, X_test, y_test = loaded
    img_idx = int(np.random.randint(0, X_test.shape[0]))
    image, true_class = X_test[img_idx].copy(), int(y_test[img_idx])
    X_train, Y_train, X_test, y_test = datasets.prepare(X_train, y_train, X_test, y_test, dtype=dtype)
    if args.batch_size > len(X_train):
        parser.error(f"argument --batch-size: {args.batch_size} is larger than the "
                     f"{len(X_train)} training samples")

    activation, derivated_activation = ACTIVATIONS[args.activation]
    loss, derivated_loss = LOSSES[args.loss]
    network = network_class(num_inputs=X_train.shape[1], num_outputs=NUM_CLASSES,
                            hidden_layers_sizes=args.hidden,
                            activation_function=activation, derivated_activation_function=derivated_activation,
                            loss_function=loss, derivated_loss_function=derivated_loss, dtype=dtype)

    predictions = network.forward(X_train)  # forward pass
    untrained_loss = float(network.loss_function(predictions, Y_train))  # loss computation
    untrained_accuracy = float(network.evaluate_accuracy(X_test, y_test))
    del predictions
    console.print("Untrained : training loss = {:.6f} | val accuracy = {:.2f}%".format(
        untrained_loss, untrained_accuracy * 100))

    out = claim.path
    config = {
        "command": shlex.join([PROG, *args.argv]),
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr,
        "hidden": list(args.hidden),
        "layer_sizes": [int(X_train.shape[1]), *args.hidden, NUM_CLASSES],
        "activation": args.activation, "loss": args.loss, "seed": args.seed, "dtype": args.dtype,
        "backend": args.backend,
        "network_class": f"{network_class.__module__}.{network_class.__qualname__}",
        "dataset": args.dataset, "dataset_title": loaded.dataset.title,
        # Whether the four files have the dataset's canonical digests (checked even with --no-verify).
        "verified": bool(loaded.verified), "verify": not args.no_verify,
        "data_dir": args.data_dir, "data_directory": os.path.abspath(loaded.directory),
        loaded.dataset.env_var: os.environ.get(loaded.dataset.env_var),
        "train_samples": len(X_train), "test_samples": len(X_test), "test_image_index": img_idx,
        "out": os.path.abspath(out), "started_at": started_at.isoformat(timespec="seconds"),
        **environment(),
    }
    run = Run(out, config, untrained_loss, untrained_accuracy, loaded.dataset.classes)
    kept = LastFiniteWeights(network)

    try:
        with _progress(console, args.epochs) as (progress, task):
            recorder = Recorder(run, kept, console, progress, task, args.epochs)
            try:
                claim.kept = True  # from here on the directory holds this run, whatever happens
                run.checkpoint()
                network.train(X_train, Y_train, X_test, y_test, batch_size=args.batch_size,
                              num_epochs=args.epochs, learning_rate=args.lr, verbose=False, callback=recorder)
            except TrainingInterrupted as err:
                run.stop("interrupted", err.epoch, err.batch)
            except NonFiniteLossError as err:
                run.stop("non-finite loss", err.epoch, err.batch)
                print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
            else:
                if kept.epoch == len(run.losses):
                    run.status = "completed"
                else:  # the last update overflowed without an error: keep the last finite weights
                    run.stop("non-finite loss", kept.epoch, None)
                    print(f"{PROG} {args.command}: error: an update of epoch {kept.epoch + 1} made some weights "
                          f"non-finite; try a smaller --lr", file=sys.stderr)
    except KeyboardInterrupt:  # while train prepared its data, or after it returned and before the files are shielded
        run.stop("interrupted", len(run.losses), 0)

    with deferred_sigint() as interrupt:  # a Ctrl-C now would leave half a run: finish the files first
        if run.status != "completed":
            kept.restore()  # the weights the history describes: the end of epoch kept.epoch
        run.model_epoch = kept.epoch
        # Predict the test image drawn at the start, as the tutorial does (with the weights as they are).
        # We use `np.expand_dims(x, 0)` to simulate a batch (transforming the image shape from (784,) to (1, 784)):
        predicted_class = int(network.predict(np.expand_dims(X_test[img_idx], 0)))
        console.print("Predicted class: {}; Correct class: {}".format(
            run.class_label(predicted_class), run.class_label(true_class)))
        run.prediction = {"test_image_index": img_idx, "predicted_class": predicted_class,
                          "correct_class": true_class, "predicted_name": loaded.dataset.classes[predicted_class],
                          "correct_name": loaded.dataset.classes[true_class]}
        run.save(network, image)
    return _report(args, run, interrupt.requested, console)


def _report(args, run, ctrl_c_while_saving, console):
    """Say how the run ended and where its files are; return the exit code that matches its history."""
    say = f"{PROG} {args.command}:"
    for name, err in run.unsaved.items():
        print(f"{say} error: could not write {os.path.join(run.out, name)}: {err}", file=sys.stderr)
    if "model.npz" in run.unsaved:
        print(f"{say} the weights after epoch {run.model_epoch} were saved instead to {run.model_saved_to}"
              if run.model_saved_to else f"{say} the trained weights could not be saved anywhere",
              file=sys.stderr)
    if ctrl_c_while_saving:
        print(f"{say} Ctrl-C came while the run was being saved; the files were finished first",
              file=sys.stderr)
    if run.status == "save failed":
        history = ("history.json says which files are missing" if "history.json" not in run.unsaved else
                   "history.json is the last epoch's checkpoint")
        print(f"{say} the run in {run.out} is incomplete; {history}", file=sys.stderr)
        return 1
    if run.status == "interrupted":
        where = f"at epoch {run.stopped_at['epoch']}" if run.stopped_at else "after the last epoch"
        print(f"{say} interrupted {where}; kept {len(run.losses)} completed "
              f"epochs of {args.epochs}: history and the weights after epoch {run.model_epoch} saved in "
              f"{run.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if run.status == "non-finite loss":
        print(f"{say} the run so far is saved in {run.out}; model.npz holds the weights after epoch "
              f"{run.model_epoch}, the last finite ones", file=sys.stderr)
        return 1
    console.print(f"Run saved in {run.out} ({', '.join(RUN_FILES)}) in {run.total_seconds():.1f} s",
                  soft_wrap=True)
    return 0


class Run:
    """One run's record, and the files written from it.

    During training only ``history.json`` is written, after every epoch
    (status "running"). At the end :meth:`save` writes the model, the plots
    and ``history.csv``, then ``history.json`` with the final status, so both
    histories always hold the same epochs and a final status means every
    other file is in place.
    """

    def __init__(self, out, config, untrained_loss, untrained_accuracy, class_names):
        self.out, self.config, self.class_names = out, config, class_names
        self.untrained_loss, self.untrained_accuracy = untrained_loss, untrained_accuracy
        self.losses, self.accuracies, self.seconds_per_epoch = [], [], []
        self.status, self.stopped_at, self.model_epoch, self.prediction = "running", None, None, None
        self.files, self.unsaved, self.model_saved_to = ["history.json"], {}, None
        self.checkpoint_failed = False
        self.started = time.perf_counter()

    def class_label(self, index):
        """``1``, or ``1 (Trouser)`` for a dataset whose classes have names."""
        name = self.class_names[index]
        return f"{index}" if name == str(index) else f"{index} ({name})"

    def add_epoch(self, loss, accuracy, seconds):
        self.losses.append(float(loss))
        self.accuracies.append(float(accuracy))
        self.seconds_per_epoch.append(seconds)

    def stop(self, status, epoch, batch):
        """Training ended in the (0-based) ``epoch`` after ``batch`` of its batches (None: unknown).

        ``epoch`` equal to the planned epochs means the end came after the last
        one (a Ctrl-C during its evaluation): nothing of an epoch was dropped.
        """
        self.status = status
        if epoch < self.config["epochs"]:
            self.stopped_at = {"epoch": epoch + 1, "batches_done": batch}

    def total_seconds(self):
        return time.perf_counter() - self.started

    def history(self):
        return {
            "untrained_loss": _finite_or_none(self.untrained_loss),
            "untrained_accuracy": self.untrained_accuracy,
            "losses": [_finite_or_none(v) for v in self.losses],
            "accuracies": self.accuracies,
            "seconds_per_epoch": self.seconds_per_epoch,
            "status": self.status,
            "completed_epochs": len(self.losses),
            # Where training stopped early (epochs count from 1); model.npz holds the end of model_epoch.
            "stopped_at": self.stopped_at,
            "model_epoch": self.model_epoch,
            "files": self.files,
            "unsaved": self.unsaved,
            "model_saved_to": self.model_saved_to,
            "prediction": self.prediction,
            "config": self.config,
        }

    def write_history(self):
        _files.write_text(os.path.join(self.out, "history.json"), json.dumps(self.history(), indent=2) + "\n")

    def checkpoint(self):
        """Write ``history.json`` as it is during training. A failure (a full disk) does not stop training:
        the previous checkpoint stays whole, it is said once, and :meth:`save` writes every file again."""
        try:
            self.write_history()
        except OSError as err:
            if not self.checkpoint_failed:
                print(f"{PROG}: warning: could not checkpoint {os.path.join(self.out, 'history.json')}: "
                      f"{_reason(err)}; training goes on and the run is written at the end", file=sys.stderr)
            self.checkpoint_failed = True

    def save(self, network, image):
        """Write every file of the run, ``history.json`` last; record what could not be written."""
        self.config["total_seconds"] = round(self.total_seconds(), 3)
        self.config.update(_numba_threads())  # the threading layer is known once kernels ran
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
                self.unsaved[name] = _reason(err)
        if "model.npz" in self.unsaved:
            self.model_saved_to = _save_model_elsewhere(network, self.out)
        if self.unsaved:
            self.status = "save failed"
        self.files.append("history.json")
        try:
            self.write_history()
        except OSError as err:
            self.unsaved["history.json"] = _reason(err)
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
        title = (f"{c['dataset_title']}: {_sizes(c['layer_sizes'])} {c['activation']}, {loss} loss, "
                 f"batch {c['batch_size']}, "
                 f"lr {c['learning_rate']:g}" + ("" if self.status == "completed" else f" ({self.status})"))
        plotting.plot_training([self.untrained_loss, *self.losses], [self.untrained_accuracy, *self.accuracies],
                               path, num_epochs=c["epochs"], title=title)

    def _plot_prediction(self, image, path):
        from fastscratch import plotting

        plotting.plot_prediction(image, self.class_label(self.prediction["predicted_class"]),
                                 self.class_label(self.prediction["correct_class"]), path,
                                 title=self.config["dataset_title"])


def save_model(network, path):
    """``network.save``, which writes atomically: a full disk or a kill never leaves half a model."""
    network.save(path)


def _save_model_elsewhere(network, out):
    """Save the model in the temporary directory when the run directory could not take it; return the path."""
    path = os.path.join(tempfile.gettempdir(),
                        f"fastscratch-{os.path.basename(os.path.abspath(out))}-{os.getpid()}-model.npz")
    try:
        save_model(network, path)
    except OSError:
        return None
    return path


class LastFiniteWeights:
    """A copy of a network's weights at the last epoch end where they were all finite.

    ``epoch`` counts the epochs those weights have been trained for (0: the
    untrained network). Taken after every epoch, it is what ``model.npz``
    holds when training stops early or an update overflows: the weights whose
    epoch the history describes, and never weights that ``load`` refuses.
    """

    def __init__(self, network):
        self.network = network
        self.copies = [(layer.W.copy(), layer.b.copy()) for layer in network.layers]
        self.epoch = 0

    def take(self, epoch):
        import numpy as np

        if self.network.weights_finite():
            for layer, (W, b) in zip(self.network.layers, self.copies):
                np.copyto(W, layer.W)
                np.copyto(b, layer.b)
            self.epoch = epoch

    def restore(self):
        for layer, (W, b) in zip(self.network.layers, self.copies):
            layer.W[...] = W
            layer.b[...] = b


class Recorder:
    """The ``callback`` given to ``train``: records each epoch, keeps its weights, shows it, checkpoints.

    ``seconds_per_epoch`` counts the training and the validation of the epoch,
    not this callback's own output. The first epoch also holds ``train``'s
    setup (indexing the data, compiling on a first run), so the ETA is
    estimated from the epochs after it.
    """

    def __init__(self, run, kept, console, progress, task, num_epochs):
        self.run, self.kept, self.console, self.progress, self.task = run, kept, console, progress, task
        self.num_epochs = num_epochs
        self.mark = time.perf_counter()

    def __call__(self, epoch, loss, accuracy):
        seconds = time.perf_counter() - self.mark
        done = epoch + 1  # train counts from 0; the command, like history.csv, from 1
        self.run.add_epoch(loss, accuracy, seconds)
        self.kept.take(done)
        self.console.print("Epoch {:4d}: training loss = {:.6f} | val accuracy = {:.2f}% ({:.2f} s)".format(
            done, loss, accuracy * 100, seconds))
        self.progress.update(self.task, completed=done, loss=f"{loss:.6g}", accuracy=f"{accuracy:.2%}",
                             seconds=f"{seconds:.2f}", eta=eta(self.run.seconds_per_epoch, self.num_epochs))
        self.run.checkpoint()
        self.mark = time.perf_counter()


def eta(seconds_per_epoch, num_epochs):
    """The time left, from the last 20 epochs after the first (which holds the setup), as ``h:mm:ss``."""
    remaining = num_epochs - len(seconds_per_epoch)
    if remaining == 0:
        return _duration(0)
    recent = seconds_per_epoch[1:][-20:]
    if not recent:
        return "estimating…"
    return _duration(remaining * sum(recent) / len(recent))


class _progress:
    """Context manager: a rich live progress bar (nothing when the console is quiet)."""

    def __init__(self, console, num_epochs):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.table import Column

        whole = {"table_column": Column(no_wrap=True)}  # numbers are never cut; the bar shrinks instead
        self.progress = Progress(
            TextColumn("Epoch", **whole), MofNCompleteColumn(**whole), BarColumn(bar_width=None),
            TextColumn("loss [red]{task.fields[loss]}[/] acc [blue]{task.fields[accuracy]}[/]", **whole),
            TextColumn("{task.fields[seconds]}s/ep", **whole), TimeElapsedColumn(**whole),
            TextColumn("ETA {task.fields[eta]}", **whole),
            console=console, disable=console.quiet or not console.is_terminal)  # logs get the epoch lines
        self.task = self.progress.add_task("train", total=num_epochs, loss="-", accuracy="-", seconds="-",
                                           eta="estimating…")

    def __enter__(self):
        self.progress.start()
        return self.progress, self.task

    def __exit__(self, *exc):
        self.progress.stop()
        return False


# -- the environment recorded with each run

def environment():
    """Versions, CPU and thread counts and BLAS facts; each part is ``None`` when not available."""
    import numba
    import numpy as np

    import fastscratch

    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable_cpus = None
    return {
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
                     "fastscratch": fastscratch.__version__, "matplotlib": _version("matplotlib"),
                     "rich": _version("rich")},
        "platform": platform.platform(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "usable_cpu_count": usable_cpus,
        **_numba_threads(),
        "blas": _blas(),
    }


def _version(distribution):
    from importlib import metadata
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _numba_threads():
    import numba
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = None
    return {"numba": {"threading_layer": layer, "threading_layer_config": numba.config.THREADING_LAYER,
                      "num_threads": numba.get_num_threads(), "max_threads": numba.config.NUMBA_NUM_THREADS}}


def _blas():
    """NumPy's BLAS as built, and as loaded with its thread count when threadpoolctl is installed."""
    import numpy as np
    info = {}
    try:
        build = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_build"] = {k: build.get(k) for k in ("name", "version", "openblas configuration") if k in build}
    except Exception:  # noqa: BLE001  (the layout of show_config is not a stable API)
        info["numpy_build"] = None
    try:
        import threadpoolctl
        info["loaded"] = [{k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                                     "threading_layer", "architecture")}
                          for pool in threadpoolctl.threadpool_info()]
    except ImportError:
        info["loaded"] = None
    return info


# -- the run directory

class RunDirectoryError(ValueError):
    """The run directory cannot be claimed (in use, not empty, not creatable)."""


class RunDirectory:
    """A run directory claimed by this process: it holds ``CLAIM``, created exclusively.

    ``release`` ends the claim. A directory that never received a run
    (``kept`` false: the data failed to load, Ctrl-C before training) is given
    back as it was found: removed if this process created it, else emptied of
    the marker; so the same ``--out`` can be used again.
    """

    def __init__(self, path, created):
        self.path, self.created, self.kept = path, created, False

    def release(self):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, CLAIM))
        if self.created and not self.kept:
            with contextlib.suppress(OSError):
                os.rmdir(self.path)


def claim_run_directory(out, now=None):
    """Claim ``out``, or a new ``runs/<timestamp>`` when ``out`` is None, for this process.

    ``out`` may be missing (it is created, with its parents) or an empty
    directory. The claim is an exclusive create (``mkdir``, then ``CLAIM``
    with ``O_EXCL``), so of two processes claiming the same directory exactly
    one succeeds, and two default runs in the same second get different names
    (``<timestamp>``, ``<timestamp>-2``, ...). Raises ``RunDirectoryError``.
    """
    if out is None:
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        _make_parents(RUNS, RUNS)
        n = 1
        while True:
            path = os.path.join(RUNS, stamp if n == 1 else f"{stamp}-{n}")
            n += 1
            try:
                os.mkdir(path)
            except FileExistsError:
                continue
            except OSError as err:
                raise RunDirectoryError(f"cannot create {path}: {_reason(err)}") from None
            with contextlib.suppress(RunDirectoryError):  # another run took it with --out at once: next name
                return _lock(path, created=True)
    if not out:
        raise RunDirectoryError("must not be empty")
    _make_parents(os.path.dirname(os.path.abspath(out)), out)
    try:
        os.mkdir(out)
        created = True
    except FileExistsError:
        if not os.path.isdir(out):
            raise RunDirectoryError(f"{out} already exists and is not an empty directory; "
                                    f"choose another one") from None
        created = False
    except OSError as err:
        raise RunDirectoryError(f"cannot create {out}: {_reason(err)}") from None
    return _lock(out, created)


def _make_parents(parent, out):
    try:
        os.makedirs(parent, exist_ok=True)
    except FileExistsError:  # makedirs' word for a file in the way
        blocker = parent
        while not os.path.exists(blocker):
            blocker = os.path.dirname(blocker)
        raise RunDirectoryError(f"cannot create {out}: {blocker} is not a directory") from None
    except OSError as err:
        raise RunDirectoryError(f"cannot create {out}: {_reason(err)}") from None


def _lock(path, created):
    in_use = (f"{path} is in use by another fastscratch run (or holds the {CLAIM} marker of a killed one, "
              f"which you may remove); choose another directory")
    if not created:
        try:
            entries = os.listdir(path)
        except OSError as err:
            raise RunDirectoryError(f"cannot read {path}: {_reason(err)}") from None
        if entries == [CLAIM]:
            raise RunDirectoryError(in_use)
        if entries:
            raise RunDirectoryError(f"{path} already exists and is not an empty directory; choose another one")
    try:
        fd = os.open(os.path.join(path, CLAIM), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise RunDirectoryError(in_use) from None
    except OSError as err:
        raise RunDirectoryError(f"cannot write to {path}: {_reason(err)}") from None
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    return RunDirectory(path, created)


# -- memory

PARAMETER_COPIES = 4  # weights, their gradients, the kernels' transposed copy, the last finite copy kept


def memory_problem(layer_sizes, dtype):
    """A sentence when the network's parameters alone cannot fit in the available memory, else None."""
    need = PARAMETER_COPIES * _parameter_bytes(layer_sizes, dtype)
    available = available_memory()
    if available is None or need <= available:
        return None
    return (f"a {_sizes(layer_sizes)} {dtype} network needs at least {_bytes(need)} ({PARAMETER_COPIES} "
            f"copies of its {_parameter_count(layer_sizes):,} parameters), but only {_bytes(available)} "
            f"of memory is available")


def _parameter_count(layer_sizes):
    return sum((n_in + 1) * n_out for n_in, n_out in zip(layer_sizes, layer_sizes[1:]))


def _parameter_bytes(layer_sizes, dtype):
    return _parameter_count(layer_sizes) * {"float64": 8, "float32": 4}[dtype]


def available_memory():
    """Bytes this process may still allocate: MemAvailable, capped by RLIMIT_AS; None if unknown."""
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        with contextlib.suppress(ValueError, OSError, AttributeError):
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    try:
        import resource
        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            with open("/proc/self/statm", encoding="ascii") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            available = max(limit - used, 0) if available is None else min(available, max(limit - used, 0))
    except (ImportError, OSError, ValueError):
        pass
    return available


# -- helpers

def _reason(err):
    """An OSError as "No space left on device", without the errno and the path."""
    return err.strerror or str(err)


def _sizes(layer_sizes):
    return "-".join(map(str, layer_sizes))


def _bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024


def _finite_or_none(value):
    """JSON has no NaN or infinity: write ``null`` for them."""
    return value if math.isfinite(value) else None


def _duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


if __name__ == "__main__":
    sys.exit(main())
