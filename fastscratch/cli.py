"""The tutorial's MNIST script as a command: ``fastscratch train``.

With no options it does what section 4 of the tutorial does, in the same
order (so with the same random draws): seed NumPy with 42, load MNIST, draw
the index of the test image to show, prepare the data, build a 784-64-32-10
sigmoid network with the L2 loss, report its untrained loss (training set)
and accuracy (test set), train 500 epochs with batch 30 and lr 1e-3, and
predict the drawn test image. Around that it adds a live progress display and
a run directory holding the history, the weights and the two plots. Ctrl-C
stops at the next batch boundary, keeps what was done and exits 130.
"""
import argparse
import csv
import datetime
import io
import json
import math
import os
import platform
import shlex
import sys
import time

from fastscratch.functions import ACTIVATIONS, LOSSES

PROG = "fastscratch"
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
NUM_CLASSES = 10  # classes are the digits from 0 to 9

RUN_FILES = ("history.json", "history.csv", "model.npz", "training.png", "prediction.png")


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Bad options end in ``SystemExit(2)`` with an argparse message, as usual.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return args.run(args, args.parser)
    except KeyboardInterrupt:  # outside training (loading, evaluating): nothing worth keeping yet
        print(f"{PROG} {args.command}: interrupted before training started; nothing saved",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description="The 'neural network from scratch' tutorial, compiled with Numba.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    train = commands.add_parser(
        "train", help="train the tutorial's MNIST classifier and save the run",
        description="Train the tutorial's MNIST classifier (defaults: exactly the tutorial's run) and "
                    "write history.json, history.csv, model.npz, training.png and prediction.png "
                    "to the run directory.",
        formatter_class=_HelpFormatter)
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
    train.add_argument("--data-dir", metavar="DIR",
                       help="read the four MNIST IDX files (.gz or not) from DIR, never download; "
                            "default: $FASTSCRATCH_MNIST_DIR, then the user cache, then a download")
    train.add_argument("--out", metavar="DIR",
                       help="run directory to create (must not hold files); default: runs/<timestamp>")
    train.add_argument("--quiet", action="store_true", help="print nothing but errors")
    train.set_defaults(run=run_train, parser=train)
    from fastscratch.study.cli import add_study_parser
    add_study_parser(commands)
    return parser


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

    out = _run_directory(args.out, parser)
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        parser.error(f"argument --data-dir: no such directory: {args.data_dir}")
    console = Console(quiet=args.quiet, highlight=False, markup=False)  # paths may hold '['

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
        X_train, y_train, X_test, y_test = datasets.load_mnist(
            args.data_dir, download=args.data_dir is None, progress=not args.quiet)
    except (datasets.MNISTError, OSError, ValueError) as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1
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

    _make_run_directory(out, parser)
    config = {
        "command": shlex.join([PROG, *args.argv]),
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr,
        "hidden": list(args.hidden),
        "layer_sizes": [int(X_train.shape[1]), *args.hidden, NUM_CLASSES],
        "activation": args.activation, "loss": args.loss, "seed": args.seed, "dtype": args.dtype,
        "backend": args.backend,
        "network_class": f"{network_class.__module__}.{network_class.__qualname__}",
        "data_dir": args.data_dir, "FASTSCRATCH_MNIST_DIR": os.environ.get("FASTSCRATCH_MNIST_DIR"),
        "train_samples": len(X_train), "test_samples": len(X_test), "test_image_index": img_idx,
        "out": os.path.abspath(out), "started_at": started_at.isoformat(timespec="seconds"),
        **environment(),
    }
    run = Run(out, config, untrained_loss, untrained_accuracy)
    run.write_history()

    status, exit_code = "completed", 0
    with _progress(console, args.epochs) as (progress, task):
        recorder = Recorder(run, console, progress, task, args.epochs)
        try:
            network.train(X_train, Y_train, X_test, y_test, batch_size=args.batch_size,
                          num_epochs=args.epochs, learning_rate=args.lr, verbose=False, callback=recorder)
        except TrainingInterrupted:
            status, exit_code = "interrupted", EXIT_INTERRUPTED
        except NonFiniteLossError as err:
            status, exit_code = "non-finite loss", 1
            print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)

    with deferred_sigint() as interrupt:  # a second Ctrl-C must not leave a half-written run
        # Predict the test image drawn at the start, as the tutorial does (with the weights as they are).
        # We use `np.expand_dims(x, 0)` to simulate a batch (transforming the image shape from (784,) to (1, 784)):
        predicted_class = int(network.predict(np.expand_dims(X_test[img_idx], 0)))
        console.print("Predicted class: {}; Correct class: {}".format(predicted_class, true_class))
        run.finish(status, predicted_class, true_class)
        run.write_history()
        network.save(os.path.join(out, "model.npz"))
        run.write_plots(image, predicted_class, true_class)
    if interrupt.requested and status == "completed":
        status, exit_code = "interrupted", EXIT_INTERRUPTED

    if status == "interrupted":
        print(f"{PROG} {args.command}: interrupted after {len(run.losses)} of {args.epochs} epochs; "
              f"history so far and current weights saved in {out}", file=sys.stderr)
    elif status == "non-finite loss":
        print(f"{PROG} {args.command}: the run so far is saved in {out}", file=sys.stderr)
    elif status == "completed":
        console.print(f"Run saved in {out} ({', '.join(RUN_FILES)}) in {run.total_seconds():.1f} s",
                      soft_wrap=True)
    return exit_code


