"""Saving and loading networks as ``.npz`` files (no pickle).

A file holds ``W0, b0, W1, b1, ...`` and a few metadata arrays: the format
version, the layer sizes, the dtype, and what each function of the network
is: every layer's activation and its derivative, the loss and its
derivative. A built-in is saved by its name (``functions.BUILTINS``; a
derivative by the name of the built-in it belongs to), a layer without a
derivative as ``"none"``, and any other callable as ``"custom"``: its
weights are saved, and ``load`` asks for the function by keyword, naming the
layers that need it. Version 1 files (one activation for all layers, the
built-in pair's derivatives) still load. A file is written atomically
(``fastscratch._files``): a kill or a full disk while saving leaves the
previous file as it was.

Loading reads only the members a saved network has, checks each member's
shape and dtype in its ``.npy`` header against the layer sizes before reading
any data, and never reads past what the header declares, so a hostile file
(a decompression bomb, a header declaring a (10^5, 10^5) array, an extra
member of gigabytes) costs little time and memory. Only stored and deflated
members are read (what ``np.savez`` and ``np.savez_compressed`` write):
zipfile's bzip2 and lzma readers have no bound on what one read expands to.
Weights must be finite in the dtype they are loaded into (float64 values
past float32's range would become inf). Everything is checked before
anything changes, so a bad file leaves the network untouched; every problem
is a ``ValueError`` naming the file.
"""
import os
import zipfile
import zlib

import numpy as np

from fastscratch._files import atomic_write
from fastscratch.functions import ACTIVATIONS, LOSSES, builtin

FORMAT_VERSION = 2
CUSTOM = "custom"
NONE = "none"
MAX_BYTES = 1 << 32   # weights and biases read from one file: 4 GiB, 537 million float64 parameters
#: The metadata arrays of each format version: all of them, nothing else besides the weights.
METADATA = {1: ("format_version", "layer_sizes", "dtype", "activation", "loss"),
            2: ("format_version", "layer_sizes", "dtype", "activations", "activation_derivatives", "loss",
                "loss_derivative")}
#: load()'s keywords: (kind, role) -> keyword.
KEYWORDS = {("activation", "function"): "activation_function",
            ("activation", "derivative"): "derivated_activation_function",
            ("loss", "function"): "loss_function", ("loss", "derivative"): "derivated_loss_function"}
_METADATA_BYTES = 1 << 12   # the data of one metadata array (per layer, for the per-layer ones)
_DEFLATE_RATIO = 1032   # deflate's largest expansion: a member cannot hold more than this per stored byte
_COMPRESSION_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}
_NPY_MAGIC = b"\x93NUMPY"
_CHUNK = 1 << 20


def saved_name(function, kind, role):
    """What the file says for ``function`` as the ``role`` ("function" or "derivative") of a ``kind``."""
    if function is None and role == "derivative":
        return NONE
    entry = builtin(function, kind, role)
    return CUSTOM if entry is None else entry.name


