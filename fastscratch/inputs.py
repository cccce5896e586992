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
from fastscratch.kernels.structure import (COMPARED_DTYPES, nonzero_fraction, nonzero_structure, samples_match,
                                          structure_matches)


class DataClaim:
    """One call's claim on what is kept of the data set X (``name``: as messages call it; ``source``: the argument
    as the user gave it, with whose array the structure is kept; ``data``: it, checked; ``dtype``: the dtype
    the call reads it as, default ``data``'s).

    Data of another float dtype, C-contiguous (the tutorial's float64 images given to a float32 network), is
    not converted: it is compared with the kept structure as its values narrow (``structure_matches``, one
    pass, no copy), since a value that narrows to the same float32 trains the same. The reference trains on
    the copy it converts at the call, which no callback can write into: such a claim is not reopened after a
    callback, and its ``X`` (the converted array, for the paths that read it) is made from ``data`` until a
    callback has run, and from the proven structure after.

    Attributes:
        entry: the ``kept_data.Indexed`` structure this call runs on, or None.
        proven (bool): ``entry`` was compared with X in full, or built from it (else it is assumed).
        finite (bool): False once X, found changed after a callback, holds NaN or inf: the rest of the call
            reads it as the reference does (sticky for the call).
    """

    def __init__(self, name, source, data, kept_data, indices_dtype, *, dtype=None, sample=True):
        """``sample``: look up what is kept now and compare ``3 * config.SAMPLE_ROWS`` of X's rows with it (start,
        middle, end). A match is assumed; a mismatch (another data set of the kept shape: shuffled, or new) is
        indexed at once, and proven if X is finite, so that no epoch runs in vain on it."""
        self.name, self.dtype = name, np.dtype(dtype or data.dtype)
        self._data = data
        self._X = data if data.dtype == self.dtype else None  # the converted array, made when a path reads it
        self._frozen = False  # a callback has run since the call began: the reference reads its copy, not data
        self._source, self._kept_data = source, kept_data
        self._slot = kept_data.slot(source, data, indices_dtype, self.dtype)
        self._indices_dtype = indices_dtype
        self.entry, self.proven, self.finite = None, False, True
        self._buffers = None  # (the sizes they were built for, the buffers), dropped with the entry
        if sample:
            kept = self._slot.entry
            if kept is not None and samples_match(self._readable(), kept.indptr, kept.indices, kept.values,
                                                  config.SAMPLE_ROWS):
                self.entry = kept
            elif kept is not None:
                self._built_if_finite()

    @property
    def copied(self):
        """Whether the reference reads a copy of the data converted at the call (it is of another dtype)."""
        return self._data.dtype != self.dtype

    @property
    def rows(self):
        """X's number of rows."""
        return self._data.shape[0]

    @property
    def X(self):
        """The data as the reference reads it: the array itself, or its conversion, made when first read (after a
        callback, from the proven structure, which holds what the data held at the call)."""
        if self._X is None:
            if self._frozen:
                self._X = _dense(self.entry, 0, self.rows, self._data.shape[1], self.dtype)
            else:
                self._X = _validation.converted(self.name, self._data, self.dtype)
        return self._X

    def _built_if_finite(self):
        """Index X now (data of another dtype as it converts, without a copy) and, if it is finite, keep the
        structure, proven; whether it is."""
        built = Indexed(*nonzero_structure(self._readable(), self._indices_dtype, self.dtype), {})
        if not _validation.all_finite(built.values):  # zeros are finite: X is finite when its nonzeros are
            return False
        self.entry, self.proven = built, True
        self._slot.store(built)
        return True

    def prove_quietly(self):
        """Where nothing is kept: whether X is finite, without raising; copied data is indexed on the way (its
        one read), other data only read (it is indexed at the first epoch)."""
        return self._built_if_finite() if self.copied else _validation.all_finite(self.X)

    def prove(self):
        """``prove_quietly``, raising the reference's error (NaN or inf, or too large for ``dtype``) if X is not
        finite."""
        if not self.prove_quietly():
            _validation.check_finite(self.name, self.X)  # converting X raises first where it narrows

    def all_finite(self):
        """Whether ``X`` is finite (data too large for ``dtype`` is not), found without raising: the caller raises
        the reference's errors in the reference's order."""
        if self._X is None and not self._frozen:
            X = _quietly_converted(self._data, self.dtype)
            if not _validation.all_finite(X):
                return False
            self._X = X
        return _validation.all_finite(self.X)

    def rows_of(self, start, stop):
        """Rows ``start .. stop - 1`` of ``X``, without converting the others."""
        if self._X is not None:
            return self._X[start:stop]
        if self._frozen:
            return _dense(self.entry, start, stop, self._data.shape[1], self.dtype)
        return _validation.converted(self.name, self._data[start:stop], self.dtype)

    def _readable(self):
        """What a comparison reads: ``X`` where it exists, else the data, read as ``dtype`` entry by entry."""
        return self._data if self._X is None and not self._frozen else self.X

    def nonzero_fraction(self):
        """X's fraction of nonzero entries, sampled (``structure.nonzero_fraction``)."""
        return nonzero_fraction(self._readable(), self.dtype)

    @property
    def assumed(self):
        """Whether the call runs on a kept structure not yet compared with X in full."""
        return self.entry is not None and not self.proven

    def compare(self, threads=None):
        """Whether ``entry`` is X's structure (X's values compared exactly, so X is finite). A pure read, which
        changes nothing: it may run on another core while the epoch runs (``threads``: see
        ``structure.in_parts``)."""
        entry = self.entry
        return structure_matches(self._readable(), entry.indptr, entry.indices, entry.values, threads)

    def settle(self, same, edited):
        """Take a comparison's outcome (in the calling thread only): the same, the entry is proven; else it is
        dropped with what was built on it, and X is indexed anew when needed if finite; if not, after a callback
        (``edited``) X is read as the reference reads it (``finite`` False), and otherwise the reference's error
        is raised."""
        if same:
            self.proven = True
            return
        self.entry, self.proven, self._buffers = None, False, None
        if edited and not self.all_finite():
            self.finite = False
        else:
            _validation.check_finite(self.name, self.X)

    def reopen(self):
        """After a callback, which may have written into X: what was proven is assumed again. A copied claim's data
        is the reference's copy, out of the callback's reach: it stays proven, and ``X`` is from now on made from
        the proven structure (or made now, where none is proven)."""
        if not self.copied:
            self.proven = False
        elif not self._frozen:
            if self._X is None and not (self.entry is not None and self.proven):
                self._X = _validation.converted(self.name, self._data, self.dtype)
            self._frozen = True

    def indexed(self, indices_dtype):
        """The ``Indexed`` structure of X for this index dtype: the claim's entry (an assumed one is the caller's
        to compare), else the kept one if it still describes X, else one built from X (which must be finite);
        kept either way."""
        entry = self.entry
        if entry is None or entry.indices.dtype != indices_dtype:
            if indices_dtype != self._indices_dtype:  # a callback replaced the layers: indices of another width
                self._slot = self._kept_data.slot(self._source, self._data, indices_dtype, self.dtype)
                self._indices_dtype = indices_dtype
            entry = self._slot.entry
            if entry is None or not structure_matches(self._readable(), entry.indptr, entry.indices, entry.values):
                entry = Indexed(*nonzero_structure(self._readable(), indices_dtype, self.dtype), {})
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


