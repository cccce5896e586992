"""What ``train``, ``evaluate_accuracy`` and ``predict`` keep between calls: the CSR structure of the data sets
they read, kept with the data.

Indexing MNIST's training set costs about half an epoch, which a loop of
``train(num_epochs=1)`` calls would pay every epoch, and so would every network
of a sweep trained on the same arrays. So the structure built from an array is
kept with that array: on its base array (``X_train[:1000]`` is a new object at
each call, but the same view of the same base), one ``KeptData`` per base
array (``kept_on``), found by the base's identity and dropped by a weak
reference's callback when the base is freed. Every network that reads the same
array (the same view of it, converted to the same dtype) uses one structure,
which lives as long as the array does, not as long as a network. Each
structure is kept with the column structures of its batches for the last batch
size trained (``batches_of``) and of the evaluation's groups of rows
(``entries_of``). This module is the store: ``slot(source, X, indices_dtype, dtype)``
says where X's structure is kept (from the array's identity, base, view and
dtype; it reads no value), and its ``KeptSlot`` gives the kept ``Indexed`` (or
None) and keeps a new one. A kept structure is used only after a comparison
with the array (``inputs.DataClaim``: one read of it, which also proves it
finite), so an array changed in place, or another one that happens to reuse a
freed base's address, is indexed anew.

A structure holds about 10 bytes per nonzero entry (6 in float32), twice
over, and 3 more: for MNIST's training set in float64 about 90 MB of CSR
structure, 92 MB of the same entries in the order the batches' forward passes
stream them, and 30 MB of the batches' column structures for the SGD step;
140 MB in all in float32. A network's ``kept_data``
(``KeptWithData``) is its view of what it uses: ``nbytes`` (structures shared
with other networks are counted in each), ``clear()`` (drops them from their
arrays now) and ``capacity`` (how many views or dtypes of one array are kept;
0 keeps nothing for this network: each call indexes its data). A ``KeptData``
assigned to ``kept_data`` (``net.kept_data = KeptData()``, shared by the
networks it is given to) keeps the structures itself instead, by shape, for as
long as it lives. Copies and pickles of a network start with a handle of their
own, which finds what the arrays keep. Data given as lists has no array to keep
anything with: it is indexed at each call.
"""
import threading
import weakref
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from fastscratch import config
from fastscratch.kernels.structure import batch_entries, batch_structure


class Indexed(NamedTuple):
    """X's CSR structure, and the structures of its batches for the last batch size trained, as
    ``{(batch_size, offsets dtype): structure.BatchStructure}``, and of its groups of rows for evaluation, as
    ``{("entries", rows): structure.BlockEntries}``."""
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    batches: dict


def _key(X, indices_dtype, where, dtype):
    return where, X.shape, np.dtype(dtype or X.dtype).str, np.dtype(indices_dtype).str


def _entry_nbytes(entry):
    return _nbytes((entry.indptr, entry.indices, entry.values, *entry.batches.values()))


class KeptData:
    """A holder of structures (see the module's docstring): each base array's (``kept_on``), or one given to
    networks as their ``kept_data``, which keeps what they index by shape, dtype and index dtype.

    Attributes:
        capacity (int): how many structures are kept, the most recently used.
    """

    def __init__(self, capacity=None):
        self.capacity = config.KEPT_DATA_SETS if capacity is None else capacity
        self._entries = OrderedDict()
        self._lock = threading.Lock()  # two threads may train (or predict with) networks on the same data

    @property
    def nbytes(self):
        """The bytes held."""
        with self._lock:
            entries = list(self._entries.values())
        return sum(_entry_nbytes(entry) for entry in entries)

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

    def slot(self, source, X, indices_dtype, dtype=None):
        """Where the structure of X (``source``, the argument as the user gave it, checked) read as ``dtype``
        (default X's) is kept: here, by shape, dtype and index dtype."""
        return KeptSlot(self, _key(X, indices_dtype, None, dtype))

    def _get(self, key):
        with self._lock:
            return self._entries.get(key)

    def _put(self, key, entry):
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > max(self.capacity, 0):
                self._entries.popitem(last=False)

    def _drop(self, key):
        with self._lock:
            self._entries.pop(key, None)

    def _holds(self, key):
        with self._lock:
            return key in self._entries

    def _nbytes_of(self, key):
        with self._lock:
            entry = self._entries.get(key)
        return 0 if entry is None else _entry_nbytes(entry)