def save(network, path):
    """Write ``network`` to ``path`` atomically (``.npz`` is added when missing, as ``np.savez`` does)."""
    layers = network.layers
    arrays = {
        "format_version": np.array(FORMAT_VERSION),
        "layer_sizes": np.array([network.num_inputs] + [layer.size for layer in layers]),
        "dtype": np.array(network.dtype.name),
        "activations": np.array([saved_name(layer.activation_function, "activation", "function")
                                 for layer in layers]),
        "activation_derivatives": np.array([saved_name(layer.derivated_activation_function, "activation",
                                                       "derivative") for layer in layers]),
        "loss": np.array(saved_name(network.loss_function, "loss", "function")),
        "loss_derivative": np.array(saved_name(network.derivated_loss_function, "loss", "derivative")),
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
    for key in ("format_version", "layer_sizes"):
        if key not in members:
            raise ValueError(f"{path} is not a saved fastscratch network (missing {[key]})")
    version = _format_version(path, _read_member(path, archive, members["format_version"], _METADATA_BYTES))
    sizes = _layer_sizes(path, _read_member(path, archive, members["layer_sizes"], _METADATA_BYTES))
    missing = [key for key in METADATA[version] if key not in members]
    if missing:
        raise ValueError(f"{path} is not a saved fastscratch network (missing {missing})")
    # Names per layer take up to _METADATA_BYTES per layer; nothing else may be large.
    meta = _metadata(path, version, sizes, {
        key: _read_member(path, archive, members[key], _METADATA_BYTES * (
            len(sizes) if key in ("activations", "activation_derivatives") else 1))
        for key in METADATA[version][2:]})
    shapes = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"W{i}"], shapes[f"b{i}"] = (n_in, n_out), (n_out,)
    unexpected = sorted(members.keys() - shapes.keys() - set(METADATA[version]))
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
        if array.dtype.kind != "f":
            raise ValueError(f"{path}: layer {key[1:]} holds non-float weights ({key}: {array.dtype})")
        arrays[key] = _finite(path, key, array, meta["dtype"])
    count = len(sizes) - 1
    return meta, [arrays[f"W{i}"] for i in range(count)], [arrays[f"b{i}"] for i in range(count)]


def _finite(path, key, array, dtype):
    """``array`` as ``dtype``, or ValueError if it holds NaN or inf there (float64 values past float32's range
    become inf as float32)."""
    with np.errstate(over="ignore"):
        converted = array.astype(dtype, copy=False)
    if not np.isfinite(converted).all():
        raise ValueError(f"{path}: layer {key[1:]} holds non-finite weights as {np.dtype(dtype).name} ({key})")
    return converted


