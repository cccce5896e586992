"""MNIST for the tutorial's script: find, download, verify and parse the four IDX files.

The tutorial loads MNIST with the ``mnist`` package, whose only source, the
original site, has answered HTTP 403 for years. This module keeps that
package's parser (``mnist.parse_idx``) and its return values, and finds the
files itself, in order: the ``data_dir`` argument, the ``FASTSCRATCH_MNIST_DIR``
environment variable, a user cache, and finally a download from public
mirrors into that cache. Gzipped and uncompressed IDX files are both accepted.

Checksums: SHA-256 of 55 MB takes about 0.04 s here (decompressing the
gzipped files takes 0.3 s), so every load checks the canonical digests unless
``verify=False``, which exists for other data in MNIST's format and file names
(Fashion-MNIST, subsets). Downloads are always checked, whatever ``verify``
says: only MNIST's exact content ever lands in the cache.

Errors, all ``MNISTError`` (a ``RuntimeError``):
    ``MNISTFileError``: a file that is there but is not valid MNIST (bad gzip,
        bad IDX header, wrong item count or shape, labels outside 0..9,
        image/label counts that differ, checksum mismatch). It is also a
        ``mnist.IdxDecodeError``, hence a ``ValueError``. ``.path`` is the file.
    ``MNISTDownloadError``: no mirror served a good copy; ``.attempts`` lists
        ``(url, reason)`` pairs.
    ``MNISTError`` itself: files missing from a directory given explicitly, or
        from the cache when ``download=False``; a cache that cannot be created.
"""
import gzip
import hashlib
import http.client
import io
import os
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import mnist
import numpy as np

from fastscratch._validation import check_dtype

__all__ = ["load_mnist", "prepare", "default_cache_dir", "MNIST_FILES", "MIRRORS", "ENV_VAR", "MNISTError",
           "MNISTFileError", "MNISTDownloadError"]

# Standard names (without ".gz") in the order load_mnist returns them, with the
# SHA-256 of their decompressed content.
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Tried in turn for each file. The original site comes last: it answers 403.
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",   # torchvision's mirror
    "https://storage.googleapis.com/cvdf-datasets/mnist/",   # TensorFlow's mirror
    "http://yann.lecun.com/exdb/mnist/",
]

ENV_VAR = "FASTSCRATCH_MNIST_DIR"
TIMEOUT = 30.0   # seconds without progress (connect or read) before a mirror is given up
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16
_LOCAL_COPY_HINT = (f"To use a local copy of the four MNIST files (gzipped or not), set {ENV_VAR}=/path/to/mnist, "
                    f"pass --data-dir /path/to/mnist to `fastscratch train`, or call load_mnist('/path/to/mnist').")


class MNISTError(RuntimeError):
    """MNIST could not be loaded; the message says why and what to do."""


class MNISTFileError(MNISTError, mnist.IdxDecodeError):
    """A file that is present but is not valid MNIST; ``path`` names it."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


class MNISTDownloadError(MNISTError):
    """No mirror served a good copy of a file; ``attempts`` holds ``(url, reason)`` pairs."""

    def __init__(self, filename, cache, attempts):
        tried = "".join(f"\n  {url}: {reason}" for url, reason in attempts) or "\n  (no mirrors configured)"
        super().__init__(f"could not download {filename} into {cache}; tried:{tried}\n{_LOCAL_COPY_HINT}")
        self.attempts = attempts


def load_mnist(data_dir=None, *, download=True, progress=True, verify=True, mirrors=None, timeout=TIMEOUT):
    """Return MNIST as ``(X_train, y_train, X_test, y_test)``, uint8 arrays as the ``mnist`` package gives.

    Shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,). The files come
    from ``data_dir`` if given, else from ``$FASTSCRATCH_MNIST_DIR`` if set, and
    must all be there (nothing is downloaded for a directory named explicitly).
    Otherwise they come from ``default_cache_dir()``, where missing ones are
    downloaded first unless ``download`` is false.

    Args:
        progress: report downloads on stderr.
        verify: check each file's SHA-256 against ``MNIST_FILES``; turn off to
            read other data in MNIST's format (the structure is still checked).
        mirrors: base URLs (or one) to try in turn; defaults to ``MIRRORS``.
        timeout: seconds a mirror may stay silent before the next is tried.

    Raises:
        MNISTError: see the module docstring for its subclasses.
    """
    if data_dir is not None:
        paths = _find_all(Path(data_dir).expanduser(), "the data_dir argument")
    elif os.environ.get(ENV_VAR):
        paths = _find_all(Path(os.environ[ENV_VAR]).expanduser(), f"${ENV_VAR}")
    else:
        mirrors = MIRRORS if mirrors is None else [mirrors] if isinstance(mirrors, str) else mirrors
        return _load_cache(download, progress, verify, mirrors, timeout)
    arrays = {name: _parse(path, _read_bytes(path), name, verify) for name, path in paths.items()}
    return _check_pairs(arrays, paths)


def default_cache_dir():
    """``$XDG_CACHE_HOME/fastscratch/mnist``, or ``~/.cache/fastscratch/mnist``.

    As the XDG spec says, an empty or relative ``XDG_CACHE_HOME`` is ignored.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "fastscratch" / "mnist"


