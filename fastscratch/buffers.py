"""The named buffers the kernels fill, built from a data set's kept structure (``kept_data.Indexed``), never from
the data itself: a compiled epoch's (``EpochWork``) and compiled forward passes' (``ForwardWork``)."""
import numpy as np

from fastscratch import config
from fastscratch.kept_data import batches_of, entries_of
from fastscratch.kernels.evaluation import ForwardWork
from fastscratch.kernels.structure import Structure, index_dtype
from fastscratch.kernels.training import EpochWork


def sizes_of(network):
    """The layer widths, input first."""
    return (network.num_inputs, *(layer.size for layer in network.layers))


def indices_dtype(sizes):
    """The index dtype of the structures of inputs to layers of these widths."""
    return index_dtype(max(sizes[:-1]))


def outputs(sizes, rows, dtype):
    """One output buffer per layer for ``rows`` rows."""
    return tuple(np.empty((rows, size), dtype=dtype) for size in sizes[1:])


def rows_structure(entry):
    """The ``Structure`` the compiled passes walk: the first layer's input, the kept ``entry`` (a data set's CSR
    structure); the hidden layers walk their dense inputs."""
    return Structure((entry.indptr,), (entry.indices,), entry.values)


def forward_buffers(entry, sizes, dtype, every_row=False):
    """The ``ForwardWork`` of ``predict_classes`` over the data set of ``entry``, ``config.EVAL_GROUP`` rows at a
    time, its groups' entries kept with it (``kept_data.entries_of``). ``every_row``: buffers with a row for every
    row, which then hold every layer's outputs (``predict`` leaves them on the layers, as the reference's forward
    pass does)."""
    rows = len(entry.indptr) - 1
    group = max(min(config.EVAL_GROUP, rows), 1)
    return ForwardWork(outputs(sizes, rows if every_row else group, dtype), rows_structure(entry),
                       entries_of(entry, sizes[0], group), group)


def epoch_buffers(entry, sizes, batch_size, dtype):
    """The ``EpochWork`` of ``train_epoch`` over the training set of ``entry``, its batches' structures kept with
    it (``kept_data.batches_of``)."""
    offsets_dtype = index_dtype(batch_size * max(sizes[:-1]) + 1)
    return EpochWork(
        outputs(sizes, batch_size, dtype), outputs(sizes, batch_size, dtype),
        tuple(np.empty((b, a), dtype=dtype) for a, b in zip(sizes[:-1], sizes[1:])), rows_structure(entry),
        batches_of(entry, sizes[0], batch_size, offsets_dtype),
        tuple(np.empty((width, batch_size), dtype=dtype) for width in sizes[:-1]),
        tuple(np.empty(size, dtype=dtype) for size in sizes[1:]))
