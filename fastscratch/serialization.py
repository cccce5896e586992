"""Saving and loading networks as ``.npz`` files (no pickle).

A file holds ``W0, b0, W1, b1, ...`` and a few metadata arrays: the format
version, the layer sizes, the dtype and the names of the built-in activation
and loss (or ``"custom"``). Loading checks everything before it changes
anything, so a bad file leaves the network untouched.
"""
import os
import zipfile
import zlib

import numpy as np

from fastscratch.functions import ACTIVATIONS, LOSSES, name_of

FORMAT_VERSION = 1
CUSTOM = "custom"


def save(network, path):
    """Write ``network`` to ``path`` (NumPy adds ``.npz`` when missing, as ``np.savez`` does)."""
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
    np.savez(path, **arrays)


def read(path):
    """Return ``(metadata, weights, biases)`` of a saved network, or raise ``ValueError``."""
    try:
        loaded = np.load(os.fspath(path), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a lone .npy array
            raise ValueError("it holds a single array, not an .npz archive")
        with loaded as data:
            contents = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path} is not a saved fastscratch network: {err}") from err
    missing = {"format_version", "layer_sizes", "dtype", "activation", "loss"} - contents.keys()
    if missing:
        raise ValueError(f"{path} is not a saved fastscratch network (missing {sorted(missing)})")
    meta = _metadata(path, contents)
    sizes = meta["layer_sizes"]
    weights, biases = [], []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        W, b = contents.get(f"W{i}"), contents.get(f"b{i}")
        if W is None or b is None:
            raise ValueError(f"{path} lacks the weights of layer {i}")
        if W.shape != (n_in, n_out) or b.shape != (n_out,):
            raise ValueError(f"{path}: layer {i} has W {W.shape} and b {b.shape}, "
                             f"expected ({n_in}, {n_out}) and ({n_out},)")
        if W.dtype.kind != "f" or b.dtype.kind != "f" or not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise ValueError(f"{path}: layer {i} holds non-finite or non-float weights")
        weights.append(W)
        biases.append(b)
    return meta, weights, biases


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
