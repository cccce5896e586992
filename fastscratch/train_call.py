"""One ``train`` call of the drop-in: the reference's loop, each epoch as ``routing.route`` says, its data verified
beside it.

The loop is the reference's (same order of batches, log line, callback,
Ctrl-C and non-finite handling); what differs is how an epoch runs and what
is kept across epochs:

- each epoch is routed after the callback: one compiled call
  (``kernels.training.train_epoch``), or the batch loop, each layer as its
  ``LayerRoute`` says (``steps``);
- X_train's and X_val's structures come from what is kept with them
  (``inputs.DataClaim``). A structure kept from an earlier call is trusted
  only after a comparison with the array: during the first epoch, on the
  other core, with the weights put back and the epoch run again if it
  differed;
- the callback is a boundary: it may write into X_train or X_val, so what
  was proven of them becomes an assumption again, verified as above during
  the next epoch (not data the reference converted at the call: it trains
  on its copy, out of the callback's reach);
- without a callback, each evaluation but the last runs on a snapshot of the
  weights while the next epoch runs on another thread (``start_beside``):
  its line, its exceptions and a Ctrl-C still come before that epoch's
  result is taken, and undo that epoch where they stop the call.
"""
from concurrent.futures import Future, ThreadPoolExecutor
from typing import NamedTuple

import numba
import numpy as np

from fastscratch import buffers, inputs, prediction, routing, steps
from fastscratch._interrupt import deferred_sigint
from fastscratch.callables import checked_loss, checked_loss_derivative
from fastscratch.exceptions import NonFiniteLossError
from fastscratch.kernels.evaluation import count_equal, predict_classes
from fastscratch.kernels.training import train_epoch
from fastscratch.reference import epoch_line
from fastscratch.routing import Call, Way


def train(network, X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate, print_frequency, verbose,
          callback):
    """The reference's ``train`` loop, each epoch run as ``TrainCall.epoch`` routes it, or beside the evaluation
    before it (``TrainCall.start_beside``)."""
    # Checked and looked up before Ctrl-C is deferred: an interrupt while preparing is a plain KeyboardInterrupt.
    call = TrainCall(network, inputs.prepare_train(network, X_train, y_train, X_val, y_val, batch_size, num_epochs,
                                                   learning_rate, print_frequency))
    num_epochs, print_frequency = call.inputs.num_epochs, call.inputs.print_frequency
    losses, accuracies = [], []
    with deferred_sigint() as interrupt, call:
        ahead = None  # epoch i, started beside epoch i - 1's evaluation
        for i in range(num_epochs):
            if ahead is None:
                epoch_loss = call.epoch(i, interrupt, losses, accuracies)
            else:
                epoch_loss, ahead = call.join(ahead, i, interrupt, losses, accuracies), None
            losses.append(epoch_loss)
            try:
                if call.inputs.val is not None:
                    if callback is None and i + 1 < num_epochs:
                        ahead = call.start_beside(i + 1, interrupt)
                    accuracy = call.accuracy(ahead)
                    accuracies.append(accuracy)
                else:
                    accuracy = np.nan
                if verbose and (i % print_frequency == 0 or i == num_epochs - 1):
                    print(epoch_line(i, epoch_loss, accuracy))
            except BaseException:
                if ahead is not None:
                    call.put_back(ahead)  # as if the next epoch had not started, as in the reference
                raise
            if callback is not None:
                callback(i, epoch_loss, accuracy)
                call.after_callback()
        interrupt.check(losses, accuracies, num_epochs)  # a Ctrl-C during the last epoch is not lost
        # An overflow in the very last step has no next batch whose loss would show it.
        if num_epochs and not network.weights_finite():
            raise NonFiniteLossError(num_epochs, 0, np.nan, losses, accuracies, weights_finite=False)
    return losses, accuracies


class Ahead(NamedTuple):
    """An epoch started beside the evaluation of the one before (``TrainCall.start_beside``): its route, the
    future of its ``train_epoch`` result, and the evaluation's route."""
    route: routing.Route
    result: Future
    evaluation: routing.Route


