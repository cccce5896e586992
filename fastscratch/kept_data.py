"""What ``train`` keeps between calls, on the network: the CSR structure of the data sets it last read.

Indexing MNIST's training set costs about half an epoch, which a loop of
``train(num_epochs=1)`` calls would pay every epoch; so each drop-in network
keeps, in ``network.kept_data``, the structures of the last ``capacity``
data sets (by shape, dtype and index dtype) with the structures of their
batches for the last batch size (``batches_of``) and of the evaluation's
groups of rows (``entries_of``). A kept structure is used only after a
comparison with the array (``describes``: one read of it, which also proves
it finite), so an array changed in place, or another array of the same
shape, is indexed anew.

It holds about 10 bytes per nonzero entry (6 in float32), twice over, and 3
more: for MNIST's training set in float64 about 90 MB of CSR structure, 92 MB
of the same entries in the order the batches' forward passes stream them, and
30 MB of the batches' column structures for the SGD step; 140 MB in all in
float32 (``KeptData.nbytes`` says what it holds). It goes with its network; ``network.kept_data.clear()`` drops it now,
``capacity = 0`` keeps nothing (each call indexes its data). Copies and
pickles of a network start with nothing kept.
"""
import threading
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from fastscratch.kernels.structure import batch_entries, batch_structure, nonzero_structure, structure_matches

#: Rows of X compared with a kept structure at once, at the start, the middle and the end, before the
#: structure is trusted to run ahead (``session.Session``): a data set of the same shape with other contents
#: (shuffled, or new) is then indexed at once rather than found out after an epoch run in vain.
SAMPLE_ROWS = 16


class Indexed(NamedTuple):
    """X's CSR structure, and the structures of its batches for the last batch size trained, as
    ``{(batch_size, offsets dtype): structure.BatchStructure}``, and of its groups of rows for evaluation, as
    ``{("entries", rows): structure.BlockEntries}``."""
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    batches: dict


def describes(entry, X, threads=None):
    """Whether the ``Indexed`` ``entry`` is X's structure (X's values compared exactly, so X is finite)."""
    return structure_matches(X, entry.indptr, entry.indices, entry.values, threads)


def _key(X, indices_dtype):
    return X.shape, X.dtype.str, np.dtype(indices_dtype).str


class KeptData:
    """The structures one network keeps between ``train`` calls (see the module's docstring).

    Attributes:
        capacity (int): how many data sets are kept (2: a training and a validation set).
    """

    def __init__(self, capacity=2):
        self.capacity = capacity
        self._entries = OrderedDict()
        self._lock = threading.Lock()  # two threads may train (or predict with) one network

    @property
    def nbytes(self):
        """The bytes held."""
        with self._lock:
            entries = list(self._entries.values())
        return sum(_nbytes((entry.indptr, entry.indices, entry.values, *entry.batches.values()))
                   for entry in entries)

    def __len__(self):
        return len(self._entries)

    def clear(self):
        """Drop everything kept; the next call indexes its data again."""
        with self._lock:
            self._entries.clear()

    def __reduce__(self):  # copies and pickles start empty: a structure belongs to the arrays of this process
        return type(self), (self.capacity,)

    def __repr__(self):
        return f"KeptData({len(self)} data sets, {self.nbytes / 1e6:.1f} MB)"

    def lookup(self, X, indices_dtype):
        """The kept ``Indexed`` structure of an array of X's shape and dtype, not yet compared with X, or None."""
        with self._lock:
            return self._entries.get(_key(X, indices_dtype))

    def sampled_match(self, X, indices_dtype):
        """The kept ``Indexed`` structure of an array of X's shape and dtype if X's sampled rows match it,
        else None: a likely, not a proven, description of X."""
        entry = self.lookup(X, indices_dtype)
        if entry is None:
            return None
        n = len(X)
        for start in sorted({0, max(0, n // 2 - SAMPLE_ROWS // 2), max(0, n - SAMPLE_ROWS)}):
            stop = min(n, start + SAMPLE_ROWS)
            if not structure_matches(X[start:stop], entry.indptr[start:stop + 1] - entry.indptr[start],
                                     entry.indices[entry.indptr[start]:entry.indptr[stop]],
                                     entry.values[entry.indptr[start]:entry.indptr[stop]], threads=1):
                return None
        return entry

    def index(self, X, indices_dtype, known=None):
        """The ``Indexed`` structure of the finite 2-D array X: ``known`` (a kept one already compared with X
        in this call), or a kept one that still describes X, or a new one, which is kept."""
        if known is None or known.indices.dtype != indices_dtype:
            known = self.lookup(X, indices_dtype)
            if known is not None and not describes(known, X):
                known = None
        entry = known or Indexed(*nonzero_structure(X, indices_dtype), {})
        key = _key(X, indices_dtype)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > max(self.capacity, 0):
                self._entries.popitem(last=False)
        return entry


def batches_of(entry, n_in, batch_size, offsets_dtype):
    """The ``batch_structure`` (columns and entries) of an ``Indexed`` structure, kept with it."""
    key = (batch_size, np.dtype(offsets_dtype).str)
    columns = entry.batches.get(key)
    if columns is None:
        columns = batch_structure(entry.indptr, entry.indices, entry.values, n_in, batch_size, offsets_dtype)
        entry.batches.clear()  # one batch size kept: each costs about a third of the structure
        entry.batches[key] = columns
    return columns


def entries_of(entry, n_in, rows):
    """The ``batch_entries`` of an ``Indexed`` structure in groups of ``rows`` rows (the evaluation's), kept with it."""
    key = ("entries", rows)
    entries = entry.batches.get(key)
    if entries is None:
        entries = entry.batches[key] = batch_entries(entry.indptr, entry.indices, entry.values, n_in, rows)
    return entries


def _nbytes(arrays):
    """The bytes of the arrays in ``arrays``, a tuple that may nest named tuples of arrays (batch structures)."""
    return sum(a.nbytes if isinstance(a, np.ndarray) else _nbytes(a) for a in arrays)
