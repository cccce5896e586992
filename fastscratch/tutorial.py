"""The tutorial's MNIST job (section 4 of the seed) as one function, ``run``.

``run`` does what the seed's script does, in its order and so with its random
draws: seed ``np.random``, load the dataset, draw the index of the test image
it shows, prepare the data, build the network (its weights are the draws after
that index), compute the untrained loss (training set) and accuracy (test
set), train, and predict the drawn test image. ``fastscratch train``,
``benchmarks/seed_job.py`` and the seed-demo test run it; the command keeps
its run directory, records and error messages around it through two hooks:
``on_start`` (once, as training starts) and ``callback`` (after each epoch).

A run continues (``resume=``) from the weights, drawn test image and history
of an earlier one, and draws nothing: training walks the data in order,
without shuffling, so an epoch depends only on the weights the one before
left, and a run of 3 epochs continued for 3 more gives the numbers of a
6-epoch run, bit for bit.
"""
import dataclasses
from typing import NamedTuple

import numpy as np

import fastscratch
from fastscratch import datasets, reference
from fastscratch._interrupt import deferred_sigint
from fastscratch.exceptions import NonFiniteLossError, TrainingInterrupted
from fastscratch.functions import ACTIVATIONS, LOSSES

BACKENDS = ("jit", "reference")  # fastscratch.SimpleNetwork, fastscratch.reference.SimpleNetwork


class Resume(NamedTuple):
    """Where an earlier run stopped, to continue it: ``run(..., resume=Resume(...))``.

    ``network`` holds the weights after the last of ``losses``' epochs (it is
    trained further in place); ``image_index`` is the test image that run
    drew. A ``Result`` has the same attributes and may be passed instead.
    """
    network: object
    image_index: int
    untrained_loss: float
    untrained_accuracy: float
    losses: list
    accuracies: list


@dataclasses.dataclass(frozen=True)
class Setup:
    """What the script holds as training starts; ``on_start`` receives it.

    The data is prepared as the tutorial prepares it (``datasets.prepare``):
    ``X_train`` and ``X_test`` as (n, 784) rows in the network's dtype,
    ``Y_train`` one-hot, ``y_test`` class ids. ``image`` is the drawn test
    image as loaded (raw pixels), ``true_class`` its label. ``epochs_done``
    counts the epochs trained before this call: 0, or those of the run resumed.
    The untrained figures are None when ``run`` was told not to compute them.
    """
    network: object
    X_train: np.ndarray
    Y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    image_index: int
    image: np.ndarray
    true_class: int
    untrained_loss: float
    untrained_accuracy: float
    epochs_done: int


@dataclasses.dataclass(frozen=True)
class Result:
    """What ``run`` returns.

    ``losses`` and ``accuracies`` hold every epoch of the run (a resumed
    run's earlier ones first), as ``train`` returns them. ``model_epoch`` is
    the number of epochs whose training ``network``'s weights hold: all of
    them, unless training stopped (``stopped``: the ``KeyboardInterrupt``,
    ``TrainingInterrupted`` or ``NonFiniteLossError`` that stopped it) or its
    last update overflowed; then the weights are put back to the end of the
    last whole epoch that left them all finite. ``stopped_at`` is ``(epoch,
    batch)`` where training stopped (the epoch counted from 0 over the whole
    run, and equal to ``num_epochs`` for a stop after the last one), or None.
    ``predicted_class`` is the network's class for the drawn test image, with
    the weights it holds.
    """
    network: object
    image_index: int
    true_class: int
    untrained_loss: float
    untrained_accuracy: float
    losses: list
    accuracies: list
    predicted_class: int
    model_epoch: int
    stopped: BaseException
    stopped_at: tuple


