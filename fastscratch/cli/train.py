"""``fastscratch train``: the tutorial's MNIST script as a command.

With no options it does what section 4 of the tutorial does, in the same
order (so with the same random draws): seed NumPy with 42, load MNIST, draw
the index of the test image to show, prepare the data, build a 784-64-32-10
sigmoid network with the L2 loss, report its untrained loss (training set)
and accuracy (test set), train 500 epochs with batch 30 and lr 1e-3, and
predict the drawn test image. That job is ``fastscratch.tutorial.run``; around
it the command adds a live progress display, a run directory holding the
history, the weights and the two plots, and its error messages and exit codes.
``--resume DIR`` continues a run where it stopped (``cli/resume.py``).

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
from typing import NamedTuple

from fastscratch import environment
from fastscratch._interrupt import StopSignals
from fastscratch.cli import options, resume
from fastscratch.cli.memory import memory_problem, parameter_bytes
from fastscratch.cli.options import EXIT_FAILED, EXIT_OK, PROG, exit_code_of
from fastscratch.cli.output import stderr, stdout
from fastscratch.cli.progress import LiveLine, eta
from fastscratch.cli.record import RUN_FILES, Run, remove_temporaries
from fastscratch.cli.rundir import CLAIM, RunDirectoryError, claim_run_directory, claim_run_to_resume
from fastscratch.cli.text import byte_count, layer_sizes
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
    "as 'Epoch 0'. --resume DIR continues a stopped run (or a finished one, to a larger --epochs) and ends with "
    "the files an uninterrupted run writes. Exit codes: 0 done; 1 failed (the data, an overflow, a file not "
    "saved); 2 a bad option, --out or --resume; 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP, each after saving the last "
    "whole epoch.")


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
    where = train.add_mutually_exclusive_group()
    where.add_argument("--out", metavar="DIR",
                       help="run directory: created, or an existing empty one; "
                            "default: a new runs/<timestamp>")
    where.add_argument("--resume", metavar="DIR",
                       help="continue the run in DIR where it stopped (Ctrl-C, SIGTERM, SIGHUP), or a finished "
                            "one to a larger --epochs; options left out are the run's, options given must match "
                            "them")
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
    if args.resume is not None:  # the run's own options; those given must be the same
        given = options.given(parser, args.argv[1:])
        try:
            resume.take_options(resume.read_history(args.resume), args, given)
        except resume.ResumeError as err:
            parser.error(f"argument --resume: {err}")
        if "data_dir" not in given and args.data_dir is not None and not os.path.isdir(args.data_dir):
            parser.error(f"argument --resume: the run's data directory {args.data_dir} is gone; "
                         f"pass --data-dir with its files")
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
            claim = claim_run_directory(args.out) if args.resume is None else claim_run_to_resume(args.resume)
        except RunDirectoryError as err:
            parser.error(f"argument {'--out' if args.resume is None else '--resume'}: {err}")
        except KeyboardInterrupt:  # the claim leaves nothing behind when it does not complete
            return _stopped_before_training(stop, None, args.resume)
        if claim.took_over is not None:
            pid = claim.took_over.strip()
            print(f"{SAY} note: {claim.path} held the {CLAIM} marker of a run that is gone"
                  + (f" (process {pid})" if pid.isdigit() else "") + "; this run takes it over", file=stderr())
        try:
            if args.resume is None:
                return _train(args, parser, claim, console, stop)
            return _resume(args, parser, claim, console, stop)
        except KeyboardInterrupt:  # before training started: from then on _train keeps what was done
            return _stopped_before_training(stop, claim, args.resume)
        except MemoryError:
            weights = byte_count(parameter_bytes(sizes, args.dtype))
            print(f"{SAY} error: out of memory for a {layer_sizes(sizes)} {args.dtype} network "
                  f"and its outputs over the data (the weights alone need {weights}); try smaller --hidden sizes"
                  + (f"; {claim.path} holds the run as last checkpointed" if claim.holds_run else ""), file=stderr())
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


def _stopped_before_training(stop, claim, resumed):
    """Say that a signal stopped the command before ``_train`` could keep the run; return the exit code."""
    signum = stop.received or signal.SIGINT
    print(f"{SAY} {_stopped_by(signum)}" + (
        f"; {claim.path} holds the run as last checkpointed" if claim is not None and claim.holds_run else
        f" before training resumed; {resumed} is as it was" if resumed is not None else
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


def _resume(args, parser, claim, console, stop):
    """Continue the run in the claimed directory from where it stopped; return the exit code."""
    from fastscratch import tutorial

    try:
        history = resume.read_history(claim.path)  # again, now that no other run can change it
        epoch = resume.start_epoch(claim.path, history)
        done = history["completed_epochs"]
        if history["status"] == "completed" and args.epochs <= done or args.epochs < epoch:
            console.print(f"Nothing to do: {claim.path} holds " + (
                f"a completed run of {done} epochs; pass a larger --epochs to train it on"
                if history["status"] == "completed" else
                f"the weights after epoch {epoch}, more than the {args.epochs} asked"), soft_wrap=True)
            return EXIT_OK
        network = resume.read_model(claim.path, history, tutorial.network_class(args.backend))
    except resume.ResumeError as err:
        parser.error(f"argument --resume: {err}")
    # Nothing is drawn again: the shown image and the weights are the run's.
    point = tutorial.Resume(network, history["config"]["test_image_index"], history["untrained_loss"],
                            history["untrained_accuracy"], history["losses"][:epoch], history["accuracies"][:epoch])
    return _train(args, parser, claim, console, stop, Continued(history, point))


class Continued(NamedTuple):
    """A run being resumed: its record as it was, and where ``tutorial.run`` continues it from."""
    history: dict
    point: object  # tutorial.Resume


def _compile_notice(args, console):
    """Kernels compiled during the run say so among the run's own lines (none under --quiet)."""
    if args.backend == "reference":  # compiles nothing: load no Numba
        return contextlib.nullcontext()
    from fastscratch import kernel_cache
    return kernel_cache.compiles_told_to(console.print)


