"""One ``train`` call of the drop-in: its epochs, compiled or batch by batch, and the proof that its data is
what the kept structures say.

The loop is the reference's (same order of batches, log line, callback,
Ctrl-C and non-finite handling); what differs is how an epoch runs and what
is kept across epochs:

- an epoch runs as ``routing.route`` decides, after the callback: as one
  compiled call (``kernels.training.train_epoch``), or batch by batch, each
  layer as its ``LayerRoute`` says (``steps``);
- X_train's and X_val's structures come from what is kept with them
  (``kept_data``). A structure kept from an earlier call is trusted only
  after a comparison with the array: during the first epoch, on the other
  core, with the weights put back and the epoch run again if it differed;
- the callback is a boundary: it may write into X_train or X_val, so what
  was proven of them becomes an assumption again, verified as above during
  the next epoch.
"""
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from fastscratch import _validation as check
from fastscratch import prediction, routing, steps
from fastscratch._interrupt import deferred_sigint
from fastscratch.callables import checked_loss, checked_loss_derivative
from fastscratch.exceptions import NonFiniteLossError
from fastscratch.kernels.structure import index_dtype, nonzero_fraction
from fastscratch.kernels.training import EpochWork, train_epoch
from fastscratch.kept_data import batches_of, describes
from fastscratch.reference import epoch_line