def run(*, seed=42, dataset="mnist", data_dir=None, load=None, dtype=np.float64, hidden_layers_sizes=(64, 32),
        activation="sigmoid", loss="l2", backend="jit", num_epochs=500, batch_size=30, learning_rate=1e-3,
        untrained=True, verbose=False, on_start=None, callback=None, resume=None):
    """Run the tutorial's script; return its ``Result``. The defaults are the tutorial's run.

    Args:
        seed: seed of ``np.random``, set first as the script does.
        dataset, data_dir: the dataset to load (``datasets.load_dataset``:
            ``data_dir``, else its environment variable, the system's copy,
            the cache or a download), verified.
        load: instead, a callable that returns the four raw arrays
            ``(X_train, y_train, X_test, y_test)`` as ``load_dataset`` does
            (uint8 images); called where the script loads. ``run`` keeps
            nothing of them but the shown image once they are prepared.
        dtype: of the data and the network.
        hidden_layers_sizes, activation, loss: the network; ``activation`` and
            ``loss`` are names of built-ins (``functions.ACTIVATIONS``,
            ``functions.LOSSES``).
        backend: ``"jit"`` (``fastscratch.SimpleNetwork``) or
            ``"reference"`` (``fastscratch.reference.SimpleNetwork``).
        num_epochs, batch_size, learning_rate: ``train``'s.
        untrained: compute the untrained loss and accuracy (about two
            epochs' evaluation; the script does).
        verbose: print the script's lines: the untrained figures, the
            tutorial's log line of each epoch (numbered from 0, as ``train``'s
            log), the prediction.
        on_start: ``on_start(setup)``, called once with the ``Setup`` as
            training starts; a ``KeyboardInterrupt`` it raises is a stop.
        callback: ``callback(epoch, loss, accuracy)`` after each epoch, the
            epoch counted from 0 over the whole run (a resumed run's first
            new epoch is ``len(resume.losses)``).
        resume: a ``Resume`` (or ``Result``) of a run of the same settings:
            nothing is drawn (``seed`` is not used); the data is loaded and
            prepared, the untrained figures and history are the earlier run's,
            and training runs the epochs from ``len(resume.losses)`` to
            ``num_epochs``.

    A stop does not raise: Ctrl-C (``TrainingInterrupted``, or a
    ``KeyboardInterrupt`` while ``train`` sets up or ``on_start`` runs) and a
    non-finite loss end training; the weights are put back to the end of the
    last whole epoch that left them finite, the test image is predicted with
    them, and ``Result.stopped`` says what stopped it. A Ctrl-C while that
    prediction is made waits for it, and is a stop after the last epoch.

    Raises:
        ValueError: a bad setting (an unknown name, a batch larger than the
            training set, a ``resume`` of another network or of more epochs
            than ``num_epochs``); what loading and ``train`` raise.
    """
    cls = network_class(backend)
    activation_pair, loss_pair = _builtin(ACTIVATIONS, "activation", activation), _builtin(LOSSES, "loss", loss)
    dtype = np.dtype(dtype)
    hidden_layers_sizes = list(hidden_layers_sizes)
    if load is None:
        def load():
            return datasets.load_dataset(dataset, data_dir)
    if resume is None:
        np.random.seed(seed)
    else:
        _check_resume(resume, cls, dtype, hidden_layers_sizes, activation_pair, loss_pair, num_epochs)
    X_train, Y_train, X_test, y_test, image_index, image, true_class = _load_and_prepare(
        load, dtype, None if resume is None else resume.image_index)
    if batch_size > len(X_train):
        raise ValueError(f"batch_size {batch_size} is larger than the {len(X_train)} training samples")
    if resume is None:
        network = cls(num_inputs=X_train.shape[1], num_outputs=datasets.NUM_CLASSES,
                      hidden_layers_sizes=hidden_layers_sizes, activation_function=activation_pair[0],
                      derivated_activation_function=activation_pair[1], loss_function=loss_pair[0],
                      derivated_loss_function=loss_pair[1], dtype=dtype)
        untrained_loss = untrained_accuracy = None
        if untrained:
            predictions = network.forward(X_train)  # forward pass
            untrained_loss = float(network.loss_function(predictions, Y_train))  # loss computation
            del predictions
            untrained_accuracy = float(network.evaluate_accuracy(X_test, y_test))
        losses, accuracies = [], []
    else:
        network, untrained_loss, untrained_accuracy = resume.network, resume.untrained_loss, resume.untrained_accuracy
        losses, accuracies = list(resume.losses), list(resume.accuracies)
    if verbose and untrained_loss is not None:
        print("Untrained : training loss = {:.6f} | val accuracy = {:.2f}%".format(
            untrained_loss, untrained_accuracy * 100))

    epochs_done = len(losses)
    last_finite = _LastFiniteWeights(network, epochs_done)

    def after_epoch(epoch, loss, accuracy):
        epoch += epochs_done
        losses.append(loss)
        accuracies.append(accuracy)
        if verbose:
            print(reference.epoch_line(epoch, loss, accuracy))
        if callback is not None:
            callback(epoch, loss, accuracy)
        last_finite.take(epoch + 1)  # after the callback: the weights the next epoch starts from

    stopped = stopped_at = None
    try:
        if on_start is not None:
            on_start(Setup(network, X_train, Y_train, X_test, y_test, image_index, image, true_class,
                           untrained_loss, untrained_accuracy, epochs_done))
        if num_epochs > epochs_done:
            network.train(X_train, Y_train, X_test, y_test, batch_size=batch_size,
                          num_epochs=num_epochs - epochs_done, learning_rate=learning_rate, verbose=False,
                          callback=after_epoch)
    # What stopped training is kept without its traceback: its frames hold the data sets (hundreds of MB), which
    # the Result would keep alive, and this frame, holding the exception, would keep in a cycle until the next
    # garbage collection.
    except (TrainingInterrupted, NonFiniteLossError) as err:
        stopped, stopped_at = err.with_traceback(None), (epochs_done + err.epoch, err.batch)
    except KeyboardInterrupt as err:  # while train set up its data, or on_start ran
        stopped, stopped_at = err.with_traceback(None), (len(losses), 0)

    with deferred_sigint() as interrupt:  # the weights and the prediction must agree with the history
        if stopped is not None or last_finite.epoch != len(losses):
            last_finite.restore()
        # We use `np.expand_dims(x, 0)` to simulate a batch (transforming the image shape from (784,) to (1, 784)):
        predicted_class = int(network.predict(np.expand_dims(X_test[image_index], 0)))
    if interrupt.requested and stopped is None:
        stopped, stopped_at = KeyboardInterrupt(), (len(losses), 0)
    if verbose:
        print("Predicted class: {}; Correct class: {}".format(predicted_class, true_class))
    return Result(network, image_index, true_class, untrained_loss, untrained_accuracy, losses, accuracies,
                  predicted_class, last_finite.epoch, stopped, stopped_at)


