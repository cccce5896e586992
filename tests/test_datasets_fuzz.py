"""load_dataset(..., verify=False) on IDX files that hypothesis writes: every outcome is the arrays written or
an MNISTFileError that names the file at fault, never another exception.

Each example writes the four files of a small MNIST-format dataset, then damages some of them: bad magic,
another type code or dimension count, header fields drawn from the whole 32-bit range (so that products of
dimensions would overflow), data cut short or extended, image and label counts that disagree, labels
outside 0..9; each file stored as is, gzipped, or gzipped and cut short.
"""
import gzip
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastscratch.datasets import DATASETS, MNISTFileError, load_dataset

NAMES = [file.name for file in DATASETS["mnist"].files]
IMAGES = (0, 2)
U32 = st.integers(0, 2 ** 32 - 1)


@st.composite
def crafted_file(draw, which, count):
    """(content, data) of file ``which`` made to hold ``count`` items, maybe damaged: data is its items'
    bytes when the content is a well-formed IDX file of them, None when it was damaged."""
    images = which in IMAGES
    shape = (count, 28, 28) if images else (count,)
    data = draw(st.binary(min_size=count * 784, max_size=count * 784)) if images else \
        bytes(draw(st.lists(st.integers(0, 9), min_size=count, max_size=count)))
    good = struct.pack(f">HBB{len(shape)}I", 0, 0x08, len(shape), *shape) + data
    zeros, type_code, dims, body = 0, 0x08, list(shape), data
    damage = draw(st.sampled_from(["none", "none", "magic", "type", "ndim", "dims", "huge dims", "cut", "extra",
                                   "label", "header cut"]))
    if damage == "magic":
        zeros = draw(st.integers(1, 0xFFFF))
    elif damage == "type":
        type_code = draw(st.integers(0, 255))
    elif damage == "ndim":
        dims = draw(st.lists(U32, min_size=0, max_size=6))
    elif damage == "dims":
        dims[draw(st.integers(0, len(dims) - 1))] = draw(st.integers(0, 64))
    elif damage == "huge dims":  # products of these overflow 32 and 64 bits
        dims = [draw(st.integers(2 ** 31, 2 ** 32 - 1)) if draw(st.booleans()) else d for d in dims]
    elif damage == "cut":
        body = data[:draw(st.integers(0, len(data)))]
    elif damage == "extra":
        body = data + bytes(draw(st.integers(0, 100)))
    elif damage == "label" and not images:
        body = data[:-1] + bytes([draw(st.integers(10, 255))])
    content = struct.pack(f">HBB{len(dims)}I", zeros, type_code, len(dims), *dims) + body
    if damage == "header cut":
        content = content[:draw(st.integers(0, 4 + 4 * len(dims)))]
    return content, data if content == good else None


@st.composite
def crafted_datasets(draw):
    """The four files (content, data), whether each is gzipped, and the item counts they were made with."""
    train, test = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    counts = [train, train, test, test]
    if draw(st.booleans()):  # images and labels that disagree in number
        counts[draw(st.integers(0, 3))] += draw(st.integers(1, 2))
    files = [draw(crafted_file(which, count)) for which, count in enumerate(counts)]
    # Stored as is, gzipped, or gzipped and cut short anywhere before the gzip trailer's end.
    storage = [draw(st.sampled_from(["plain", "gzip", "cut gzip"])) for _ in files]
    cuts = [draw(st.integers(0, len(gzip.compress(content)) - 1)) for content, _ in files]
    return files, storage, cuts, counts


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(crafted_datasets())
def test_every_crafted_dataset_loads_or_names_the_bad_file(case):
    """The files are read in load_dataset's order, each checked on its own, then the counts of each pair:
    the first damaged file is named; with none damaged, the labels file of the first pair whose counts
    differ; with none of either, the data comes back as written."""
    files, storage, cuts, counts = case
    with tempfile.TemporaryDirectory() as directory:
        paths = []
        for name, (content, _), stored, cut in zip(NAMES, files, storage, cuts):
            path = Path(directory) / (name if stored == "plain" else f"{name}.gz")
            path.write_bytes(content if stored == "plain" else gzip.compress(content)[:cut if stored == "cut gzip"
                                                                                       else None])
            paths.append(path)
        damaged = [path for path, (_, data), stored in zip(paths, files, storage) if data is None or
                   stored == "cut gzip"]
        disagreeing = [paths[labels] for images, labels in ((0, 1), (2, 3)) if counts[images] != counts[labels]]
        try:
            loaded = load_dataset("mnist", directory, verify=False)
        except MNISTFileError as err:
            assert str(err).startswith(f"{err.path}: ")
            assert err.path == (damaged or disagreeing)[0], str(err)
            if not damaged:
                assert "labels but" in err.problem
            return
    assert not damaged and not disagreeing
    for array, (_, data), count, which in zip(loaded, files, counts, range(4)):
        assert array.dtype == np.uint8
        assert array.shape == ((count, 28, 28) if which in IMAGES else (count,))
        assert array.tobytes() == data


@pytest.mark.parametrize("dims", [(2 ** 32 - 1, 2 ** 32 - 1, 2 ** 32 - 1), (2 ** 31, 28, 28), (1, 2 ** 32 - 1, 28)])
def test_dimensions_whose_product_overflows_are_refused_before_any_data(tmp_path, dims):
    for name in NAMES:
        content = struct.pack(">HBB3I", 0, 0x08, 3, *dims) if name == NAMES[0] else \
            struct.pack(">HBBI", 0, 0x08, 1, 1) + bytes(1) if "labels" in name else \
            struct.pack(">HBB3I", 0, 0x08, 3, 1, 28, 28) + bytes(784)
        (tmp_path / name).write_bytes(content)
    with pytest.raises(MNISTFileError) as info:
        load_dataset("mnist", tmp_path, verify=False)
    assert info.value.path == tmp_path / NAMES[0]
