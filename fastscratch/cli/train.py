"""``fastscratch train``: the tutorial's MNIST script as a command.

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
history's status is final only once every other file is in place. Ctrl-C,
SIGTERM and SIGHUP stop it at the next batch and keep the run.
"""
import contextlib
import datetime
import os
import shlex
import signal
import time

from fastscratch import environment
from fastscratch._interrupt import StopSignals
from fastscratch.cli import options
from fastscratch.cli.options import EXIT_FAILED, EXIT_OK, PROG, exit_code_of
from fastscratch.cli.output import stderr, stdout
from fastscratch.cli.progress import LiveLine, eta
from fastscratch.cli.record import RUN_FILES, Run
from fastscratch.cli.rundir import CLAIM, RunDirectoryError, claim_run_directory, memory_problem, parameter_bytes
from fastscratch.cli.text import byte_count, layer_sizes
from fastscratch.cli.weights import LastFiniteWeights
from fastscratch.datasets import DATASETS, NUM_CLASSES
from fastscratch.functions import ACTIVATIONS, LOSSES

NUM_INPUTS = 784  # 28 x 28 pixels in every dataset of MNIST's format
PROBE_ROWS = 256  # test images on which a network whose loss stopped moving is checked for constant outputs
SAY = f"{PROG} train:"


EPILOG = (
    "Same seed, same numbers: after np.random.seed(SEED) the command draws the index of the test image it shows "
    "(np.random.randint(0, 10000)), then the weights, as the tutorial's script does. A script that seeds and "
    "builds a network at once draws other weights (with seed 42: untrained loss 3.6095, not the command's 4.4367); "
    "draw that index first to get the command's. Epochs count from 1 here (the log, the progress line, "
    "history.csv, whose row 0 is the untrained network); the library's train(verbose=True) logs the first epoch "
    "as 'Epoch 0'. Exit codes: 0 done; 1 failed (the data, an overflow, a file not saved); 2 a bad option or "
    "--out; 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP, each after saving the last whole epoch.")