def network_class(backend):
    """The network class of ``backend``: "jit" or "reference"."""
    if backend == "jit":
        return fastscratch.SimpleNetwork
    if backend == "reference":
        return reference.SimpleNetwork
    raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")


def _builtin(table, kind, name):
    if name not in table:
        raise ValueError(f"{kind} must be one of {', '.join(map(repr, table))}, got {name!r}")
    return table[name]


def _load_and_prepare(load, dtype, image_index):
    """The script's loading, its draw of the shown test image (when ``image_index`` is None) and preparation.

    The raw arrays go when this returns, but for a copy of the shown image.
    """
    X_train, y_train, X_test, y_test = load()
    if image_index is None:
        image_index = int(np.random.randint(0, X_test.shape[0]))  # drawn before the weights, as in the script
    elif not 0 <= image_index < len(X_test):
        raise ValueError(f"resume.image_index {image_index} is not an index of the {len(X_test)} test images")
    image, true_class = np.array(X_test[image_index]), int(y_test[image_index])
    return (*datasets.prepare(X_train, y_train, X_test, y_test, dtype=dtype), image_index, image, true_class)


def _check_resume(resume, cls, dtype, hidden_layers_sizes, activation_pair, loss_pair, num_epochs):
    """A ``ValueError`` naming what of ``resume`` differs from the settings asked for, if anything does."""
    network, done = resume.network, len(resume.losses)
    if len(resume.accuracies) != done:
        raise ValueError(f"resume has {done} losses but {len(resume.accuracies)} accuracies")
    if getattr(resume, "model_epoch", done) != done:
        raise ValueError(f"resume's network holds the weights of epoch {resume.model_epoch}, not of the last of "
                         f"its {done} epochs (its training stopped on non-finite weights)")
    if num_epochs < done:
        raise ValueError(f"num_epochs {num_epochs} is fewer than the {done} epochs resume has done")
    # The drop-in's class derives from the reference's: a drop-in network is not a reference one here.
    other_class = (not isinstance(network, cls)
                   or isinstance(network, fastscratch.SimpleNetwork) != (cls is fastscratch.SimpleNetwork))
    sizes = [network.num_inputs] + [layer.size for layer in network.layers]
    asked = [sizes[0], *hidden_layers_sizes, datasets.NUM_CLASSES]
    differences = [what for what, differs in (
        (f"the class {type(network).__module__}.{type(network).__qualname__}, not {cls.__module__}.{cls.__qualname__}",
         other_class),
        (f"layer sizes {sizes}, not {asked}", sizes != asked),
        (f"dtype {network.dtype}, not {dtype}", network.dtype != dtype),
        ("other activation functions", any((layer.activation_function, layer.derivated_activation_function)
                                           != tuple(activation_pair) for layer in network.layers)),
        ("another loss", (network.loss_function, network.derivated_loss_function) != tuple(loss_pair)))
        if differs]
    if differences:
        raise ValueError(f"resume's network is not the one asked for: it has {'; '.join(differences)}")


class _LastFiniteWeights:
    """A copy of a network's weights at the last epoch end where they were all finite.

    ``epoch`` counts the epochs those weights have been trained for. Taken
    after every epoch, it is what the network is put back to when training
    stops early or an update overflows: the weights whose epoch the history
    describes, and never weights that ``load`` refuses.
    """

    def __init__(self, network, epoch):
        self.network, self.epoch = network, epoch
        self.copies = [(layer.W.copy(), layer.b.copy()) for layer in network.layers]

    def take(self, epoch):
        if self.network.weights_finite():
            for layer, (W, b) in zip(self.network.layers, self.copies):
                np.copyto(W, layer.W)
                np.copyto(b, layer.b)
            self.epoch = epoch

    def restore(self):
        for layer, (W, b) in zip(self.network.layers, self.copies):
            layer.W[...] = W
            layer.b[...] = b
