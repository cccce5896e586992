import numpy as np
import pytest

from fastscratch.kernels import activations
from fastscratch.kernels.evaluation import ForwardWork, argmax, predict_classes
from fastscratch.kernels.structure import Structure, batch_entries, nonzero_structure
from oracle import sparse_like


@pytest.mark.parametrize("row", [[1.0, 3.0, 3.0, 2.0], [0.0], [np.nan, 1.0], [1.0, np.nan, np.nan], [-np.inf, -1.0],
                                 [5.0, 4.0]])
def test_argmax_follows_numpy(row):
    y = np.array([row])
    assert argmax(y, 0) == np.argmax(y[0])


@pytest.mark.parametrize("group", [1, 7, 50, 256])
@pytest.mark.parametrize("sizes", [(9, 4), (9, 6, 5, 4), (9, 8, 7, 6, 4), (150, 70, 10)])
def test_predictions_match_numpy_and_do_not_depend_on_the_group(sizes, group, rng):
    """Whole groups a block of inputs at a time, the last rows one by one: the classes of NumPy's forward pass,
    the same whatever the group (150 inputs: three blocks)."""
    X = sparse_like(rng, (50, sizes[0]), np.float64)
    X[3] = 0
    weights = tuple(rng.standard_normal((a, b)) for a, b in zip(sizes[:-1], sizes[1:]))
    biases = tuple(rng.standard_normal(b) for b in sizes[1:])
    codes = np.full(len(weights), activations.SIGMOID, dtype=np.int64)
    indptr, indices, values = nonzero_structure(X)
    work = ForwardWork(tuple(np.empty((group, b)) for b in sizes[1:]), Structure((indptr,), (indices,), values),
                       batch_entries(indptr, indices, values, sizes[0], group), group)
    classes = np.empty(len(X), dtype=np.int64)
    predict_classes(weights, biases, codes, work, classes)
    out = X
    for W, b in zip(weights, biases):
        out = 1 / (1 + np.exp(-(out @ W + b)))
    np.testing.assert_array_equal(classes, out.argmax(axis=1))