def add_parser(commands):
    """Add ``train`` to the ``commands`` of ``fastscratch``'s parser."""
    train = commands.add_parser(
        "train", help="train the tutorial's classifier on MNIST (or a dataset in its format) and save the run",
        description="Train the tutorial's classifier on MNIST or another dataset in its format (defaults: "
                    "exactly the tutorial's run) and "
                    "write history.json, history.csv, model.npz, training.png and prediction.png "
                    "to the run directory.",
        epilog=EPILOG, formatter_class=options.HelpFormatter)
    train.add_argument("--epochs", type=options.count, default=500, metavar="N", help="training epochs")
    train.add_argument("--batch-size", type=options.size, default=30, metavar="N", help="mini-batch size")
    train.add_argument("--lr", type=options.learning_rate, default=1e-3, metavar="RATE",
                       help="learning rate (SGD step on the summed gradient)")
    train.add_argument("--hidden", type=options.size, nargs="*", default=[64, 32], metavar="SIZE",
                       help="hidden layer sizes, input to output; give none for no hidden layer")
    train.add_argument("--activation", choices=sorted(ACTIVATIONS), default="sigmoid",
                       help="activation of every layer")
    train.add_argument("--loss", choices=sorted(LOSSES), default="l2", help="training loss")
    train.add_argument("--seed", type=options.seed, default=42, help="seed of np.random (0 to 2**32 - 1)")
    train.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                       help="floating-point type of the data and the network")
    train.add_argument("--backend", choices=["jit", "reference"], default="jit",
                       help="jit: fastscratch.SimpleNetwork (Numba); "
                            "reference: fastscratch.reference.SimpleNetwork (the tutorial's NumPy code)")
    train.add_argument("--blas-threads", type=options.size, metavar="N",
                       help="threads of NumPy's BLAS (every product of --backend reference; the drop-in's large "
                            "batches). Default: 1 with --backend reference, whose small products gain nothing "
                            "from more threads and wait for cores on a busy machine; BLAS's own count with jit")
    train.add_argument("--dataset", choices=sorted(DATASETS), default="mnist",
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
    train.add_argument("--quiet", action="store_true",
                       help="print nothing but errors, warnings and notes (on stderr, as how a stopped run was kept): "
                            "no progress, epoch lines or prediction")
    train.set_defaults(run=run, parser=train)
    return train


def run(args, parser):
    """Run ``fastscratch train`` with the parsed ``args``; return the exit code."""
    from rich.console import Console

    # Every check that needs no data comes first, then the run directory is claimed: a bad option or a
    # directory in use fails at once, not after loading the data.
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        parser.error(f"argument --data-dir: no such directory: {args.data_dir}")
    sizes = [NUM_INPUTS, *args.hidden, NUM_CLASSES]
    problem = memory_problem(sizes, args.dtype)
    if problem:
        parser.error(f"argument --hidden: {problem}")
    blas_threads = args.blas_threads or (1 if args.backend == "reference" else None)
    blas_limit = _blas_limit(blas_threads)
    args.blas_threads_applied = blas_threads
    console = Console(file=stdout(), quiet=args.quiet, highlight=False, markup=False)  # paths may hold '['
    # SIGTERM (kill, timeout, schedulers) and SIGHUP (a closed terminal) stop the run as Ctrl-C does.
    with StopSignals() as stop, blas_limit:
        try:
            claim = claim_run_directory(args.out)
        except RunDirectoryError as err:
            parser.error(f"argument --out: {err}")
        except KeyboardInterrupt:  # the claim leaves nothing behind when it does not complete
            return _stopped_before_training(stop, None)
        if claim.took_over is not None:
            pid = claim.took_over.strip()
            print(f"{SAY} note: {claim.path} held the {CLAIM} marker of a run that is gone"
                  + (f" (process {pid})" if pid.isdigit() else "") + "; this run takes it over", file=stderr())
        try:
            return _train(args, parser, claim, console, stop)
        except KeyboardInterrupt:  # before training started: from then on _train keeps what was done
            return _stopped_before_training(stop, claim)
        except MemoryError:
            weights = byte_count(parameter_bytes(sizes, args.dtype))
            print(f"{SAY} error: out of memory for a {layer_sizes(sizes)} {args.dtype} network "
                  f"and its outputs over the data (the weights alone need {weights}); try smaller --hidden sizes"
                  + (f"; {claim.path} holds the run as last checkpointed" if claim.kept else ""), file=stderr())
            return EXIT_FAILED
        finally:
            problem = claim.release()
            if problem:
                print(f"{SAY} warning: could not remove {os.path.join(claim.path, CLAIM)} "
                      f"({problem}); no process holds it, so it does not keep the directory in use",
                      file=stderr())


def _blas_limit(threads):
    """A context that limits every loaded BLAS to ``threads`` (None: no limit)."""
    if threads is None:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=threads, user_api="blas")


def _stopped_before_training(stop, claim):
    """Say that a signal stopped the command before ``_train`` could keep the run; return the exit code."""
    signum = stop.received or signal.SIGINT
    print(f"{SAY} {_stopped_by(signum)}" + (
        f"; {claim.path} holds the run as last checkpointed" if claim is not None and claim.kept else
        " before training started; nothing saved"), file=stderr())
    return exit_code_of(signum)


def _stopped_by(signum):
    """"interrupted" for Ctrl-C, "terminated by SIGTERM" (or SIGHUP)."""
    return "interrupted" if signum == signal.SIGINT else f"terminated by {signal.Signals(signum).name}"