def _train(args, parser, claim, console, stop, continued=None):
    """The tutorial's job (``fastscratch.tutorial.run``) in the claimed directory; return the exit code."""
    from fastscratch import tutorial
    from fastscratch._interrupt import deferred_sigint
    from fastscratch.exceptions import NonFiniteLossError

    started_at = datetime.datetime.now(datetime.timezone.utc)
    loaded = _load(args)  # before tutorial.run seeds np.random: loading draws nothing from it
    if loaded is None:
        return EXIT_FAILED
    if args.batch_size > len(loaded[0]):
        parser.error(f"argument --batch-size: {args.batch_size} is larger than the "
                     f"{len(loaded[0])} training samples")
    if continued is not None:
        try:
            resume.check_data(claim.path, continued.history, loaded)
        except resume.ResumeError as err:
            parser.error(f"argument --resume: {err}")

    recorder = Recorder(args, claim, console, loaded, started_at, continued)
    result, stopped_after_run = None, False
    try:
        with recorder.live, _compile_notice(args, console):
            result = tutorial.run(
                load=lambda: loaded, seed=args.seed, dtype=args.dtype, hidden_layers_sizes=args.hidden,
                activation=args.activation, loss=args.loss, backend=args.backend, num_epochs=args.epochs,
                batch_size=args.batch_size, learning_rate=args.lr, on_start=recorder.start, callback=recorder,
                resume=None if continued is None else continued.point)
    except KeyboardInterrupt:  # as the live line ended, after run returned: before the files are shielded
        if result is None:
            raise
        stopped_after_run = True
    if not claim.holds_run:  # stopped while the record was being made: nothing of this run is in the directory
        return _stopped_before_training(stop, claim, args.resume)

    run = recorder.run
    if isinstance(result.stopped, NonFiniteLossError):
        run.stop("non-finite loss", *result.stopped_at)
        print(f"{SAY} error: {result.stopped}", file=stderr())
    elif result.stopped is not None:
        run.stop("interrupted", *result.stopped_at, stop.received)
    elif result.model_epoch == len(run.losses):
        run.status = "completed"
    else:  # train raises for a last update that overflows; should that ever change, the run still says
        # so and keeps the last finite weights rather than claiming "completed"
        run.stop("non-finite loss", result.model_epoch, None)
        print(f"{SAY} error: an update of epoch {result.model_epoch + 1} made some weights "
              f"non-finite; try a smaller --lr", file=stderr())
    if stopped_after_run:
        run.stop("interrupted", len(run.losses), 0, stop.received)

    with deferred_sigint() as interrupt:  # a Ctrl-C now would leave half a run: finish the files first
        run.model_epoch = result.model_epoch
        console.print("Predicted class: {}; Correct class: {}".format(
            run.class_label(result.predicted_class), run.class_label(result.true_class)))
        classes = loaded.dataset.classes
        run.prediction = {"test_image_index": result.image_index, "predicted_class": result.predicted_class,
                          "correct_class": result.true_class, "predicted_name": classes[result.predicted_class],
                          "correct_name": classes[result.true_class]}
        run.save(result.network, recorder.image)
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
    """The hooks given to ``tutorial.run``: ``start`` makes the run's record as training starts; then, as
    ``callback``, it records each epoch, shows it and checkpoints.

    ``seconds_per_epoch`` counts the training and the validation of the epoch,
    not this callback's own output. The first epoch also holds ``train``'s
    setup (indexing the data, compiling on a first run), so the ETA is
    estimated from the epochs after it. The live line is entered into
    ``live``, which the caller ends once ``tutorial.run`` returns.

    A network that died (ReLU units that never fire again after a too large
    step: the loss exactly what it was and every output the same for every
    input of ``probe``) is said once; training goes on, as the tutorial's would.
    """

    def __init__(self, args, claim, console, loaded, started_at, continued):
        self.args, self.claim, self.console, self.loaded = args, claim, console, loaded
        self.started_at, self.continued = started_at, continued
        self.live = contextlib.ExitStack()
        self.run = self.line = self.network = self.probe = self.image = None
        self.dead_said = False

    def start(self, setup):
        args, loaded, out = self.args, self.loaded, self.claim.path
        if self.continued is None:
            self.console.print("Untrained : training loss = {:.6f} | val accuracy = {:.2f}%".format(
                setup.untrained_loss, setup.untrained_accuracy * 100))
            self.run = Run(out, _config(args, loaded, setup, out, self.started_at), setup.untrained_loss,
                           setup.untrained_accuracy, loaded.dataset.classes)
        else:
            self.console.print(f"Resuming the run in {out} after epoch {setup.epochs_done}, to epoch {args.epochs}",
                               soft_wrap=True)
            resumed = {"command": shlex.join([PROG, *args.argv]), "from_epoch": setup.epochs_done,
                       "epochs": args.epochs, "blas_threads": args.blas_threads_applied,
                       "data_directory": os.path.abspath(loaded.directory), "verified": bool(loaded.verified),
                       "started_at": self.started_at.isoformat(timespec="seconds"),
                       "environment": environment.record()}
            self.run = Run.resumed(out, self.continued.history, setup.network, setup.epochs_done, args.epochs,
                                   resumed, loaded.dataset.classes)
            remove_temporaries(out)  # half-written files of a process killed while saving
        self.network, self.probe, self.image = setup.network, setup.X_test[:PROBE_ROWS], setup.image
        self.line = self.live.enter_context(epoch_line(self.console, args.epochs))
        self.line.update(setup.epochs_done)
        self.mark = time.perf_counter()
        self.claim.holds_run = True  # from here on the directory holds this run, whatever happens
        self.run.checkpoint()

    def __call__(self, epoch, loss, accuracy):
        seconds = time.perf_counter() - self.mark
        done = epoch + 1  # train counts from 0; the command, like history.csv, from 1
        self.run.add_epoch(loss, accuracy, seconds)
        self.line.print("Epoch {:4d}: training loss = {:.6f} | val accuracy = {:.2f}% ({:.2f} s)".format(
            done, loss, accuracy * 100, seconds))
        self.line.update(done, loss=f"{loss:.6g}", accuracy=f"{accuracy:.2%}", seconds=f"{seconds:.2f}",
                         eta=eta(self.run.seconds_per_epoch, self.args.epochs))
        self._say_if_dead(done, loss)
        self.run.checkpoint()
        self.mark = time.perf_counter()

    def _say_if_dead(self, done, loss):
        losses = self.run.losses
        if self.dead_said or len(losses) < 2 or losses[-2] != loss:
            return
        outputs = self.network.forward(self.probe)
        if (outputs == outputs[:1]).all():
            self.dead_said = True
            print(f"{SAY} warning: the network stopped learning in epoch {done}: its loss is exactly that of "
                  f"epoch {done - 1} and it gives every input the same outputs (its units are dead, as ReLU's are "
                  f"after too large a step); try a smaller --lr or another --activation", file=stderr())


