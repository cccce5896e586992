"""MNIST-format datasets for the tutorial's script: find, download, verify and parse their four IDX files.

The tutorial loads MNIST with the ``mnist`` package, whose only source, the
original site, has answered HTTP 403 for years. This module returns what that
package returns, for every dataset in ``DATASETS`` (MNIST and its drop-in
replacement Fashion-MNIST), and finds the files itself, in order: the
``data_dir`` argument, the dataset's environment variable
(``FASTSCRATCH_MNIST_DIR``, ``FASTSCRATCH_FASHION_MNIST_DIR``), a system-wide
copy where a distribution package installs one (Debian's
``dataset-fashion-mnist``), a user cache, and finally a download from public
mirrors into that cache. Gzipped and uncompressed IDX files are both accepted.

Checksums: a digest is of a file's decompressed content, because copies are
compressed differently (Debian's and the local MNIST's ``.gz`` files differ
from the publishers', their content does not). SHA-256 of 55 MB takes about
0.04 s here, so every load checks the canonical digests unless
``verify=False``, which exists for other data in the same format and file
names (subsets, other datasets); the structure is always checked. Downloads
are always checked, whatever ``verify`` says: only a dataset's exact content
ever lands in the cache.

Hostile files: a file is read as a stream, hashed as it is read, and never
past the size its IDX header declares; with ``verify`` that size must be the
dataset's, without it at most ``config.MAX_ITEMS`` items. A small gzip file that
expands to gigabytes therefore costs at most the size of the real file.

Errors, all ``MNISTError`` (a ``RuntimeError``):
    ``MNISTFileError``: a file that is there but is not valid (bad gzip,
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
import os
import struct
import sys
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import mnist
import numpy as np

from fastscratch import config
from fastscratch._files import atomic_write
from fastscratch._validation import check_dtype

__all__ = ["load_dataset", "load_mnist", "use_with_mnist_package", "prepare", "default_cache_dir", "DATASETS",
           "Dataset", "DataFile", "LoadedDataset", "ENV_VAR", "MNISTError", "MNISTFileError",
           "MNISTDownloadError"]

IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
# IDX type codes (the format's own table), big-endian as the format says.
_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_HEADER_SIZE = {"images": 4 + 4 * (1 + len(IMAGE_SHAPE)), "labels": 4 + 4}


@dataclass(frozen=True)
class DataFile:
    """One of a dataset's four IDX files: its standard name (without ``.gz``) and its content's SHA-256 and size.

    Digest and size are of the decompressed content.
    """
    name: str
    sha256: str
    size: int

    @property
    def kind(self):
        """``"images"`` or ``"labels"``."""
        return "images" if "-images-" in self.name else "labels"

    @property
    def shape(self):
        """The array's shape, from the size: ``(n, 28, 28)`` or ``(n,)``."""
        items = (self.size - _HEADER_SIZE[self.kind]) // (int(np.prod(IMAGE_SHAPE)) if self.kind == "images" else 1)
        return (items, *IMAGE_SHAPE) if self.kind == "images" else (items,)


@dataclass(frozen=True)
class Dataset:
    """A dataset in MNIST's format: four IDX files of 28x28 uint8 images and labels 0..9."""
    name: str
    title: str
    classes: tuple
    files: tuple   # DataFile of train images, train labels, test images, test labels: load_dataset's order
    system_dirs: tuple = ()   # where a distribution package installs the files

    @property
    def mirrors(self):
        """Base URLs of the files, tried in turn: ``config.MIRRORS[name]``."""
        return tuple(config.MIRRORS.get(self.name, ()))

    @property
    def env_var(self):
        """``FASTSCRATCH_<NAME>_DIR``: a directory holding the four files."""
        return f"FASTSCRATCH_{self.name.upper().replace('-', '_')}_DIR"

    def local_copy_hint(self):
        return (f"To use a local copy of the four {self.title} files (gzipped or not), set "
                f"{self.env_var}=/path/to/{self.name}, pass --data-dir /path/to/{self.name} to `fastscratch train`, "
                f"or call load_dataset({self.name!r}, '/path/to/{self.name}').")


def _files(*digests):
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    sizes = (47040016, 60008, 7840016, 10008)   # 60000 and 10000 items, with their headers
    return tuple(DataFile(name, digest, size) for name, digest, size in zip(names, digests, sizes))