def _load(args):
    """The dataset as ``datasets.LoadedDataset``, or None after saying why it could not be loaded and what to type."""
    from fastscratch import datasets

    try:
        return datasets.load_dataset(args.dataset, args.data_dir, download=args.data_dir is None,
                                     progress=not args.quiet, verify=not args.no_verify)
    except datasets.MNISTFileError as err:
        directory = err.path.parent
        if args.no_verify or not directory.is_dir():  # not a verification, or a download's bad copy
            print(f"{SAY} error: {err}", file=stderr())
            return None
        # A file that is whole but not the dataset's own (its digest or shape differs) loads unverified;
        # say so in the command's words, and name the dataset it is when it is another one we know.
        # A file that is broken fails again and says why.
        try:
            datasets.load_dataset(args.dataset, directory, download=False, progress=False, verify=False)
        except (datasets.MNISTError, OSError, ValueError) as unverified:
            print(f"{SAY} error: {unverified}", file=stderr())
            return None
        title = datasets.DATASETS[args.dataset].title
        other = _dataset_in(directory, exclude=args.dataset)
        print(f"{SAY} error: {err.path} is not {title}'s file (its content differs from the published one); "
              + (f"{directory} holds {datasets.DATASETS[other].title}: pass --dataset {other} (--no-verify would "
                 f"train on it as {title})" if other else "pass --no-verify to train on other data in this format"),
              file=stderr())
        return None
    except (datasets.MNISTError, OSError, ValueError) as err:
        print(f"{SAY} error: {err}", file=stderr())
        if args.data_dir is not None:
            for name, dataset in datasets.DATASETS.items():
                below = os.path.join(args.data_dir, name)
                if any(os.path.exists(os.path.join(below, file.name + suffix))
                       for file in dataset.files for suffix in ("", ".gz")):
                    print(f"{SAY} hint: {below} holds {dataset.title}'s files: pass --data-dir {shlex.quote(below)}"
                          + ("" if name == args.dataset else f" --dataset {name}"), file=stderr())
        return None


def _dataset_in(directory, exclude):
    """The name of the known dataset whose verified files ``directory`` holds (other than ``exclude``), or None."""
    from fastscratch import datasets

    for name in datasets.DATASETS:
        if name != exclude:
            try:
                datasets.load_dataset(name, directory, download=False, progress=False, verify=True)
            except (datasets.MNISTError, OSError, ValueError):
                continue
            return name
    return None


def _train(args, parser, claim, console, stop):
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
    loaded = _load(args)
    if loaded is None:
        return EXIT_FAILED
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
        "backend": args.backend, "blas_threads": args.blas_threads_applied,
        "network_class": f"{network_class.__module__}.{network_class.__qualname__}",
        "dataset": args.dataset, "dataset_title": loaded.dataset.title,
        # Whether the four files have the dataset's canonical digests (checked even with --no-verify).
        "verified": bool(loaded.verified), "verify": not args.no_verify,
        "data_dir": args.data_dir, "data_directory": os.path.abspath(loaded.directory),
        loaded.dataset.env_var: os.environ.get(loaded.dataset.env_var),
        "train_samples": len(X_train), "test_samples": len(X_test), "test_image_index": img_idx,
        "out": os.path.abspath(out), "started_at": started_at.isoformat(timespec="seconds"),
        **environment.record(),
    }
    run = Run(out, config, untrained_loss, untrained_accuracy, loaded.dataset.classes)
    kept = LastFiniteWeights(network)

    try:
        with epoch_line(console, args.epochs) as line:
            recorder = Recorder(run, kept, line, args.epochs, probe=X_test[:PROBE_ROWS])
            try:
                claim.kept = True  # from here on the directory holds this run, whatever happens
                run.checkpoint()
                network.train(X_train, Y_train, X_test, y_test, batch_size=args.batch_size,
                              num_epochs=args.epochs, learning_rate=args.lr, verbose=False, callback=recorder)
            except TrainingInterrupted as err:
                run.stop("interrupted", err.epoch, err.batch, stop.received)
            except NonFiniteLossError as err:
                run.stop("non-finite loss", err.epoch, err.batch)
                print(f"{SAY} error: {err}", file=stderr())
            else:
                if kept.epoch == len(run.losses):
                    run.status = "completed"
                else:  # train raises for a last update that overflows; should that ever change, the run
                    # still says so and keeps the last finite weights rather than claiming "completed"
                    run.stop("non-finite loss", kept.epoch, None)
                    print(f"{SAY} error: an update of epoch {kept.epoch + 1} made some weights "
                          f"non-finite; try a smaller --lr", file=stderr())
    except KeyboardInterrupt:  # while train prepared its data, or after it returned and before the files are shielded
        run.stop("interrupted", len(run.losses), 0, stop.received)

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
    return _report(args, run, (stop.received or signal.SIGINT) if interrupt.requested else None, console)