class Run:
    """The files of one run: history (JSON and CSV, rewritten after every epoch) and plots."""

    def __init__(self, out, config, untrained_loss, untrained_accuracy):
        self.out, self.config = out, config
        self.untrained_loss, self.untrained_accuracy = untrained_loss, untrained_accuracy
        self.losses, self.accuracies, self.seconds_per_epoch = [], [], []
        self.status, self.prediction = "running", None
        self.started = time.perf_counter()

    def add_epoch(self, loss, accuracy, seconds):
        self.losses.append(float(loss))
        self.accuracies.append(float(accuracy))
        self.seconds_per_epoch.append(seconds)

    def finish(self, status, predicted_class, true_class):
        self.status = status
        self.prediction = {"test_image_index": self.config["test_image_index"],
                           "predicted_class": predicted_class, "correct_class": true_class}
        self.config["total_seconds"] = round(self.total_seconds(), 3)
        self.config.update(_numba_threads())  # the threading layer is known once kernels ran

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
            "prediction": self.prediction,
            "config": self.config,
        }

    def write_history(self):
        _write_text(os.path.join(self.out, "history.json"), json.dumps(self.history(), indent=2) + "\n")
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["epoch", "loss", "accuracy", "seconds"])
        writer.writerow([0, repr(self.untrained_loss), repr(self.untrained_accuracy), ""])
        for epoch, row in enumerate(zip(self.losses, self.accuracies, self.seconds_per_epoch), start=1):
            writer.writerow([epoch, *map(repr, row)])
        _write_text(os.path.join(self.out, "history.csv"), buffer.getvalue())

    def write_plots(self, image, predicted_class, true_class):
        from fastscratch import plotting

        c = self.config
        sizes = "-".join(map(str, c["layer_sizes"]))
        loss = {"l2": "L2"}.get(c["loss"], c["loss"])
        title = (f"{sizes} {c['activation']}, {loss} loss, batch {c['batch_size']}, lr {c['learning_rate']:g}"
                 + ("" if self.status == "completed" else f" ({self.status})"))
        plotting.plot_training([self.untrained_loss, *self.losses], [self.untrained_accuracy, *self.accuracies],
                               os.path.join(self.out, "training.png"), title=title)
        plotting.plot_prediction(image, predicted_class, true_class, os.path.join(self.out, "prediction.png"))


class Recorder:
    """The ``callback`` given to ``train``: records each epoch, shows it, checkpoints the history.

    ``seconds_per_epoch`` counts the training and the validation of the epoch,
    not this callback's own output.
    """

    def __init__(self, run, console, progress, task, num_epochs):
        self.run, self.console, self.progress, self.task = run, console, progress, task
        self.num_epochs = num_epochs
        self.mark = time.perf_counter()

    def __call__(self, epoch, loss, accuracy):
        seconds = time.perf_counter() - self.mark
        self.run.add_epoch(loss, accuracy, seconds)
        self.console.print("Epoch {:4d}: training loss = {:.6f} | val accuracy = {:.2f}% ({:.2f} s)".format(
            epoch, loss, accuracy * 100, seconds))
        recent = self.run.seconds_per_epoch[-20:]
        remaining = (self.num_epochs - epoch - 1) * sum(recent) / len(recent)
        self.progress.update(self.task, completed=epoch + 1, loss=f"{loss:.6f}", accuracy=f"{accuracy:.2%}",
                             seconds=f"{seconds:.2f}", eta=_duration(remaining))
        self.run.write_history()
        self.mark = time.perf_counter()


class _progress:
    """Context manager: a rich live progress bar (nothing when the console is quiet)."""

    def __init__(self, console, num_epochs):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("Epoch"), MofNCompleteColumn(), BarColumn(),
            TextColumn("loss [red]{task.fields[loss]}[/]  accuracy [blue]{task.fields[accuracy]}[/]"),
            TextColumn("{task.fields[seconds]} s/epoch"), TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
            console=console, disable=console.quiet or not console.is_terminal)  # logs get the epoch lines
        self.task = self.progress.add_task("train", total=num_epochs, loss="-", accuracy="-", seconds="-",
                                           eta="-")

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


# -- helpers

def _run_directory(out, parser):
    """The run directory to use: ``out`` if it does not hold files, else a fresh ``runs/<timestamp>``."""
    if out is not None:
        if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
            parser.error(f"argument --out: {out} already exists and is not an empty directory; "
                         f"choose another one")
        return out
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    candidate, n = os.path.join("runs", stamp), 1
    while os.path.exists(candidate):
        n += 1
        candidate = os.path.join("runs", f"{stamp}-{n}")
    return candidate


def _make_run_directory(out, parser):
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        parser.error(f"argument --out: cannot create {out}: {err.strerror}")


def _write_text(path, text):
    """Write atomically, so a reader (or a Ctrl-C) never sees half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _finite_or_none(value):
    """JSON has no NaN or infinity: write ``null`` for them."""
    return value if math.isfinite(value) else None


def _duration(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


if __name__ == "__main__":
    sys.exit(main())