DATASETS = {dataset.name: dataset for dataset in (
    Dataset(
        "mnist", "MNIST", tuple(str(digit) for digit in range(NUM_CLASSES)),
        _files("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
               "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
               "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
               "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2")),
    Dataset(
        "fashion-mnist", "Fashion-MNIST",
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        # Computed from Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1 (Zalando's repository at
        # that commit). Debian's .gz files differ from Zalando's published .gz MD5s, their content does not:
        # its MD5s (f4a8712d..., 9018921c..., 8181f547..., 15d48437...) are the raw-file MD5s that loaders
        # publish beside Zalando's, and these SHA-256s are the raw-file digests other loaders hard-code.
        _files("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
               "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
               "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
               "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
        system_dirs=("/usr/share/datasets/fashion-mnist",)),   # Debian's dataset-fashion-mnist
)}

ENV_VAR = DATASETS["mnist"].env_var


class MNISTError(RuntimeError):
    """A dataset could not be loaded; the message says why and what to do."""


class MNISTFileError(MNISTError, mnist.IdxDecodeError):
    """A file that is present but is not valid; ``path`` names it."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = Path(path), problem


class MNISTDownloadError(MNISTError):
    """No mirror served a good copy of a file; ``attempts`` holds ``(url, reason)`` pairs."""

    def __init__(self, filename, cache, attempts, hint):
        tried = "".join(f"\n  {url}: {reason}" for url, reason in attempts) or "\n  (no mirrors configured)"
        super().__init__(f"could not download {filename} into {cache}; tried:{tried}\n{hint}")
        self.attempts = attempts


class LoadedDataset(tuple):
    """``(X_train, y_train, X_test, y_test)`` and where it came from.

    Attributes:
        dataset: the ``Dataset`` asked for.
        verified: whether all four files have the dataset's canonical digests
            (always true with ``verify=True``; with ``verify=False`` it says
            whether the data happens to be the dataset's).
        directory: the directory the files were read from.
        sha256: the SHA-256 of each file's content (decompressed), in the
            order of ``dataset.files``: what identifies the data a run saw.
    """

    def __new__(cls, arrays, dataset, verified, directory, sha256):
        self = super().__new__(cls, arrays)
        self.dataset, self.verified, self.directory, self.sha256 = dataset, verified, directory, tuple(sha256)
        return self

    def __reduce__(self):
        return type(self), (tuple(self), self.dataset, self.verified, self.directory, self.sha256)


def load_dataset(name="mnist", data_dir=None, *, download=True, progress=True, verify=True, mirrors=None,
                 timeout=None):
    """Return the dataset ``name`` of ``DATASETS`` as ``(X_train, y_train, X_test, y_test)`` uint8 arrays.

    Shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,) for the known
    datasets, as the ``mnist`` package gives MNIST. The result is a
    ``LoadedDataset``, a tuple that also says which dataset it is and whether
    it was verified. The files come from ``data_dir`` if given, else from the
    dataset's environment variable (``Dataset.env_var``) if set, and must all
    be there (nothing is downloaded for a directory named explicitly).
    Otherwise they come from a system-wide copy holding all four files (see
    ``Dataset.system_dirs``), else from ``default_cache_dir(name)``, where
    missing ones are downloaded first unless ``download`` is false.

    Args:
        progress: report downloads on stderr.
        verify: check each file's size and SHA-256 against the dataset's; turn
            off to read other data in MNIST's format (the structure is still
            checked).
        mirrors: base URLs (or one) to try in turn; defaults to the dataset's (``config.MIRRORS``).
        timeout: seconds a mirror may stay silent before the next is tried (``config.DOWNLOAD_TIMEOUT``).

    Raises:
        ValueError: ``name`` is not a known dataset.
        MNISTError: see the module docstring for its subclasses.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    dataset = DATASETS[name]
    if data_dir is not None:
        return _load_dir(dataset, Path(data_dir).expanduser(), "the data_dir argument", verify)
    if os.environ.get(dataset.env_var):
        return _load_dir(dataset, Path(os.environ[dataset.env_var]).expanduser(), f"${dataset.env_var}", verify)
    for directory in map(Path, dataset.system_dirs):
        if all(_find(directory, file.name) for file in dataset.files):
            return _load_dir(dataset, directory, "the system-wide copy", verify)
    mirrors = dataset.mirrors if mirrors is None else [mirrors] if isinstance(mirrors, str) else mirrors
    return _load_cache(dataset, download, progress, verify, mirrors,
                       config.DOWNLOAD_TIMEOUT if timeout is None else timeout)