def prepare(X_train, y_train, X_test, y_test, dtype=np.float64):
    """The tutorial's preparation: return ``(X_train, Y_train, X_test, y_test)``.

    Images are flattened to (n, 784) and scaled to [0, 1] exactly as
    ``(X / 255.).astype(dtype)`` (bit for bit, also in float32); the training
    labels become one-hot rows of ``np.eye(10, dtype=dtype)``; the test labels
    stay integer labels, as the tutorial's accuracy needs them. Images must be
    raw integer pixels 0..255, as ``load_mnist`` returns them; scaled floats are
    refused so that nothing is divided by 255 twice. All outputs are new
    C-contiguous arrays, never views of the inputs.
    """
    dtype = check_dtype(dtype)
    # Every possible pixel scaled once by the tutorial's own expression, then
    # looked up: same bits, without a float64 temporary of the whole set.
    scaled = (np.arange(256) / 255.).astype(dtype)
    X_train = scaled[_pixels("X_train", X_train)]
    X_test = scaled[_pixels("X_test", X_test)]
    Y_train = np.eye(NUM_CLASSES, dtype=dtype)[_labels("y_train", y_train, len(X_train))]
    return X_train, Y_train, X_test, _labels("y_test", y_test, len(X_test))


def _find(directory, name):
    """The file holding ``name`` in ``directory``, uncompressed preferred (faster to read), or None."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _find_all(directory, source):
    if not directory.is_dir():
        raise MNISTError(f"MNIST directory {directory} (from {source}) does not exist or is not a directory. "
                         f"It should hold the four MNIST files: {', '.join(MNIST_FILES)} (each may end in .gz).")
    paths = {name: _find(directory, name) for name in MNIST_FILES}
    missing = [f"{name}[.gz]" for name, path in paths.items() if path is None]
    if missing:
        raise MNISTError(f"MNIST directory {directory} (from {source}) has no {', '.join(missing)}; "
                         f"nothing is downloaded for a directory given explicitly.")
    return paths


def _load_cache(download, progress, verify, mirrors, timeout):
    cache = default_cache_dir()
    paths, arrays = {}, {}
    for name in MNIST_FILES:
        path = _find(cache, name)
        if path is not None:
            try:
                arrays[name] = _parse(path, _read_bytes(path), name, verify)
            except MNISTFileError as err:
                raise MNISTFileError(path, f"{err.problem} (this is fastscratch's download cache: "
                                           f"delete the file and it will be downloaded again)") from err
        elif download:
            path, content = _download(name, cache, mirrors, timeout, progress)
            arrays[name] = _parse(path, content, name, verify=False)   # _download checked the digest
        else:
            raise MNISTError(f"MNIST file {name} is not in the cache {cache} and download=False. "
                             f"{_LOCAL_COPY_HINT}")
        paths[name] = path
    return _check_pairs(arrays, paths)


def _read_bytes(path):
    """The decompressed content of ``path``, gzipped or not (told apart by content, not by name)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise MNISTFileError(path, f"cannot be read: {err}") from err
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:   # bad header or CRC, truncated stream, corrupt deflate data
        raise MNISTFileError(path, f"is not a valid gzip file (corrupt or truncated): {err}") from err


def _parse(path, content, name, verify):
    """The array in IDX ``content`` read from ``path``, checked to be what the MNIST file ``name`` holds."""
    try:
        array = mnist.parse_idx(io.BytesIO(content))
    # Besides its IdxDecodeError, parse_idx lets malformed files escape as other types:
    # struct.error when the dimension sizes are cut off, TypeError for zero dimensions,
    # ValueError when the data is not a whole number of items of its type.
    except (ValueError, struct.error, TypeError) as err:
        raise MNISTFileError(path, f"is not a valid IDX file: {err}") from err
    is_images = "-images-" in name
    expected = f"(n, {', '.join(map(str, IMAGE_SHAPE))})" if is_images else "(n,)"
    if array.dtype != np.uint8 or array.shape[1:] != (IMAGE_SHAPE if is_images else ()) or len(array) == 0:
        raise MNISTFileError(path, f"holds {array.dtype} data of shape {array.shape}, expected the uint8 "
                                   f"{'images' if is_images else 'labels'} of {name}, shape {expected} "
                                   f"with n > 0")
    if not is_images and array.max() >= NUM_CLASSES:
        raise MNISTFileError(path, f"holds label {array.max()}, expected labels 0..{NUM_CLASSES - 1}")
    if verify:
        digest = hashlib.sha256(content).hexdigest()
        if digest != MNIST_FILES[name]:
            raise MNISTFileError(path, f"content has SHA-256 {digest}, not MNIST's {MNIST_FILES[name]}; "
                                       f"pass verify=False to read other data in MNIST's format")
    return array


