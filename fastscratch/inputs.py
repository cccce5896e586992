"""A call's data: ``train``'s arguments checked once, and each data set's claim on what is kept of it.

A ``DataClaim`` is what one call knows of one data set X (X_train, X_val, or
the rows of ``predict`` and ``evaluate_accuracy``) against the structure kept
with it (``kept_data``): nothing, a kept structure *assumed* to be X's (its
sampled rows matched), or one *proven* (compared in full, or built from X).
It takes its place in the store (``kept_data.KeptSlot``) once, and talks to
the store only through it. ``train`` starts its first epoch on an assumed
structure while the other core compares (``train_call``), then ``settle``s
the claim; a callback reopens it (the data may have been written into), and
the next epoch verifies it again.
"""
from typing import NamedTuple

import numpy as np

from fastscratch import _validation, buffers, config
from fastscratch.kept_data import Indexed
from fastscratch.kernels.structure import nonzero_fraction, nonzero_structure, samples_match, structure_matches


class DataClaim:
    """One call's claim on what is kept of the data set X (``name``: as messages call it; ``source``: the argument
    as the user gave it, with whose array the structure is kept; X: it, checked and converted).

    Attributes:
        entry: the ``kept_data.Indexed`` structure this call runs on, or None.
        proven (bool): ``entry`` was compared with X in full, or built from it (else it is assumed).
        finite (bool): False once X, found changed after a callback, holds NaN or inf: the rest of the call
            reads it as the reference does (sticky for the call).
    """

    def __init__(self, name, source, X, kept_data, indices_dtype, *, sample=True):
        """``sample``: look up what is kept now and compare ``3 * config.SAMPLE_ROWS`` of X's rows with it (start,
        middle, end). A match is assumed; a mismatch (another data set of the kept shape: shuffled, or new) is
        indexed at once, and proven if X is finite, so that no epoch runs in vain on it."""
        self.name, self.X = name, X
        self._source, self._kept_data = source, kept_data
        self._slot, self._indices_dtype = kept_data.slot(source, X, indices_dtype), indices_dtype
        self.entry, self.proven, self.finite = None, False, True
        self._buffers = None  # (the sizes they were built for, the buffers), dropped with the entry
        if sample:
            kept = self._slot.entry
            if kept is not None and samples_match(X, kept.indptr, kept.indices, kept.values, config.SAMPLE_ROWS):
                self.entry = kept
            elif kept is not None:
                built = Indexed(*nonzero_structure(X, indices_dtype), {})
                if _validation.all_finite(built.values):  # zeros are finite: X is finite when its nonzeros are
                    self.entry, self.proven = built, True
                    self._slot.store(built)

    @property
    def assumed(self):
        """Whether the call runs on a kept structure not yet compared with X in full."""
        return self.entry is not None and not self.proven

    def compare(self, threads=None):
        """Whether ``entry`` is X's structure (X's values compared exactly, so X is finite). A pure read, which
        changes nothing: it may run on another core while the epoch runs (``threads``: see
        ``structure.in_parts``)."""
        entry = self.entry
        return structure_matches(self.X, entry.indptr, entry.indices, entry.values, threads)

    def settle(self, same, edited):
        """Take a comparison's outcome (in the calling thread only): the same, the entry is proven; else it is
        dropped with what was built on it, and X is indexed anew when needed if finite; if not, after a callback
        (``edited``) X is read as the reference reads it (``finite`` False), and otherwise the reference's error
        is raised."""
        if same:
            self.proven = True
            return
        self.entry, self.proven, self._buffers = None, False, None
        if edited and not _validation.all_finite(self.X):
            self.finite = False
        else:
            _validation.check_finite(self.name, self.X)

    def reopen(self):
        """After a callback, which may have written into X: what was proven is assumed again."""
        self.proven = False

    def indexed(self, indices_dtype):
        """The ``Indexed`` structure of X for this index dtype: the claim's entry (an assumed one is the caller's
        to compare), else the kept one if it still describes X, else one built from X (which must be finite);
        kept either way."""
        entry = self.entry
        if entry is None or entry.indices.dtype != indices_dtype:
            if indices_dtype != self._indices_dtype:  # a callback replaced the layers: indices of another width
                self._slot = self._kept_data.slot(self._source, self.X, indices_dtype)
                self._indices_dtype = indices_dtype
            entry = self._slot.entry
            if entry is None or not structure_matches(self.X, entry.indptr, entry.indices, entry.values):
                entry = Indexed(*nonzero_structure(self.X, indices_dtype), {})
            self.entry, self.proven = entry, True
        self._slot.store(entry)
        return entry

    def buffers(self, sizes, build):
        """``build(entry)`` for layers of ``sizes`` (``buffers.epoch_buffers`` or ``forward_buffers``), kept while
        the sizes and the entry are the same."""
        kept = self._buffers
        if kept is None or kept[0] != sizes:
            self._buffers = kept = sizes, build(self.indexed(buffers.indices_dtype(sizes)))
        return kept[1]