def _quietly_converted(data, dtype):
    """``data`` as a C-contiguous ``dtype`` array, values too large becoming inf, without a warning or a check."""
    with np.errstate(over="ignore"):
        return np.ascontiguousarray(data, dtype=dtype)


def _dense(entry, start, stop, width, dtype):
    """Rows ``start .. stop - 1`` of the array whose CSR structure is ``entry``, as a new C-contiguous array."""
    indptr = entry.indptr[start:stop + 1]
    dense = np.zeros((stop - start, width), dtype=dtype)
    rows = np.repeat(np.arange(stop - start), np.diff(indptr))
    dense[rows, entry.indices[indptr[0]:indptr[-1]]] = entry.values[indptr[0]:indptr[-1]]
    return dense


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
    train = DataClaim("X_train", X_train, arguments.X_train, network.kept_data, indices_dtype, dtype=network.dtype)
    if train.entry is None:
        train.prove()
    val = None
    if arguments.X_val is not None:
        val = DataClaim("X_val", X_val, arguments.X_val, network.kept_data, indices_dtype, dtype=network.dtype)
        if val.entry is None and not val.prove_quietly():
            verify([train])  # X_train's error, if it has one, comes first
            _validation.check_finite("X_val", val.X)
    if arguments.num_epochs == 0:
        verify([train, val])
    return TrainInputs(train, arguments.y_train, val, arguments.y_val, arguments.batch_size, arguments.num_epochs,
                       arguments.learning_rate, arguments.print_frequency, train.nonzero_fraction())


def _checked_arguments(network, X_train, y_train, X_val, y_val, batch_size, num_epochs, learning_rate,
                       print_frequency):
    """The reference's checks of ``train``'s arguments (``_validation.train_arguments``) but X_train's and X_val's
    values, which ``prepare_train`` proves (``_train_input``: X_train and X_val may come back unconverted)."""
    network.check_layers()
    num_inputs, num_outputs, dtype = network.num_inputs, network.num_outputs, network.dtype
    try:
        X = _train_input("X_train", X_train, num_inputs, dtype)
        _validation.check_rows("X_train", X, num_inputs)
        y = _validation.as_targets("y_train", y_train, num_outputs, len(X), dtype)
        sizes = _validation.check_train_args(len(X), batch_size, num_epochs, learning_rate)
        X_v, y_v = _validation.validation_pair(X_val, y_val)
        if X_v is not None:
            X_v = _train_input("X_val", X_v, num_inputs, dtype)
            _validation.check_rows("X_val", X_v, num_inputs)
            y_v = _validation.as_labels("y_val", y_v, num_outputs, len(X_v))
        return _validation.TrainArguments(X, y, X_v, y_v, *sizes, _validation.check_size("print_frequency",
                                                                                          print_frequency))
    except (TypeError, ValueError):
        # The reference's checks in its order, X's values included: its first error is the one raised.
        _validation.train_arguments(num_inputs, num_outputs, dtype, X_train, y_train, X_val, y_val, batch_size,
                                    num_epochs, learning_rate, print_frequency)
        raise


def _train_input(name, data, num_inputs, dtype):
    """``data`` checked (``_validation.input_array``) and converted to ``dtype`` (``_validation.converted``), unless
    it is a C-contiguous float32 or float64 array of the other dtype, which ``DataClaim`` reads as ``dtype`` without
    a copy: its values are checked there (NaN, inf, or too large for ``dtype``), when first compared or read."""
    arr = _validation.input_array(name, data, num_inputs)
    if arr.dtype != dtype and arr.dtype in COMPARED_DTYPES and arr.flags.c_contiguous and arr.flags.aligned:
        return arr
    return _validation.converted(name, arr, dtype)