def _check_pairs(arrays, paths):
    """Return the four arrays in ``MNIST_FILES`` order once each image file matches its label file."""
    names = list(MNIST_FILES)
    for images, labels in (names[0:2], names[2:4]):
        if len(arrays[images]) != len(arrays[labels]):
            raise MNISTFileError(paths[labels], f"holds {len(arrays[labels])} labels but {paths[images]} "
                                                f"holds {len(arrays[images])} images")
    return tuple(arrays[name] for name in names)


def _download(name, cache, mirrors, timeout, progress):
    """Fetch ``name``.gz into ``cache`` from the first mirror that serves MNIST's exact content.

    Returns ``(path, decompressed content)``. Raises ``MNISTDownloadError``.
    """
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MNISTError(f"cannot create the MNIST cache {cache}: {err}. {_LOCAL_COPY_HINT}") from err
    target = cache / f"{name}.gz"
    attempts = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{target.name}"
        try:
            return target, _fetch(url, target, name, timeout, progress)
        # OSError covers URLError, HTTPError, timeouts and resets; ValueError a malformed URL;
        # MNISTFileError (a ValueError) a file that arrived broken or is not MNIST's.
        except (OSError, http.client.HTTPException, ValueError) as err:
            reason = _describe(err)
            attempts.append((url, reason))
            _say(progress, f"  {url}: {reason}")
    raise MNISTDownloadError(target.name, cache, attempts)


def _fetch(url, target, name, timeout, progress):
    """Stream ``url`` to a temporary file beside ``target``; rename it only once its content checks out."""
    fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    part = Path(part)
    try:
        # Some CDNs refuse urllib's default User-Agent.
        request = urllib.request.Request(url, headers={"User-Agent": "fastscratch (MNIST download)"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            _copy(response, out, url, progress)
        content = _read_bytes(part)
        digest = hashlib.sha256(content).hexdigest()
        if digest != MNIST_FILES[name]:
            raise MNISTFileError(part, f"content has SHA-256 {digest}, not MNIST's {MNIST_FILES[name]}")
        os.replace(part, target)
        return content
    finally:
        part.unlink(missing_ok=True)


def _copy(response, out, url, progress):
    total = int(response.headers.get("Content-Length") or 0)
    done, drawn = 0, time.monotonic()
    live = progress and sys.stderr.isatty()   # redrawn lines would flood a log file
    try:
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            done += len(chunk)
            if live and time.monotonic() - drawn > 0.1:
                drawn = time.monotonic()
                print(f"\r{_progress_line(url, done, total)}", end="", file=sys.stderr, flush=True)
    finally:
        # The final count ends the line, also after a failure, so the next message starts afresh.
        _say(progress, ("\r" if live else "") + _progress_line(url, done, total))
    if total and done != total:
        raise http.client.IncompleteRead(b"", total - done)


def _progress_line(url, done, total):
    of_total = f" of {total / 1e6:.1f}" if total else ""
    return f"Downloading {url}: {done / 1e6:.1f}{of_total} MB"


def _describe(err):
    """A one-line reason for the list of mirrors tried."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return f"cannot connect: {err.reason}"
    if isinstance(err, http.client.IncompleteRead):
        return f"connection closed early, {err.expected} bytes short"
    if isinstance(err, MNISTFileError):
        return f"bad file: {err.problem}"
    return f"{type(err).__name__}: {err}"


def _say(progress, line):
    if progress:
        print(line, file=sys.stderr, flush=True)


def _pixels(name, X):
    """``X`` as (n, 784) raw pixels, or a clear error."""
    X = np.asarray(X)
    if X.dtype == np.bool_ or not np.issubdtype(X.dtype, np.integer):
        raise TypeError(f"{name} must hold raw integer pixels 0..255 as load_mnist returns them, "
                        f"got dtype {X.dtype} (already scaled?)")
    width = int(np.prod(IMAGE_SHAPE))
    if X.ndim < 2 or int(np.prod(X.shape[1:])) != width:
        raise ValueError(f"{name} must be images of shape (n, 28, 28) or (n, {width}), got shape {X.shape}")
    if X.dtype != np.uint8 and X.size and (X.min() < 0 or X.max() > 255):
        raise ValueError(f"{name} must hold pixels 0..255, got values {X.min()}..{X.max()}")
    # The lookup's result takes the index's memory layout: make that C order.
    return np.ascontiguousarray(X.reshape(len(X), width))


def _labels(name, y, n):
    """A C-contiguous copy of ``y`` as n integer class labels, or a clear error."""
    y = np.asarray(y)
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels 0..{NUM_CLASSES - 1}, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one label per image, got shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise ValueError(f"{name} must hold labels 0..{NUM_CLASSES - 1}, got values {y.min()}..{y.max()}")
    return np.array(y, order="C")
