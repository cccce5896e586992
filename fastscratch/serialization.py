"""Saving and loading networks as ``.npz`` files (no pickle).

A file holds ``W0, b0, W1, b1, ...`` and a few metadata arrays: the format
version, the layer sizes, the dtype and the names of the built-in activation
and loss (or ``"custom"``). It is written atomically (``fastscratch._files``):
a kill or a full disk while saving leaves the previous file as it was.

Loading reads only the members a saved network has, checks each member's
shape and dtype in its ``.npy`` header against the layer sizes before reading
any data, and never reads past what the header declares, so a hostile file
(a decompression bomb, a header declaring a (10^5, 10^5) array, an extra
member of gigabytes) costs little time and memory. Everything is checked
before anything changes, so a bad file leaves the network untouched; every
problem is a ``ValueError`` naming the file.
"""
import os
import zipfile
import zlib

import numpy as np

from fastscratch._files import atomic_write
from fastscratch.functions import ACTIVATIONS, LOSSES, name_of

FORMAT_VERSION = 1
CUSTOM = "custom"
MAX_BYTES = 1 << 32   # weights and biases read from one file: 4 GiB, 537 million float64 parameters
METADATA = ("format_version", "layer_sizes", "dtype", "activation", "loss")
_METADATA_BYTES = 1 << 12   # the data of one metadata array
_DEFLATE_RATIO = 1032   # deflate's largest expansion: a member cannot hold more than this per stored byte
_NPY_MAGIC = b"\x93NUMPY"
_CHUNK = 1 << 20


def save(network, path):
    """Write ``network`` to ``path`` atomically (``.npz`` is added when missing, as ``np.savez`` does)."""
    first = network.layers[0]
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "layer_sizes": np.array([network.num_inputs] + [layer.size for layer in network.layers]),
        "dtype": np.array(network.dtype.name),
        "activation": np.array(name_of(first.activation_function, ACTIVATIONS) or CUSTOM),
        "loss": np.array(name_of(network.loss_function, LOSSES) or CUSTOM),
    }
    for i, layer in enumerate(network.layers):
        arrays[f"W{i}"], arrays[f"b{i}"] = layer.W, layer.b
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    with atomic_write(path) as f:
        np.savez(f, **arrays)


def read(path):
    """Return ``(metadata, weights, biases)`` of a saved network, or raise ``ValueError``."""
    try:
        with open(path, "rb") as f:
            if f.read(len(_NPY_MAGIC)) == _NPY_MAGIC:
                raise ValueError(f"{path} is not a saved fastscratch network: "
                                 f"it holds a single array, not an .npz archive")
            f.seek(0)
            with zipfile.ZipFile(f) as archive:
                return _read_archive(path, archive)
    except FileNotFoundError:
        raise
    # BadZipFile: not a zip, truncated, a CRC mismatch; NotImplementedError: an unknown compression
    # method; zlib.error and EOFError: corrupt or cut deflate data; OSError: unreadable.
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as err:
        raise ValueError(f"{path} is not a saved fastscratch network: {err}") from err


def _read_archive(path, archive):
    members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
    missing = [key for key in METADATA if key not in members]
    if missing:
        raise ValueError(f"{path} is not a saved fastscratch network (missing {missing})")
    meta = _metadata(path, {key: _read_member(path, archive, members[key], _METADATA_BYTES) for key in METADATA})
    sizes = meta["layer_sizes"]
    shapes = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"W{i}"], shapes[f"b{i}"] = (n_in, n_out), (n_out,)
    unexpected = sorted(members.keys() - shapes.keys() - set(METADATA))
    if unexpected:
        raise ValueError(f"{path} holds arrays a saved network does not have: {unexpected}")
    needed = sum(int(np.prod(shape)) for shape in shapes.values()) * np.dtype(meta["dtype"]).itemsize
    if needed > MAX_BYTES:
        raise ValueError(f"{path}: layer sizes {sizes} need {needed / 2 ** 30:.1f} GiB of weights, "
                         f"more than the {MAX_BYTES / 2 ** 30:.0f} GiB fastscratch loads")
    arrays = {}
    for key, shape in shapes.items():
        if key not in members:
            raise ValueError(f"{path} lacks the weights of layer {key[1:]}")
        array = _read_member(path, archive, members[key], MAX_BYTES, shape)
        if array.dtype.kind != "f" or not np.isfinite(array).all():
            raise ValueError(f"{path}: layer {key[1:]} holds non-finite or non-float weights ({key})")
        arrays[key] = array
    count = len(sizes) - 1
    return meta, [arrays[f"W{i}"] for i in range(count)], [arrays[f"b{i}"] for i in range(count)]