class TrainCall:
    """One ``train`` call on its prepared inputs (``inputs.TrainInputs``); ``edited``: a callback has run, so
    that data found changed and non-finite is trained on as the reference trains on it, not refused."""

    def __init__(self, network, prepared):
        self.network = network
        self.inputs = prepared
        self.edited = False
        self._pool = None  # the thread of the epochs run beside an evaluation
        self._snapshot = None  # (weights, biases, classes): the evaluation's copies of the weights, its classes

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self._pool is not None:
            self._pool.shutdown()

    def epoch(self, i, interrupt, losses, accuracies):
        """Epoch ``i``, as routed now; its mean loss."""
        route = self._route()
        if route.way is Way.COMPILED_EPOCH:
            interrupt.check(losses, accuracies, i)
            result = self._compiled(route)
            if result is not None:
                return self._loss(i, route, result, losses, accuracies)
            route = self._route()  # X_train, changed by the callback, is not finite: the batch loop
        return self._batch_loop(route, i, interrupt, losses, accuracies)

    def _loss(self, i, route, result, losses, accuracies):
        """Epoch ``i``'s mean loss from ``train_epoch``'s result, its last batch left on the layers; or the
        reference's error at a non-finite loss."""
        loss_sum, bad_batch, bad_loss, _ = result
        if bad_batch >= 0:
            raise NonFiniteLossError(i, bad_batch, bad_loss, losses, accuracies,
                                     weights_finite=self.network.weights_finite())
        self._keep_last_batch(route)
        return self.network.dtype.type(loss_sum / self._num_batches())

    def start_beside(self, i, interrupt):
        """Start epoch ``i`` on another thread, beside the evaluation of epoch ``i - 1`` (on a snapshot of the
        weights, ``accuracy``), where nothing can observe the order: a second core (``numba.get_num_threads()``
        >= 2), both compiled, their data proven, no Ctrl-C pending (and the caller passes no callback). Returns
        the ``Ahead`` to ``join``, or None (then epoch ``i`` runs after the evaluation, as in the reference).

        Only Python code observes the order, and none runs in either: the evaluation's log line is printed,
        and its exceptions raised, in this thread before the epoch's result is taken; where one is raised, or
        Ctrl-C comes first, the weights are put back (``put_back``) as they were before epoch ``i``. The
        evaluation's last row is run through the layers first, as the reference's loop leaves it on them.
        """
        train, val = self.inputs.train, self.inputs.val
        if (min(numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS) < 2 or interrupt.requested
                or train.assumed or val.assumed or not (train.finite and val.finite)):
            return None
        route = self._route()
        if route.way is not Way.COMPILED_EPOCH:
            return None
        evaluation = self._evaluation_route()
        if evaluation.way is not Way.COMPILED_ROWS:
            return None
        self._val_buffers()  # built here, not while the epoch runs
        weights, biases, _ = self._snapshot_of(evaluation)
        for W, b, layer in zip(weights, biases, evaluation.layers):
            np.copyto(W, layer.W)
            np.copyto(b, layer.b)
        steps.forward(evaluation, val.rows_of(val.rows - 1, val.rows)[0])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="fastscratch-epoch")
        return Ahead(route, self._pool.submit(train_epoch, *self._epoch_arguments(route)), evaluation)

    def join(self, ahead, i, interrupt, losses, accuracies):
        """Epoch ``i``'s mean loss, once its thread is done; a Ctrl-C that came meanwhile stops the call before
        epoch ``i`` (the weights put back), as the reference's first check of that epoch does."""
        result = ahead.result.result()
        if interrupt.requested:
            self.put_back(ahead)
            interrupt.check(losses, accuracies, i)
        return self._loss(i, ahead.route, result, losses, accuracies)

    def put_back(self, ahead):
        """Wait for the epoch started ahead and undo it: the weights as the snapshot holds them."""
        ahead.result.exception()  # done, whatever its outcome: the weights are written no more
        weights, biases, _ = self._snapshot
        for W, b, layer in zip(weights, biases, ahead.evaluation.layers):
            layer.W[...], layer.b[...] = W, b

    def _snapshot_of(self, route):
        """The evaluation's buffers beside an epoch, allocated once per call: copies of each layer's W and b
        (filled by ``start_beside``) and the classes."""
        kept = self._snapshot
        shapes = [(layer.W.shape, layer.b.shape) for layer in route.layers]
        if kept is None or [(W.shape, b.shape) for W, b in zip(kept[0], kept[1])] != shapes:
            dtype = route.dtype
            self._snapshot = kept = (tuple(np.empty(W, dtype) for W, _ in shapes),
                                     tuple(np.empty(b, dtype) for _, b in shapes),
                                     np.empty(self.inputs.val.rows, np.int64))
        return kept

    def _route(self):
        self.network.check_layers()  # a callback may have replaced layers
        return routing.route(self.network, Call.EPOCH, self.inputs.batch_size, input_finite=self.inputs.train.finite,
                             nonzero_fraction=self.inputs.nonzero_fraction)

    def _num_batches(self):
        return self.inputs.train.rows // self.inputs.batch_size

    def _compiled(self, route):
        """Run one compiled epoch; ``train_epoch``'s result, or None when the epoch must run as the batch loop
        (X_train made non-finite by the callback).

        An epoch that starts on assumed structures reads them instead of X, while the other core compares
        X_train, then X_val, with them, within the epoch: no time of a one-epoch call goes to proving that they
        have not changed (with ``NUMBA_NUM_THREADS=1``, the comparisons come first). If X_train has changed, or
        X_val has and is not finite, the weights are put back, as if the epoch had not run, and the reference's
        checks follow: an error, or X indexed anew and the epoch run again.
        """
        train, val = self.inputs.train, self.inputs.val
        pending = [claim for claim in (train, val) if claim is not None and claim.assumed]
        if pending and numba.config.NUMBA_NUM_THREADS < 2:
            inputs.verify(pending, self.edited)  # one thread allowed: compare first
            pending = []
        if not pending:
            return self._run(route) if train.finite else None
        saved = [(layer.W.copy(), layer.b.copy()) for layer in route.layers]
        with ThreadPoolExecutor(1) as pool:
            comparison = pool.submit(lambda: [claim.compare(threads=1) for claim in pending])
            try:
                result = self._run(route)
            finally:
                same = dict(zip(pending, comparison.result()))  # joined before anything else, Ctrl-C included
        train_same = same.get(train, True)
        val_ok = val is None or same.get(val, True) or self.edited or val.all_finite()
        if not (train_same and val_ok):
            for layer, (W, b) in zip(route.layers, saved):
                layer.W[...], layer.b[...] = W, b
        for claim in pending:
            claim.settle(same[claim], self.edited)  # X_train first: its error before X_val's
        if train_same and val_ok:
            return result
        return self._run(route) if train.finite else None

    def _run(self, route):
        return train_epoch(*self._epoch_arguments(route))

    def _epoch_arguments(self, route):
        prepared = self.inputs
        return (prepared.y_train, prepared.batch_size, route.dtype.type(prepared.learning_rate), route.weights,
                route.biases, route.activation_codes, route.loss_code, self._buffers())

    def _buffers(self):
        """The compiled epoch's structures and buffers (``EpochWork``) for the network's sizes now."""
        sizes, dtype, batch_size = buffers.sizes_of(self.network), self.network.dtype, self.inputs.batch_size
        return self.inputs.train.buffers(sizes, lambda entry: buffers.epoch_buffers(entry, sizes, batch_size, dtype))

    def _keep_last_batch(self, route):
        """Leave the epoch's last step's x, y, dL_dW and dL_db on the layers, as the reference leaves them."""
        work, batch_size = self._buffers(), self.inputs.batch_size
        last = self._num_batches() - 1
        x = self.inputs.train.rows_of(last * batch_size, (last + 1) * batch_size)
        for layer, y, dz in zip(route.layers, work.ys, work.dzs):
            layer.layer.x, layer.layer.y = x, y.copy()
            steps.parameter_gradients(layer.layer, x, dz)  # no kernel to compile for a once-per-epoch product
            x = layer.layer.y

    def _batch_loop(self, route, i, interrupt, losses, accuracies):
        """The reference's batch loop, each layer as the route says; its mean loss."""
        prepared, network = self.inputs, self.network
        inputs.verify([prepared.train, prepared.val], self.edited)
        loss_function = checked_loss(network.loss_function)
        derivative = checked_loss_derivative(network.derivated_loss_function, network.dtype)
        X, Y, batch_size, num_batches = prepared.train.X, prepared.y_train, prepared.batch_size, self._num_batches()
        epoch_loss = 0
        for b in range(num_batches):
            interrupt.check(losses, accuracies, i, b)
            x = X[b * batch_size:(b + 1) * batch_size]
            targets = Y[b * batch_size:(b + 1) * batch_size]
            predictions = steps.forward(route, x)
            L = loss_function(predictions, targets)
            if not np.isfinite(L):
                raise NonFiniteLossError(i, b, L, losses, accuracies, weights_finite=network.weights_finite())
            steps.backward(route, derivative(predictions, targets), input_gradient_needed=False)
            steps.optimize(route, prepared.learning_rate)
            epoch_loss += L
        return epoch_loss / num_batches

    def accuracy(self, ahead=None):
        """The evaluation after an epoch, as routed now, on X_val's structure kept across epochs; beside the next
        epoch (``ahead``), on the snapshot of the weights, in this thread only."""
        prepared = self.inputs
        val = prepared.val
        if ahead is not None:
            weights, biases, classes = self._snapshot
            predict_classes(weights, biases, ahead.evaluation.activation_codes, self._val_buffers(), classes)
            return float(count_equal(classes, prepared.y_val) / val.rows)
        if val.assumed:
            inputs.verify([prepared.train, val], self.edited)
        route = self._evaluation_route()
        if route.way is not Way.COMPILED_ROWS:
            return prediction.accuracy(route, val.X, prepared.y_val, None)
        correct = np.count_nonzero(prediction.classes(route, self._val_buffers()) == prepared.y_val)
        # The reference's per-sample loop leaves the last sample's x and y on the layers.
        steps.forward(route, val.rows_of(val.rows - 1, val.rows)[0])
        return float(correct / val.rows)

    def _evaluation_route(self):
        val = self.inputs.val
        return routing.route(self.network, Call.EPOCH_ACCURACY, val.rows, input_finite=val.finite)

    def _val_buffers(self):
        """X_val's structure and the evaluation's buffers (``ForwardWork``) for the network's sizes now."""
        sizes, dtype = buffers.sizes_of(self.network), self.network.dtype
        return self.inputs.val.buffers(sizes, lambda entry: buffers.forward_buffers(entry, sizes, dtype))

    def after_callback(self):
        """The callback may have written into X_train or X_val: what was proven of them is assumed again, and
        verified during (or before) the next epoch, or before the next evaluation."""
        self.edited = True
        for claim in (self.inputs.train, self.inputs.val):
            if claim is not None:
                claim.reopen()