def load_mnist(data_dir=None, *, download=True, progress=True, verify=True, mirrors=None, timeout=None):
    """``load_dataset("mnist", ...)``: MNIST, from ``data_dir``, ``$FASTSCRATCH_MNIST_DIR``, the cache or a mirror."""
    return load_dataset("mnist", data_dir, download=download, progress=progress, verify=verify, mirrors=mirrors,
                        timeout=timeout)


def use_with_mnist_package(data_dir=None, *, download=True, progress=True, mirrors=None, timeout=None):
    """Make the tutorial's own loading lines, ``import mnist; mnist.train_images()``, read the verified MNIST.

    The ``mnist`` package downloads ``<name>.gz`` from the original site (which
    answers HTTP 403) into ``tempfile.gettempdir()`` unless the file is already
    there; both are settings it documents (``mnist.datasets_url``,
    ``mnist.temporary_dir``). This finds and verifies MNIST as ``load_mnist``
    does (same arguments: ``data_dir``, ``$FASTSCRATCH_MNIST_DIR``, the cache,
    a download from the mirrors) and sets ``mnist.temporary_dir`` to a
    directory holding the four verified ``.gz`` files: the copy's own
    directory when it is gzipped, else ``default_cache_dir()``, where gzipped
    copies of the verified data are written once. The package then never goes
    online, whatever the working directory later becomes: the directory is
    stored absolute, with its symbolic links resolved. Returns that directory.

    Raises what ``load_mnist`` raises (and leaves the package as it was).
    """
    loaded = load_mnist(data_dir, download=download, progress=progress, verify=True, mirrors=mirrors,
                        timeout=timeout)
    dataset, directory = loaded.dataset, loaded.directory
    # The files load_mnist read are the ones _find picks; the package reads the .gz ones.
    if not all(_find(directory, file.name) == directory / f"{file.name}.gz" for file in dataset.files):
        directory = _gzipped_copy(dataset, loaded)
    directory = Path(directory).resolve()  # a relative path would be read from whatever directory is current then
    mnist.temporary_dir = lambda: str(directory)
    return directory


def _gzipped_copy(dataset, arrays):
    """The cache directory, holding ``<name>.gz`` of each of the dataset's verified ``arrays``."""
    cache = default_cache_dir(dataset.name)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MNISTError(f"cannot create the {dataset.title} cache {cache}: {err}") from err
    for file, array in zip(dataset.files, arrays):
        path = cache / f"{file.name}.gz"
        try:
            _read_idx(path, file, dataset, verify=True)
            continue  # already there and good
        except MNISTFileError:
            pass
        content = struct.pack(f">HBB{array.ndim}I", 0, 0x08, array.ndim, *array.shape) + array.tobytes()
        try:
            with atomic_write(path) as out:
                out.write(gzip.compress(content, compresslevel=1))
        except OSError as err:  # a read-only or full cache: load_mnist's kind of error, naming it
            raise MNISTError(f"cannot write the gzipped copy {path} for the mnist package: {err}") from err
    return cache


def default_cache_dir(name="mnist"):
    """``$XDG_CACHE_HOME/fastscratch/<name>``, or ``~/.cache/fastscratch/<name>``.

    As the XDG spec says, an empty or relative ``XDG_CACHE_HOME`` is ignored.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    return root / "fastscratch" / name


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


def missing_files(name, directory):
    """The files of the dataset ``name`` that ``directory`` lacks, as ``NAME[.gz]`` (all four when it is no
    directory): what ``load_dataset(name, directory)`` would refuse, found without reading anything."""
    directory = Path(directory).expanduser()
    return [f"{file.name}[.gz]" for file in DATASETS[name].files if _find(directory, file.name) is None]


def _find(directory, name):
    """The file holding ``name`` in ``directory``, uncompressed preferred (faster to read), or None."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _load_dir(dataset, directory, source, verify):
    names = [file.name for file in dataset.files]
    if not directory.is_dir():
        raise MNISTError(f"{dataset.title} directory {directory} (from {source}) does not exist or is not a "
                         f"directory. It should hold the four files: {', '.join(names)} (each may end in .gz).")
    paths = {file.name: _find(directory, file.name) for file in dataset.files}
    missing = [f"{name}[.gz]" for name, path in paths.items() if path is None]
    if missing:
        raise MNISTError(f"{dataset.title} directory {directory} (from {source}) has no {', '.join(missing)}; "
                         f"nothing is downloaded for a directory given explicitly.")
    read = [_read_idx(paths[file.name], file, dataset, verify) for file in dataset.files]
    return _loaded(dataset, read, list(paths.values()), directory)