def _read_member(path, archive, info, limit, shape=None):
    """The array in ``info``, read once its header shows ``shape`` (if given) and at most ``limit`` bytes."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        # zipfile inflates a bzip2 or lzma member a whole compressed block at a time, with no bound on the
        # output: a few kilobytes can expand to gigabytes before a single byte is returned.
        method = _COMPRESSION_NAMES.get(info.compress_type, "unknown")
        raise ValueError(f"{path}: {info.filename} uses compression method {info.compress_type} ({method}); "
                         f"fastscratch reads only stored and deflated members, what np.savez and "
                         f"np.savez_compressed write")
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


def _format_version(path, version):
    if version.shape != () or version.dtype.kind not in "iu":
        raise ValueError(f"{path} is not a saved fastscratch network (format_version is {version!r})")
    if int(version) not in METADATA:
        raise ValueError(f"{path} has format version {int(version)}, "
                         f"this fastscratch reads versions {', '.join(map(str, METADATA))}")
    return int(version)


def _layer_sizes(path, sizes):
    if sizes.ndim != 1 or len(sizes) < 2 or sizes.dtype.kind not in "iu" or (sizes < 1).any():
        raise ValueError(f"{path}: layer_sizes must be 2 or more integers >= 1, got {sizes!r}")
    return [int(s) for s in sizes]


def _names(path, key, value, shape, allowed):
    """The names in the text array ``value`` of ``shape``, each one of ``allowed``."""
    if value.shape != shape or value.dtype.kind != "U" or not all(str(v) in allowed for v in value.flat):
        expected = "one" if shape == () else f"{shape[0]} (one per layer), each one"
        raise ValueError(f"{path}: {key} must be {expected} of {list(allowed)}, got {value!r}")
    return [str(v) for v in value.flat]


def _metadata(path, version, sizes, contents):
    """Check the metadata arrays of a saved network; return them as Python values.

    ``functions`` maps (kind, role) to the saved names: one per layer for the activation, one for the loss.
    """
    layers = len(sizes) - 1
    dtype, = _names(path, "dtype", contents["dtype"], (), ("float64", "float32"))
    if version == 1:  # one activation for every layer, each function with its built-in derivative
        activation, = _names(path, "activation", contents["activation"], (), (*ACTIVATIONS, CUSTOM))
        loss, = _names(path, "loss", contents["loss"], (), (*LOSSES, CUSTOM))
        functions = {("activation", "function"): [activation] * layers,
                     ("activation", "derivative"): [activation] * layers,
                     ("loss", "function"): [loss], ("loss", "derivative"): [loss]}
    else:
        functions = {}
        for kind, table, key, shape in (("activation", ACTIVATIONS, "activations", (layers,)),
                                        ("loss", LOSSES, "loss", ())):
            functions[kind, "function"] = _names(path, key, contents[key], shape, (*table, CUSTOM))
            key = "activation_derivatives" if kind == "activation" else "loss_derivative"
            functions[kind, "derivative"] = _names(path, key, contents[key], shape, (*table, CUSTOM, NONE))
    return {"layer_sizes": sizes, "dtype": dtype, "functions": functions}


def _restored(path, meta, given):
    """(kind, role) -> the function of each layer (activation) or of the network (loss): the built-ins by
    name, ``given``'s keyword where the file says custom. ValueError names the layers a missing keyword
    is for; TypeError for a keyword nothing in the file needs, or no keyword of load()."""
    unknown = given.keys() - set(KEYWORDS.values())
    if unknown:
        raise TypeError(f"load() got unexpected keyword arguments {sorted(unknown)}")
    tables = {"activation": ACTIVATIONS, "loss": LOSSES}
    restored, used = {}, set()
    for (kind, role), names in meta["functions"].items():
        keyword = KEYWORDS[kind, role]
        custom = [i for i, name in enumerate(names) if name == CUSTOM]
        if custom and keyword not in given:
            where = f"layer{'s' if len(custom) > 1 else ''} {', '.join(map(str, custom))}'s" \
                if kind == "activation" else "the network's"
            raise ValueError(f"{path}: {where} {keyword} was a custom callable, saved as 'custom' (only built-ins "
                             f"are saved by name); pass {keyword}= to load()")
        if custom:
            used.add(keyword)
        restored[kind, role] = [None if name == NONE else given[keyword] if name == CUSTOM else
                                tables[kind][name][role == "derivative"] for name in names]
    unused = sorted(given.keys() - used)
    if unused:
        raise TypeError(f"{path} names a built-in (or no function) wherever {', '.join(unused)} would go: "
                        f"load() restores built-ins by name and takes a function only for what was saved as custom")
    return restored


def load(cls, path, **functions):
    """Build a ``cls`` network from ``path``: every layer's functions as saved, the custom ones from keywords."""
    meta, weights, biases = read(path)
    restored = _restored(path, meta, functions)
    sizes = meta["layer_sizes"]
    # Building draws random weights; keep the caller's global random stream as it was.
    state = np.random.get_state()
    try:
        network = cls(sizes[0], sizes[-1], sizes[1:-1], dtype=meta["dtype"],
                      loss_function=restored["loss", "function"][0],
                      derivated_loss_function=restored["loss", "derivative"][0])
    finally:
        np.random.set_state(state)
    for layer, function, derivative in zip(network.layers, restored["activation", "function"],
                                           restored["activation", "derivative"]):
        layer.activation_function, layer.derivated_activation_function = function, derivative
    _assign(path, network, weights, biases)
    return network


def load_weights(network, path):
    """Copy the weights saved at ``path`` into ``network`` of the same layer sizes."""
    meta, weights, biases = read(path)
    sizes = [network.num_inputs] + [layer.size for layer in network.layers]
    if meta["layer_sizes"] != sizes:
        raise ValueError(f"{path} holds a {'-'.join(map(str, meta['layer_sizes']))} network, "
                         f"this one is {'-'.join(map(str, sizes))}")
    _assign(path, network, weights, biases)


def _assign(path, network, weights, biases):
    """Copy the weights into the network's own arrays, after checking that all of them stay finite there."""
    converted = [(_finite(path, f"W{i}", W, network.dtype), _finite(path, f"b{i}", b, network.dtype))
                 for i, (W, b) in enumerate(zip(weights, biases))]
    for layer, (W, b) in zip(network.layers, converted):
        layer.W[...] = W
        layer.b[...] = b