def _read_member(path, archive, info, limit, shape=None):
    """The array in ``info``, read only after its header shows it is ``shape`` (if given) and at most ``limit`` bytes."""
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            header = {(1, 0): np.lib.format.read_array_header_1_0,
                      (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if header is None:
                raise ValueError(f"npy format version {version} is not one NumPy's savez writes")
            declared, fortran_order, dtype = header(member)
        except ValueError as err:   # no npy magic, or a header that does not parse
            raise ValueError(f"{path}: {info.filename} is not an array: {err}") from err
        name = info.filename.removesuffix(".npy")
        if shape is not None and tuple(declared) != shape:
            raise ValueError(f"{path}: layer {name[1:]} has {name} of shape {tuple(declared)}, expected {shape}")
        if dtype.hasobject or dtype.kind not in "biufU":
            raise ValueError(f"{path}: {name} holds {dtype} data, not numbers or text (pickles are never loaded)")
        nbytes = int(np.prod(declared, dtype=np.float64)) * dtype.itemsize
        stored = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
            info.compress_size * _DEFLATE_RATIO
        if nbytes > limit:
            raise ValueError(f"{path}: {name} declares {nbytes} bytes of data, more than the {limit} "
                             f"fastscratch reads for it")
        if nbytes > stored + 1024:
            raise ValueError(f"{path}: {name} declares {nbytes} bytes of data, more than its "
                             f"{info.compress_size}-byte member can hold")
        array = np.empty(int(np.prod(declared)), dtype)
        buffer, done = memoryview(array).cast("B"), 0
        while done < nbytes and (chunk := member.read(min(_CHUNK, nbytes - done))):
            buffer[done:done + len(chunk)] = chunk
            done += len(chunk)
        # Reading on to the member's end also has zipfile check its CRC.
        if done < nbytes or member.read(1):
            raise ValueError(f"{path}: {name} holds {'less' if done < nbytes else 'more'} data than its "
                             f"header's {nbytes} bytes")
    return array.reshape(declared, order="F" if fortran_order else "C")


def _metadata(path, contents):
    """Check the metadata arrays of a saved network; return them as Python values."""
    version = contents["format_version"]
    if version.shape != () or version.dtype.kind not in "iu":
        raise ValueError(f"{path} is not a saved fastscratch network (format_version is {version!r})")
    if int(version) != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {int(version)}, "
                         f"this fastscratch reads version {FORMAT_VERSION}")
    sizes = contents["layer_sizes"]
    if sizes.ndim != 1 or len(sizes) < 2 or sizes.dtype.kind not in "iu" or (sizes < 1).any():
        raise ValueError(f"{path}: layer_sizes must be 2 or more integers >= 1, got {sizes!r}")
    names = {}
    for key, allowed in (("dtype", ("float64", "float32")), ("activation", (*ACTIVATIONS, CUSTOM)),
                         ("loss", (*LOSSES, CUSTOM))):
        value = contents[key]
        if value.shape != () or value.dtype.kind != "U" or str(value) not in allowed:
            raise ValueError(f"{path}: {key} must be one of {list(allowed)}, got {value!r}")
        names[key] = str(value)
    return {"layer_sizes": [int(s) for s in sizes], **names}


def load(cls, path, **functions):
    """Build a ``cls`` network from ``path``; custom functions are passed as keywords."""
    meta, weights, biases = read(path)
    kwargs = {}
    for kind, table, keys in (("activation", ACTIVATIONS, ("activation_function", "derivated_activation_function")),
                              ("loss", LOSSES, ("loss_function", "derivated_loss_function"))):
        if meta[kind] != CUSTOM:
            kwargs.update(zip(keys, table[meta[kind]]))
        elif keys[0] not in functions:
            raise ValueError(f"{path} was saved with a custom {kind}; pass {keys[0]}= (and {keys[1]}=) to load()")
    unknown = functions.keys() - {"activation_function", "derivated_activation_function",
                                  "loss_function", "derivated_loss_function"}
    if unknown:
        raise TypeError(f"load() got unexpected keyword arguments {sorted(unknown)}")
    kwargs.update(functions)
    sizes = meta["layer_sizes"]
    # Building draws random weights; keep the caller's global random stream as it was.
    state = np.random.get_state()
    try:
        network = cls(sizes[0], sizes[-1], sizes[1:-1], dtype=meta["dtype"], **kwargs)
    finally:
        np.random.set_state(state)
    _assign(network, weights, biases)
    return network


def load_weights(network, path):
    """Copy the weights saved at ``path`` into ``network`` of the same layer sizes."""
    meta, weights, biases = read(path)
    sizes = [network.num_inputs] + [layer.size for layer in network.layers]
    if meta["layer_sizes"] != sizes:
        raise ValueError(f"{path} holds a {'-'.join(map(str, meta['layer_sizes']))} network, "
                         f"this one is {'-'.join(map(str, sizes))}")
    _assign(network, weights, biases)


def _assign(network, weights, biases):
    for layer, W, b in zip(network.layers, weights, biases):
        layer.W[...] = W
        layer.b[...] = b