class Session:
    """What one ``train`` call keeps across epochs, built when first needed and rebuilt if the layer
    sizes change: X's structures and the epoch's buffers, and the validation set's structure."""

    def __init__(self, network, X_train, X_val, batch_size, places):
        """X_train's and X_val's finiteness is this object's to prove: by the comparison with a kept structure
        during the first epoch (``epoch``, ``verify``), or, where no kept structure may match, here. ``places``:
        where X_train's and X_val's structures are looked up and kept (``kept_data.Place``)."""
        self.network, self.X_train, self.X_val, self.batch_size = network, X_train, X_val, batch_size
        self.kept, self.val_kept = places
        self._work = self._val_work = self._known = self._val_known = None
        # After a callback, data found non-finite is trained on and evaluated as the reference does (a
        # NonFiniteLossError at its batch, NaN rows counted as NumPy's argmax counts them), not refused.
        self.edited = self.batch_by_batch = self.val_numpy = False
        self.nonzero_fraction = nonzero_fraction(X_train)
        indices_dtype = prediction.indices_dtype(prediction.sizes_of(network))
        self._assumed = self.kept.sampled_match(X_train, indices_dtype)
        self._val_assumed = None if X_val is None else self.val_kept.sampled_match(X_val, indices_dtype)
        if self._assumed is None:
            check.check_finite("X_train", X_train)
        if X_val is not None and self._val_assumed is None and not check.all_finite(X_val):
            self.verify()  # X_train's error, if it has one, comes first, as in the reference
            check.check_finite("X_val", X_val)

    def verify(self):
        """Finish the checks of X_train and X_val before anything reads them: compare each with the structure
        assumed for it, and test its values directly if that differs."""
        self._accept(*self._compare(self._assumed, self._val_assumed))

    def _compare(self, assumed, val_assumed, threads=None):
        """Whether X_train and X_val still match the structures assumed for them (True where there is none)."""
        return (assumed is None or describes(assumed, self.X_train, threads),
                val_assumed is None or describes(val_assumed, self.X_val, threads))

    def _accept(self, same, val_same):
        """Take the comparisons' outcome: keep the structures that matched, drop what was built on the others
        and check their values (raising the reference's error for a non-finite one, X_train's first)."""
        assumed, val_assumed = self._assumed, self._val_assumed
        self._assumed = self._val_assumed = None
        if assumed is not None:
            self._known = assumed if same else None
            if not same:
                self._work = None
                self.batch_by_batch = self._read_as_the_reference("X_train", self.X_train) or self.batch_by_batch
        if val_assumed is not None:
            self._val_known = val_assumed if val_same else None
            if not val_same:
                self._val_work = None
                self.val_numpy = self._read_as_the_reference("X_val", self.X_val) or self.val_numpy

    def _read_as_the_reference(self, name, X):
        """Whether X, found changed, must be read as the reference reads it: made non-finite by a callback. Data
        non-finite otherwise gets the reference's error up front."""
        if self.edited and not check.all_finite(X):
            return True
        check.check_finite(name, X)
        return False

    def after_callback(self):
        """The callback may have written into X_train or X_val: what was proven of them is assumed again,
        and verified during (or before) the next epoch, or before the next evaluation."""
        self.edited = True
        if self._known is not None:
            self._assumed, self._known = self._known, None
        if self._val_known is not None:
            self._val_assumed, self._val_known = self._val_known, None

    def epoch_route(self):
        """The route of the next epoch (``Way.COMPILED_EPOCH`` or ``Way.BATCH_LOOP``)."""
        self.network.check_layers()  # a callback may have replaced layers
        return routing.route(self.network, routing.Call.EPOCH, self.batch_size, input_finite=not self.batch_by_batch,
                             nonzero_fraction=self.nonzero_fraction)

    def work(self):
        """The compiled epoch's structures and buffers (``EpochWork``) for the network's sizes now."""
        sizes, dtype, batch_size = prediction.sizes_of(self.network), self.network.dtype, self.batch_size
        if self._work is None or self._work[0] != sizes:
            structure, entry = prediction.structure(self.X_train, sizes, self.kept, self._known)
            self._known = entry  # compared with X_train or built from it just now
            offsets_dtype = index_dtype(batch_size * max(sizes[:-1]) + 1)
            outputs = prediction.outputs
            work = EpochWork(
                outputs(sizes, batch_size, dtype), outputs(sizes, batch_size, dtype),
                tuple(np.empty((b, a), dtype=dtype) for a, b in zip(sizes[:-1], sizes[1:])), structure,
                batches_of(entry, sizes[0], batch_size, offsets_dtype),
                tuple(np.empty((width, batch_size), dtype=dtype) for width in sizes[:-1]),
                tuple(np.empty(size, dtype=dtype) for size in sizes[1:]))
            self._work = sizes, work
        return self._work[1]

    def val_work(self):
        """The compiled evaluation's structure and buffers for X_val (verified first if it is only assumed)."""
        if self._val_assumed is not None:
            self.verify()
        sizes = prediction.sizes_of(self.network)
        if self._val_work is None or self._val_work[0] != sizes:
            work, self._val_known = prediction.forward_work(self.X_val, sizes, self.network.dtype, self.val_kept,
                                                            self._val_known)
            self._val_work = sizes, work
        return self._val_work[1]

    def epoch(self, route, y_train, learning_rate):
        """Run one compiled epoch; ``train_epoch``'s result, or None when the epoch must run batch by batch
        (X_train made non-finite by the callback).

        An epoch that starts on assumed structures reads them instead of X, while the other core compares
        X_train, then X_val, with them (``verify``), within the epoch: no time of a one-epoch call goes to
        proving that they have not changed (with ``NUMBA_NUM_THREADS=1``, the comparisons come first). If
        X_train has changed, or X_val has and is not finite, the weights are put back, as if the epoch had
        not run, and the reference's checks follow: an error, or X indexed anew and the epoch run again.
        """
        if (self._assumed is not None or self._val_assumed is not None) and numba.config.NUMBA_NUM_THREADS < 2:
            self.verify()  # one thread allowed: compare first
        if self._assumed is None and self._val_assumed is None:
            return self._run(route, y_train, learning_rate)
        saved = [(layer.W.copy(), layer.b.copy()) for layer in route.layers]
        if self._assumed is not None:
            self._known = self._assumed
        with ThreadPoolExecutor(1) as pool:
            comparison = pool.submit(self._compare, self._assumed, self._val_assumed, 1)
            try:
                result = self._run(route, y_train, learning_rate)
            finally:
                same, val_same = comparison.result()
        if not same:
            self._known = self._work = None
        val_finite = val_same or check.all_finite(self.X_val)
        if not val_same and val_finite:
            self._val_assumed = self._val_known = self._val_work = None  # changed, but finite: indexed anew
        if same and (val_finite or self.edited):
            self._accept(same, val_same)
            return result
        for layer, (W, b) in zip(route.layers, saved):
            layer.W[...], layer.b[...] = W, b
        self._accept(same, val_same)
        return None if self.batch_by_batch else self._run(route, y_train, learning_rate)

    def _run(self, route, y_train, learning_rate):
        return train_epoch(y_train, self.batch_size, route.dtype.type(learning_rate), route.weights, route.biases,
                           route.activation_codes, route.loss_code, self.work())

    def keep_last_batch(self, route):
        """Leave the epoch's last step's x, y, dL_dW and dL_db on the layers, as the reference leaves them."""
        work = self.work()
        last = len(self.X_train) // self.batch_size - 1
        x = self.X_train[last * self.batch_size:(last + 1) * self.batch_size]
        for layer, y, dz in zip(route.layers, work.ys, work.dzs):
            layer.layer.x, layer.layer.y = x, y.copy()
            steps.parameter_gradients(layer.layer, x, dz)  # no kernel to compile for a once-per-epoch product
            x = layer.layer.y


