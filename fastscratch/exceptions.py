"""Exceptions raised by training."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``train`` at a batch or epoch boundary.

    It is a ``KeyboardInterrupt``, so scripts that did not expect it still stop
    as before; the network's weights are consistent (every layer updated for
    the same batches) and the history so far is kept here. The network holds
    exactly the weights of ``epoch`` whole epochs followed by the first
    ``batch`` batches of the next one; training again from there is safe.

    Attributes:
        losses (list): training loss of each completed epoch.
        accuracies (list): validation accuracy of each completed epoch.
        epoch (int): the epoch that was running when training stopped (equal to
            ``num_epochs`` when Ctrl-C came during the last epoch's evaluation).
        batch (int): how many batches of that epoch were applied to the weights.
    """

    def __init__(self, losses, accuracies, epoch, batch=0):
        super().__init__(f"training interrupted at epoch {epoch}, batch {batch}, "
                         f"after {len(losses)} completed epochs")
        self.losses, self.accuracies, self.epoch, self.batch = losses, accuracies, epoch, batch

    def __reduce__(self):  # picklable (multiprocessing, joblib): rebuilt from the attributes, not the message
        return type(self), (self.losses, self.accuracies, self.epoch, self.batch)


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; raised before that batch's update.

    The network keeps the weights it had before the bad batch: those of
    ``epoch`` whole epochs and ``batch`` more batches. They are finite unless an
    earlier update itself overflowed (a learning rate near the float maximum),
    which ``weights_finite`` (when the raiser checked it) and the message say.

    Attributes:
        epoch (int), batch (int): where the loss became non-finite.
        loss (float): that loss.
        losses, accuracies (list): the history of the completed epochs.
        weights_finite (bool or None): whether the kept weights are all finite; None if not checked.
    """

    def __init__(self, epoch, batch, loss, losses, accuracies, weights_finite=None):
        kept = "the weights are those before this batch's update"
        if weights_finite is False:
            kept += (", but an earlier update already made some of them non-finite: rebuild the network "
                     "or load saved weights")
        super().__init__(f"training loss became non-finite ({loss}) at epoch {epoch}, batch {batch}; "
                         f"{kept}. Try a smaller learning_rate.")
        self.epoch, self.batch, self.loss = epoch, batch, loss
        self.losses, self.accuracies = losses, accuracies
        self.weights_finite = weights_finite

    def __reduce__(self):
        return type(self), (self.epoch, self.batch, self.loss, self.losses, self.accuracies, self.weights_finite)