def _config(args, loaded, setup, out, started_at):
    """The ``config`` of a new run's history: every option, the data and where it came from, the environment."""
    from fastscratch import tutorial

    network_class = tutorial.network_class(args.backend)
    return {
        "command": shlex.join([PROG, *args.argv]),
        "epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr,
        "hidden": list(args.hidden),
        "layer_sizes": [int(setup.X_train.shape[1]), *args.hidden, NUM_CLASSES],
        "activation": args.activation, "loss": args.loss, "seed": args.seed, "dtype": args.dtype,
        "backend": args.backend, "blas_threads": args.blas_threads_applied,
        "network_class": f"{network_class.__module__}.{network_class.__qualname__}",
        "dataset": args.dataset, "dataset_title": loaded.dataset.title,
        # Whether the four files have the dataset's canonical digests (checked even with --no-verify).
        "verified": bool(loaded.verified), "verify": not args.no_verify,
        "data_sha256": {file.name: digest for file, digest in zip(loaded.dataset.files, loaded.sha256)},
        "data_dir": args.data_dir, "data_directory": os.path.abspath(loaded.directory),
        loaded.dataset.env_var: os.environ.get(loaded.dataset.env_var),
        "train_samples": len(setup.X_train), "test_samples": len(setup.X_test),
        "test_image_index": setup.image_index,
        "out": os.path.abspath(out), "started_at": started_at.isoformat(timespec="seconds"),
        **environment.record(),
    }