def _load_cache(dataset, download, progress, verify, mirrors, timeout):
    cache = default_cache_dir(dataset.name)
    read, paths = [], []
    for file in dataset.files:
        path = _find(cache, file.name)
        if path is not None:
            try:
                read.append(_read_idx(path, file, dataset, verify))
            except MNISTFileError as err:
                raise MNISTFileError(path, f"{err.problem} (this is fastscratch's download cache: "
                                           f"delete the file and it will be downloaded again)") from err
        elif download:
            path, array = _download(dataset, file, cache, mirrors, timeout, progress)
            read.append((array, file.sha256))  # only the dataset's own content is kept
        else:
            raise MNISTError(f"{dataset.title} file {file.name} is not in the cache {cache} and download=False. "
                             f"{dataset.local_copy_hint()}")
        paths.append(path)
    return _loaded(dataset, read, paths, cache)


def _read_idx(path, file, dataset, verify):
    """Read the IDX file ``path`` as the dataset's ``file``: return ``(array, its content's SHA-256)``.

    The content is streamed through SHA-256 and never read past what the
    header declares; a header that disagrees with ``file`` (with ``verify``)
    or declares more than ``config.MAX_ITEMS`` items (without) is refused before any
    data is read.
    """
    try:
        raw = open(path, "rb")
    except OSError as err:
        raise MNISTFileError(path, f"cannot be read: {err}") from err
    with raw:
        compressed, digest = False, hashlib.sha256()
        try:
            compressed = raw.read(2) == _GZIP_MAGIC
            raw.seek(0)
            stream = gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw
            array = _parse(stream, digest, path, file, dataset, verify)
        # Bad header or CRC (OSError), a truncated stream (EOFError), corrupt deflate data (zlib.error).
        except (OSError, EOFError, zlib.error) as err:
            if not compressed:
                raise MNISTFileError(path, f"cannot be read: {err}") from err
            raise MNISTFileError(path, f"is not a valid gzip file (corrupt or truncated): {err}") from err
    if verify and digest.hexdigest() != file.sha256:
        raise MNISTFileError(path, f"content has SHA-256 {digest.hexdigest()}, not {dataset.title}'s "
                                   f"{file.sha256}; pass verify=False to read other data in this format")
    return array, digest.hexdigest()