def train(network, X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate, print_frequency, verbose,
          callback, places):
    """The reference's ``train`` loop on checked arguments (X_train's and X_val's finiteness left to
    ``Session``), each epoch run as ``Session.epoch_route`` decides; ``places``: see ``Session``."""
    session = Session(network, X_train, X_val, batch_size, places)
    if num_epochs == 0:
        session.verify()
    do_validation = X_val is not None and y_val is not None
    losses, accuracies = [], []
    with deferred_sigint() as interrupt:
        for i in range(num_epochs):
            epoch_loss = _epoch(network, session, i, y_train, learning_rate, interrupt, losses, accuracies)
            losses.append(epoch_loss)
            if do_validation:
                route = routing.route(network, routing.Call.EPOCH_ACCURACY, len(X_val),
                                      input_finite=not session.val_numpy)
                accuracy = prediction.accuracy(route, X_val, y_val, session.val_work)
                accuracies.append(accuracy)
            else:
                accuracy = np.nan
            if verbose and (i % print_frequency == 0 or i == num_epochs - 1):
                print(epoch_line(i, epoch_loss, accuracy))
            if callback is not None:
                callback(i, epoch_loss, accuracy)
                session.after_callback()
        interrupt.check(losses, accuracies, num_epochs)  # a Ctrl-C during the last epoch is not lost
        # An overflow in the very last step has no next batch whose loss would show it.
        if num_epochs and not network.weights_finite():
            raise NonFiniteLossError(num_epochs, 0, np.nan, losses, accuracies, weights_finite=False)
    return losses, accuracies


def _epoch(network, session, i, y_train, learning_rate, interrupt, losses, accuracies):
    """One epoch; its mean loss."""
    route = session.epoch_route()
    num_batches = len(session.X_train) // session.batch_size
    if route.way is routing.Way.COMPILED_EPOCH:
        interrupt.check(losses, accuracies, i)
        result = session.epoch(route, y_train, learning_rate)
        if result is not None:
            loss_sum, bad_batch, bad_loss, _ = result
            if bad_batch >= 0:
                raise NonFiniteLossError(i, bad_batch, bad_loss, losses, accuracies,
                                         weights_finite=network.weights_finite())
            session.keep_last_batch(route)
            return network.dtype.type(loss_sum / num_batches)
        route = session.epoch_route()  # X_train was made non-finite: the batch loop
    session.verify()
    loss_function = checked_loss(network.loss_function)
    derivative = checked_loss_derivative(network.derivated_loss_function, network.dtype)
    X_train, batch_size = session.X_train, session.batch_size
    epoch_loss = 0
    for b in range(num_batches):  # the reference's batch loop
        interrupt.check(losses, accuracies, i, b)
        x = X_train[b * batch_size:(b + 1) * batch_size]
        targets = y_train[b * batch_size:(b + 1) * batch_size]
        predictions = steps.forward(route, x)
        L = loss_function(predictions, targets)
        if not np.isfinite(L):
            raise NonFiniteLossError(i, b, L, losses, accuracies, weights_finite=network.weights_finite())
        steps.backward(route, derivative(predictions, targets), input_gradient_needed=False)
        steps.optimize(route, learning_rate)
        epoch_loss += L
    return epoch_loss / num_batches