def _report(args, run, signal_while_saving, console):
    """Say how the run ended and where its files are; return the exit code that matches its history."""
    for name, err in run.unsaved.items():
        print(f"{SAY} error: could not write {os.path.join(run.out, name)}: {err}", file=stderr())
    if "model.npz" in run.unsaved:
        print(f"{SAY} the weights after epoch {run.model_epoch} were saved instead to {run.model_saved_to}"
              if run.model_saved_to else f"{SAY} the trained weights could not be saved anywhere",
              file=stderr())
    if signal_while_saving is not None:
        print(f"{SAY} {'Ctrl-C' if signal_while_saving == signal.SIGINT else signal_while_saving.name} came while "
              f"the run was being saved; the files were finished first", file=stderr())
    stopped = None
    if run.signal is not None:
        where = f"at epoch {run.stopped_at['epoch']}" if run.stopped_at else "after the last epoch"
        stopped = f"{_stopped_by(signal.Signals[run.signal])} {where}"
    if run.status == "save failed":
        if stopped:
            print(f"{SAY} {stopped}, after {len(run.losses)} completed epochs of {args.epochs}", file=stderr())
        written = [name for name in run.files if name not in run.unsaved]
        print(f"{SAY} the run in {run.out} is incomplete: " + (
            f"{', '.join(written)} written there" if written else "nothing could be written there")
              + f"; {run.history_on_disk()}", file=stderr())
        return EXIT_FAILED
    if stopped:
        print(f"{SAY} {stopped}; kept {len(run.losses)} completed "
              f"epochs of {args.epochs}: history and the weights after epoch {run.model_epoch} saved in "
              f"{run.out}", file=stderr())
        return exit_code_of(signal.Signals[run.signal])
    if run.status == "non-finite loss":
        print(f"{SAY} the run so far is saved in {run.out}; model.npz holds the weights after epoch "
              f"{run.model_epoch}, the last finite ones", file=stderr())
        return EXIT_FAILED
    console.print(f"Run saved in {run.out} ({', '.join(RUN_FILES)}) in {run.total_seconds():.1f} s",
                  soft_wrap=True)
    return EXIT_OK


def epoch_line(console, num_epochs):
    """The live line of training: ``Epoch n/N``, the bar, loss, accuracy, seconds per epoch, elapsed, ETA."""
    return LiveLine(console, num_epochs, "Epoch", ["loss [red]{loss}[/] acc [blue]{accuracy}[/]", "{seconds}s/ep"],
                    loss="-", accuracy="-", seconds="-")


class Recorder:
    """The ``callback`` given to ``train``: records each epoch, keeps its weights, shows it, checkpoints.

    ``seconds_per_epoch`` counts the training and the validation of the epoch,
    not this callback's own output. The first epoch also holds ``train``'s
    setup (indexing the data, compiling on a first run), so the ETA is
    estimated from the epochs after it.

    A network that died (ReLU units that never fire again after a too large
    step: the loss exactly what it was and every output the same for every
    input of ``probe``) is said once; training goes on, as the tutorial's would.
    """

    def __init__(self, run, kept, line, num_epochs, probe):
        self.run, self.kept, self.line, self.num_epochs, self.probe = run, kept, line, num_epochs, probe
        self.dead_said = False
        self.mark = time.perf_counter()

    def __call__(self, epoch, loss, accuracy):
        seconds = time.perf_counter() - self.mark
        done = epoch + 1  # train counts from 0; the command, like history.csv, from 1
        self.run.add_epoch(loss, accuracy, seconds)
        self.kept.take(done)
        self.line.print("Epoch {:4d}: training loss = {:.6f} | val accuracy = {:.2f}% ({:.2f} s)".format(
            done, loss, accuracy * 100, seconds))
        self.line.update(done, loss=f"{loss:.6g}", accuracy=f"{accuracy:.2%}", seconds=f"{seconds:.2f}",
                         eta=eta(self.run.seconds_per_epoch, self.num_epochs))
        self._say_if_dead(done, loss)
        self.run.checkpoint()
        self.mark = time.perf_counter()

    def _say_if_dead(self, done, loss):
        losses = self.run.losses
        if self.dead_said or len(losses) < 2 or losses[-2] != loss:
            return
        outputs = self.kept.network.forward(self.probe)
        if (outputs == outputs[:1]).all():
            self.dead_said = True
            print(f"{SAY} warning: the network stopped learning in epoch {done}: its loss is exactly that of "
                  f"epoch {done - 1} and it gives every input the same outputs (its units are dead, as ReLU's are "
                  f"after too large a step); try a smaller --lr or another --activation", file=stderr())