def _parse(stream, digest, path, file, dataset, verify):
    """The array of the IDX ``stream``, checked to be what ``file`` holds; everything read goes into ``digest``."""
    def read(size):
        data = stream.read(size)
        digest.update(data)
        return data

    header = read(4)
    if len(header) != 4:
        raise MNISTFileError(path, "is not a valid IDX file: it is empty or does not contain a full header")
    zeros, type_code, ndim = struct.unpack(">HBB", header)
    if zeros != 0:
        raise MNISTFileError(path, f"is not a valid IDX file: it must start with two zero bytes, found 0x{zeros:04x}")
    if type_code not in _IDX_TYPES:
        raise MNISTFileError(path, f"is not a valid IDX file: Unknown data type 0x{type_code:02x}")
    dims = read(4 * ndim)
    if ndim == 0 or len(dims) != 4 * ndim:
        raise MNISTFileError(path, f"is not a valid IDX file: its header declares {ndim} dimensions "
                                   f"and holds {len(dims) // 4}")
    shape, dtype = struct.unpack(f">{ndim}I", dims), np.dtype(_IDX_TYPES[type_code])
    expected = f"(n, {', '.join(map(str, IMAGE_SHAPE))})" if file.kind == "images" else "(n,)"
    if dtype != np.uint8 or shape[1:] != file.shape[1:] or shape[0] == 0:
        raise MNISTFileError(path, f"holds {dtype.name} data of shape {shape}, expected the uint8 {file.kind} "
                                   f"of {file.name}, shape {expected} with n > 0")
    if verify and shape != file.shape:
        raise MNISTFileError(path, f"declares shape {shape}, {dataset.title}'s {file.name} has shape "
                                   f"{file.shape}; pass verify=False to read other data in this format")
    if shape[0] > config.MAX_ITEMS:
        raise MNISTFileError(path, f"declares {shape[0]} {file.kind}, more than the {config.MAX_ITEMS} "
                                   f"fastscratch reads from one file")
    array = np.empty(shape, np.uint8)
    buffer, done = memoryview(array).cast("B"), 0
    while done < array.size and (chunk := read(min(_CHUNK, array.size - done))):
        buffer[done:done + len(chunk)] = chunk
        done += len(chunk)
    if done < array.size or read(1):
        found = f"{done} items" if done < array.size else "more"
        raise MNISTFileError(path, f"has the wrong number of items: its header declares {array.size}, "
                                   f"the file holds {found}")
    if file.kind == "labels" and array.max() >= NUM_CLASSES:
        raise MNISTFileError(path, f"holds label {array.max()}, expected labels 0..{NUM_CLASSES - 1}")
    return array


def _loaded(dataset, read, paths, directory):
    """The four arrays as a ``LoadedDataset`` once each image file matches its label file."""
    arrays, digests = [array for array, _ in read], [digest for _, digest in read]
    for images, labels in ((0, 1), (2, 3)):
        if len(arrays[images]) != len(arrays[labels]):
            raise MNISTFileError(paths[labels], f"holds {len(arrays[labels])} labels but {paths[images]} "
                                                f"holds {len(arrays[images])} images")
    verified = all(digest == file.sha256 for file, digest in zip(dataset.files, digests))
    return LoadedDataset(arrays, dataset, verified, directory, digests)


def _download(dataset, file, cache, mirrors, timeout, progress):
    """Fetch ``file``.gz into ``cache`` from the first mirror that serves the dataset's exact content.

    Returns ``(path, array)``. Raises ``MNISTDownloadError``.
    """
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise MNISTError(f"cannot create the {dataset.title} cache {cache}: {err}. "
                         f"{dataset.local_copy_hint()}") from err
    target = cache / f"{file.name}.gz"
    attempts = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{target.name}"
        try:
            return target, _fetch(url, target, file, dataset, timeout, progress)
        # OSError covers URLError, HTTPError, timeouts and resets; ValueError a malformed URL;
        # MNISTFileError (a ValueError) a file that arrived broken or is not the dataset's.
        except (OSError, http.client.HTTPException, ValueError) as err:
            reason = _describe(err)
            attempts.append((url, reason))
            _say(progress, f"  {url}: {reason}")
    raise MNISTDownloadError(target.name, cache, attempts, dataset.local_copy_hint())


def _fetch(url, target, file, dataset, timeout, progress):
    """Stream ``url`` into a temporary file beside ``target``, which becomes ``target`` only once its content
    checks out."""
    # Some CDNs refuse urllib's default User-Agent.
    request = urllib.request.Request(url, headers={"User-Agent": "fastscratch (dataset download)"})
    with atomic_write(target) as out, urllib.request.urlopen(request, timeout=timeout) as response:
        # Deflate never grows data by more than 0.1% and a few bytes: anything longer is not this file.
        _copy(response, out, url, progress, limit=file.size + file.size // 1000 + 1024)
        out.flush()
        array, _ = _read_idx(out.temporary_path, file, dataset, verify=True)
    return array


def _copy(response, out, url, progress, limit):
    total = int(response.headers.get("Content-Length") or 0)
    if total > limit:
        raise MNISTFileError(url, f"is {total} bytes long, more than the {limit} its content can take")
    done, drawn = 0, time.monotonic()
    live = progress and sys.stderr.isatty()   # redrawn lines would flood a log file
    try:
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            done += len(chunk)
            if done > limit:
                raise MNISTFileError(url, f"sends more than the {limit} bytes its content can take")
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
