"""Exceptions raised by training."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped ``train`` at a batch or epoch boundary.

    It is a ``KeyboardInterrupt``, so scripts that did not expect it still stop
    as before; the network's weights are consistent (every layer updated for
    the same batches) and the history so far is kept here.

    Attributes:
        losses (list): training loss of each completed epoch.
        accuracies (list): validation accuracy of each completed epoch.
        epoch (int): the epoch that was running when training stopped.
    """

    def __init__(self, losses, accuracies, epoch):
        super().__init__(f"training interrupted during epoch {epoch} "
                         f"after {len(losses)} completed epochs")
        self.losses, self.accuracies, self.epoch = losses, accuracies, epoch


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; raised before that batch's update."""

    def __init__(self, epoch, batch, loss, losses, accuracies):
        super().__init__(f"training loss became non-finite ({loss}) at epoch {epoch}, batch {batch}; "
                         f"the weights are those before this batch's update. "
                         f"Try a smaller learning_rate.")
        self.epoch, self.batch, self.loss = epoch, batch, loss
        self.losses, self.accuracies = losses, accuracies