class KeptSlot(NamedTuple):
    """Where one data set's structure is kept: a ``KeptData`` and the key in it (the array's place in its base
    array, shape, dtype and index dtype), and the network's ``KeptWithData`` that records it (or None)."""
    kept: KeptData
    key: tuple
    user: object = None

    @property
    def entry(self):
        """The kept ``Indexed`` structure, not yet compared with the data, or None."""
        return self.kept._get(self.key)

    def store(self, entry):
        """Keep ``entry`` (the data's ``Indexed``, found or built) here, as the most recently used."""
        self.kept._put(self.key, entry)
        if self.user is not None:
            self.user._record(self.kept, self.key)


#: The ``KeptData`` of each base array that a network read: ``{id(base): (weak reference to it, its KeptData)}``.
#: An entry goes when its array is freed (the weak reference's callback), so none outlives its data.
_WITH_ARRAYS = {}
_WITH_ARRAYS_LOCK = threading.Lock()


def _base(X):
    """The array that owns X's memory, or the outermost array over memory of another kind (a buffer)."""
    while isinstance(X.base, np.ndarray):
        X = X.base
    return X


def _forget(key, reference):
    if _WITH_ARRAYS.get(key, (None,))[0] is reference:  # not a newer array's entry at a reused address
        _WITH_ARRAYS.pop(key, None)


def kept_on(X):
    """The ``KeptData`` kept with X's base array, or None if nothing was ever kept with it."""
    base = _base(np.asarray(X))
    entry = _WITH_ARRAYS.get(id(base))
    return entry[1] if entry is not None and entry[0]() is base else None


def _with_array(source, capacity):
    """The ``KeptData`` of ``source``'s base array (made if need be, keeping at least ``capacity`` structures),
    and ``source``'s place in it."""
    base = _base(source)
    where = (source.__array_interface__["data"][0] - base.__array_interface__["data"][0], source.shape,
             source.strides, source.dtype.str)
    with _WITH_ARRAYS_LOCK:
        entry = _WITH_ARRAYS.get(id(base))
        if entry is None or entry[0]() is not base:
            key = id(base)
            entry = _WITH_ARRAYS[key] = (weakref.ref(base, lambda reference: _forget(key, reference)),
                                         KeptData(capacity))
    kept = entry[1]
    kept.capacity = max(kept.capacity, capacity)
    return kept, where


class KeptWithData:
    """A network's ``kept_data``: the structures its calls use, kept with their arrays (see the module's
    docstring).

    Attributes:
        capacity (int): how many structures one array keeps (its views, or its conversions to another dtype),
            the most recently used; 0: this network keeps nothing and finds nothing kept (each call indexes its
            data).
    """

    def __init__(self, capacity=None):
        self.capacity = config.KEPT_DATA_SETS if capacity is None else capacity
        self._used = OrderedDict()  # (id(KeptData), key) -> (weak reference to that KeptData, key)
        self._lock = threading.Lock()

    def slot(self, source, X, indices_dtype, dtype=None):
        """Where the structure of X (``source``, the argument as the user gave it, checked) read as ``dtype``
        (default X's) is kept: with the source's base array; for data that is not an array, or with ``capacity``
        0, for this call only."""
        if self.capacity <= 0 or not isinstance(source, np.ndarray):
            return KeptSlot(KeptData(0), _key(X, indices_dtype, None, dtype))
        kept, where = _with_array(source, self.capacity)
        return KeptSlot(kept, _key(X, indices_dtype, where, dtype), self)

    def _record(self, kept, key):
        with self._lock:
            self._used[id(kept), key] = (weakref.ref(kept), key)
            self._used.move_to_end((id(kept), key))
            for name, (reference, _) in list(self._used.items()):
                if reference() is None:
                    del self._used[name]

    def _live(self):
        with self._lock:
            used = list(self._used.values())
        return [(kept, key) for kept, key in ((reference(), key) for reference, key in used)
                if kept is not None and kept._holds(key)]

    @property
    def nbytes(self):
        """The bytes of the structures this network's calls use (each counted in full, though others use it)."""
        return sum(kept._nbytes_of(key) for kept, key in self._live())

    def __len__(self):
        return len(self._live())

    def clear(self):
        """Drop, from their arrays, the structures this network's calls used; the next call indexes its data."""
        for kept, key in self._live():
            kept._drop(key)
        with self._lock:
            self._used.clear()

    def __reduce__(self):  # copies and pickles get a handle of their own, which finds what the arrays keep
        return type(self), (self.capacity,)

    def __repr__(self):
        return f"KeptWithData({len(self)} data sets, {self.nbytes / 1e6:.1f} MB)"


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