def verify(claims, edited=False):
    """Compare each assumed claim with its data and settle it, in order (X_train's error before X_val's)."""
    for claim in claims:
        if claim is not None and claim.assumed:
            claim.settle(claim.compare(), edited)


class TrainInputs(NamedTuple):
    """``train``'s arguments, checked, with claims on X_train's and X_val's kept structures."""
    train: DataClaim
    y_train: np.ndarray
    val: DataClaim  # or None: no validation
    y_val: np.ndarray
    batch_size: int
    num_epochs: int
    learning_rate: float
    print_frequency: int
    nonzero_fraction: float  # X_train's, sampled: for the crossover (routing.past_crossover)


def prepare_train(network, X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate, print_frequency):
    """``train``'s arguments checked as the reference checks them, and the claims on X_train's and X_val's kept
    structures: X's values are proven here where nothing matching is kept, else by the comparison with the kept
    structure during the first epoch (``train_call``). The first error is the reference's: X_train's before the
    arguments checked after it, and before X_val's."""
    arguments = _checked_arguments(network, X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate,
                                   print_frequency)
    indices_dtype = buffers.indices_dtype(buffers.sizes_of(network))
    train = DataClaim("X_train", X_train, arguments.X_train, network.kept_data, indices_dtype)
    if train.entry is None:
        _validation.check_finite("X_train", train.X)
    val = None
    if arguments.X_val is not None:
        val = DataClaim("X_val", X_val, arguments.X_val, network.kept_data, indices_dtype)
        if val.entry is None and not _validation.all_finite(val.X):
            verify([train])  # X_train's error, if it has one, comes first
            _validation.check_finite("X_val", val.X)
    if arguments.num_epochs == 0:
        verify([train, val])
    return TrainInputs(train, arguments.y_train, val, arguments.y_val, arguments.batch_size, arguments.num_epochs,
                       arguments.learning_rate, arguments.print_frequency, nonzero_fraction(train.X))


def _checked_arguments(network, X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate,
                       print_frequency):
    """The reference's checks of ``train``'s arguments (``_validation.train_arguments``) but X_train's and X_val's
    finiteness, which ``prepare_train`` proves (a narrowing conversion is checked at once)."""
    network.check_layers()
    num_inputs, num_outputs, dtype = network.num_inputs, network.num_outputs, network.dtype
    try:
        X = _validation.as_input("X_train", X_train, num_inputs, dtype)
        _validation.check_rows("X_train", X, num_inputs)
        y = _validation.as_targets("y_train", y_train, num_outputs, len(X), dtype)
        sizes = _validation.check_train_args(len(X), batch_size, num_epochs, learning_rate)
        X_v, y_v = _validation.validation_pair(X_val, y_val)
        if X_v is not None:
            X_v = _validation.as_input("X_val", X_v, num_inputs, dtype)
            _validation.check_rows("X_val", X_v, num_inputs)
            y_v = _validation.as_labels("y_val", y_v, num_outputs, len(X_v))
        return _validation.TrainArguments(X, y, X_v, y_v, *sizes, _validation.check_size("print_frequency",
                                                                                          print_frequency))
    except (TypeError, ValueError):
        # The reference's checks in its order, X's values included: its first error is the one raised.
        _validation.train_arguments(num_inputs, num_outputs, dtype, X_train, y_train, X_val, y_val, batch_size,
                                    num_epochs, learning_rate, print_frequency)
        raise
