"""fastscratch.datasets: the real MNIST, where files are looked for, broken local files, downloads
from mirrors on 127.0.0.1 (good, 403, truncated, corrupt, silent), and the tutorial's preparation.

Downloads and local faults use small synthetic MNIST-format files whose digests replace MNIST's.
"""
import gzip
import hashlib
import http.server
import io
import os
import socket
import struct
import sys
import threading
import time
from pathlib import Path

import mnist
import numpy as np
import pytest

from fastscratch import datasets
from fastscratch.datasets import (ENV_VAR, MNIST_FILES, MNISTDownloadError, MNISTError, MNISTFileError,
                                  default_cache_dir, load_mnist, prepare)

NAMES = list(MNIST_FILES)
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]   # dataset README
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx(array, type_code=0x08):
    """``array`` as the content of an IDX file."""
    return struct.pack(f">HBB{array.ndim}I", 0, type_code, array.ndim, *array.shape) + array.tobytes()


def write(directory, contents, compress=True):
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(content))
        else:
            (directory / name).write_bytes(content)
    return directory


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """Keep every test away from the user's cache and from the session's FASTSCRATCH_MNIST_DIR."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(ENV_VAR, raising=False)


@pytest.fixture
def synthetic(monkeypatch, rng):
    """IDX contents of a tiny MNIST (5 training, 3 test images), with its digests made the canonical ones."""
    arrays = {NAMES[0]: rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              NAMES[1]: rng.integers(0, 10, 5, dtype=np.uint8),
              NAMES[2]: rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
              NAMES[3]: rng.integers(0, 10, 3, dtype=np.uint8)}
    contents = {name: idx(array) for name, array in arrays.items()}
    monkeypatch.setattr(datasets, "MNIST_FILES",
                        {name: hashlib.sha256(content).hexdigest() for name, content in contents.items()})
    return arrays, contents


def assert_arrays(loaded, expected):
    assert len(loaded) == 4
    for array, name in zip(loaded, NAMES):
        assert array.dtype == np.uint8
        np.testing.assert_array_equal(array, expected[name])


# --- the real MNIST -------------------------------------------------------------------------------

def test_real_shapes_and_dtypes(mnist_raw):
    shapes = [(60000, 28, 28), (60000,), (10000, 28, 28), (10000,)]
    for array, shape in zip(mnist_raw, shapes):
        assert array.shape == shape and array.dtype == np.uint8 and array.flags.c_contiguous


def test_real_label_counts(mnist_raw):
    _, y_train, _, y_test = mnist_raw
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_LABEL_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_LABEL_COUNTS


def test_real_arrays_are_exactly_the_canonical_files(mnist_raw):
    for array, name in zip(mnist_raw, NAMES):
        assert hashlib.sha256(idx(array)).hexdigest() == MNIST_FILES[name]


def test_real_arrays_equal_the_mnist_package(mnist_dir, mnist_raw):
    # With the file already in target_dir, the package parses it without downloading.
    for array, name in zip(mnist_raw, NAMES):
        theirs = mnist.download_and_parse_mnist_file(f"{name}.gz", target_dir=mnist_dir)
        assert theirs.dtype == array.dtype
        np.testing.assert_array_equal(theirs, array)


def test_real_uncompressed_files_load_the_same(mnist_dir, mnist_raw, tmp_path):
    for name in NAMES[:2]:   # the big training files stay gzipped, linked, to keep the test quick
        (tmp_path / f"{name}.gz").symlink_to(Path(mnist_dir) / f"{name}.gz")
    for name in NAMES[2:]:
        (tmp_path / name).write_bytes(gzip.decompress((Path(mnist_dir) / f"{name}.gz").read_bytes()))
    assert_arrays(load_mnist(tmp_path), dict(zip(NAMES, mnist_raw)))


def test_real_prepare_matches_the_tutorial(mnist_raw, mnist_prepared):
    X_train, y_train, X_test, y_test = mnist_raw
    num_classes = 10
    expected = (X_train.reshape(-1, 28 * 28) / 255., np.eye(num_classes)[y_train],
                X_test.reshape(-1, 28 * 28) / 255., y_test)
    for ours, theirs in zip(mnist_prepared, expected):
        assert ours.dtype == theirs.dtype and ours.flags.c_contiguous
        np.testing.assert_array_equal(ours, theirs)


# --- where the files are looked for ----------------------------------------------------------------

def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "elsewhere"))
    assert default_cache_dir() == tmp_path / "elsewhere" / "fastscratch" / "mnist"
    for unusable in ("", "relative/cache"):   # the XDG spec says to ignore both
        monkeypatch.setenv("XDG_CACHE_HOME", unusable)
        assert default_cache_dir() == tmp_path / "home" / ".cache" / "fastscratch" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "fastscratch" / "mnist"


def test_env_var_dir_is_used_before_the_cache(monkeypatch, synthetic, tmp_path, mirrors):
    arrays, contents = synthetic
    monkeypatch.setenv(ENV_VAR, str(write(tmp_path / "env", contents)))
    assert_arrays(load_mnist(mirrors=[f"{mirrors.url}/good/"]), arrays)
    assert mirrors.requests == []


def test_argument_is_used_before_the_env_var(monkeypatch, synthetic, tmp_path):
    arrays, contents = synthetic
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    assert_arrays(load_mnist(write(tmp_path / "arg", contents)), arrays)


def test_gzipped_and_plain_files_mix(synthetic, tmp_path):
    arrays, contents = synthetic
    write(tmp_path, dict(list(contents.items())[:2]), compress=False)
    write(tmp_path, dict(list(contents.items())[2:]), compress=True)
    assert_arrays(load_mnist(tmp_path), arrays)


@pytest.mark.parametrize("via_env", [False, True])
def test_explicit_dir_missing_files_is_an_error_not_a_download(monkeypatch, synthetic, tmp_path, mirrors,
                                                               via_env):
    _, contents = synthetic
    directory = write(tmp_path / "partial", {NAMES[0]: contents[NAMES[0]]})
    if via_env:
        monkeypatch.setenv(ENV_VAR, str(directory))
    with pytest.raises(MNISTError) as info:
        load_mnist(None if via_env else directory, mirrors=[f"{mirrors.url}/good/"])
    message = str(info.value)
    assert str(directory) in message and (ENV_VAR if via_env else "data_dir") in message
    assert all(name in message for name in NAMES[1:]) and f"{NAMES[0]}[" not in message
    assert mirrors.requests == []


def test_explicit_dir_that_does_not_exist(tmp_path):
    with pytest.raises(MNISTError, match="does not exist"):
        load_mnist(tmp_path / "nowhere")


# --- broken local files ----------------------------------------------------------------------------

def _replace_header(content, fmt, *values):
    return struct.pack(fmt, *values) + content[struct.calcsize(fmt):]


BROKEN = {   # case: (file, content made from the good content c, words the message must contain)
    "empty": (0, lambda c: b"", "full header"),
    "bad magic": (0, lambda c: b"\x01\x02" + c[2:], "two zero bytes"),
    "unknown data type": (0, lambda c: _replace_header(c, ">HB", 0, 0x07), "Unknown data type"),
    "header cut short": (0, lambda c: c[:6], "not a valid IDX file"),
    "zero dimensions": (0, lambda c: struct.pack(">HBB", 0, 0x08, 0), "not a valid IDX file"),
    "short data": (0, lambda c: c[:-10], "wrong number of items"),
    "wrong count": (1, lambda c: _replace_header(c, ">HBBI", 0, 0x08, 1, 6), "wrong number of items"),
    "absurd count": (0, lambda c: _replace_header(c, ">HBBI", 0, 0x08, 3, 2 ** 32 - 1), "wrong number of items"),
    "not whole items": (0, lambda c: _replace_header(c, ">HBB", 0, 0x0B, 3)[:-1], "not a valid IDX file"),
    "float data": (2, lambda c: idx(np.zeros((3, 28, 28), ">f4"), 0x0D), "float32 data"),
    "wrong image size": (2, lambda c: idx(np.zeros((3, 28, 27), np.uint8)), "shape (3, 28, 27)"),
    "labels as images": (0, lambda c: idx(np.zeros(5, np.uint8)), "shape (5,)"),
    "label out of range": (3, lambda c: c[:-1] + b"\x0a", "label 10"),
    "fewer labels than images": (1, lambda c: idx(np.zeros(4, np.uint8)), "4 labels"),   # needs verify=False
    "checksum mismatch": (2, lambda c: c[:-1] + bytes([c[-1] ^ 1]), "verify=False"),
    "bad gzip": (0, lambda c: b"\x1f\x8b" + b"\x00" * 40, "not a valid gzip file"),
    "truncated gzip": (3, lambda c: gzip.compress(c)[:-8], "not a valid gzip file"),
    "corrupt gzip": (2, lambda c: (lambda z: z[:20] + bytes(b ^ 0xFF for b in z[20:40]) + z[40:])(gzip.compress(c)),
                     "not a valid gzip file"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_local_file_names_the_file(synthetic, tmp_path, case):
    _, contents = synthetic
    which, damage, words = BROKEN[case]
    name = NAMES[which]
    write(tmp_path, {other: content for other, content in contents.items() if other != name})
    path = tmp_path / name   # uncompressed, so that "bad gzip" cases are told apart by content
    path.write_bytes(damage(contents[name]))
    start = time.perf_counter()
    with pytest.raises(MNISTFileError) as info:
        # Files are checked one by one, so each count fits its digest until both files of a pair are read.
        load_mnist(tmp_path, verify=case != "fewer labels than images")
    assert time.perf_counter() - start < 2
    assert info.value.path == path and str(path) in str(info.value) and words in str(info.value)
    assert isinstance(info.value, mnist.IdxDecodeError) and isinstance(info.value, ValueError)


def test_verify_false_reads_other_mnist_format_data(synthetic, tmp_path):
    arrays, contents = synthetic
    arrays[NAMES[2]][0, 0, 0] ^= 1
    write(tmp_path, {name: idx(array) for name, array in arrays.items()})
    with pytest.raises(MNISTFileError, match="SHA-256"):
        load_mnist(tmp_path)
    assert_arrays(load_mnist(tmp_path, verify=False), arrays)


# --- downloads from mirrors on 127.0.0.1 ----------------------------------------------------------

class _MirrorHandler(http.server.BaseHTTPRequestHandler):
    """The first path segment names how the mirror behaves; the rest names the file."""

    def do_GET(self):
        self.server.requests.append(self.path)
        behaviour, _, filename = self.path.lstrip("/").partition("/")
        body = self.server.files.get(filename)
        if behaviour == "silent":   # accepts the connection, never answers
            self.server.release.wait(10)
            return
        if behaviour == "forbidden" or body is None:
            self.send_error(403 if behaviour == "forbidden" else 404)
            return
        declared = len(body)
        if behaviour == "truncated":   # a shorter file, honestly declared
            body = body[:len(body) // 2]
            declared = len(body)
        elif behaviour == "cut":   # the connection drops half-way through
            body = body[:len(body) // 2]
        elif behaviour == "corrupt":   # bytes damaged in transit
            body = body[:12] + bytes(b ^ 0xFF for b in body[12:20]) + body[20:]
        elif behaviour == "wrong":   # a valid gzip file whose content has one byte too many
            body += gzip.compress(b"\x00")
            declared = len(body)
        self.send_response(200)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):   # keep the test output clean
        pass


@pytest.fixture
def mirrors():
    """An HTTP server on an ephemeral 127.0.0.1 port; set ``.files`` to what the good mirror serves."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MirrorHandler)
    server.files, server.requests, server.release = {}, [], threading.Event()
    server.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def serving(mirrors, synthetic):
    arrays, contents = synthetic
    mirrors.files = {f"{name}.gz": gzip.compress(content) for name, content in contents.items()}
    return mirrors, arrays


@pytest.fixture
def closed_port_url():
    """A URL at which nothing listens: connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def cache_listing():
    cache = default_cache_dir()
    return sorted(os.listdir(cache)) if cache.exists() else []


def test_download_tries_mirrors_in_order_and_caches_only_good_files(serving, capsys):
    server, arrays = serving
    behaviours = ["forbidden", "truncated", "cut", "corrupt", "wrong", "good"]
    assert_arrays(load_mnist(mirrors=[f"{server.url}/{b}/" for b in behaviours], timeout=5), arrays)
    assert server.requests == [f"/{b}/{name}.gz" for name in NAMES for b in behaviours]
    assert cache_listing() == sorted(f"{name}.gz" for name in NAMES)   # no temporary files left
    for name in NAMES:
        assert gzip.decompress((default_cache_dir() / f"{name}.gz").read_bytes()) == idx(arrays[name])
    err = capsys.readouterr().err
    for reason in ("HTTP 403", "not a valid gzip file", "bytes short", "SHA-256", "Downloading"):
        assert reason in err
    assert err.count(f"Downloading {server.url}/good/") == 4


def test_no_reachable_mirror_is_one_clear_error(serving, closed_port_url):
    server, _ = serving
    tried = [f"{server.url}/{b}/" for b in ("forbidden", "truncated", "cut", "corrupt", "wrong", "silent")]
    tried.append(closed_port_url)
    start = time.perf_counter()
    with pytest.raises(MNISTDownloadError) as info:
        load_mnist(mirrors=tried, timeout=0.5, progress=False)
    assert time.perf_counter() - start < 5   # the silent mirror is given up after the timeout
    message = str(info.value)
    assert [url for url, _ in info.value.attempts] == [f"{url}{NAMES[0]}.gz" for url in tried]
    for url in tried:
        assert f"{url}{NAMES[0]}.gz: " in message
    for words in ("HTTP 403", "timed out", "refused", ENV_VAR, "--data-dir", str(default_cache_dir())):
        assert words in message
    assert cache_listing() == []


def test_interrupted_download_leaves_no_partial_file(serving, monkeypatch):
    server, _ = serving

    def interrupted(response, out, url, progress):
        out.write(response.read(10))
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "_copy", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_mnist(mirrors=[f"{server.url}/good/"], progress=False)
    assert cache_listing() == []


def test_cache_is_used_without_the_network(serving):
    server, arrays = serving
    load_mnist(mirrors=[f"{server.url}/good/"], progress=False)
    server.requests.clear()
    assert_arrays(load_mnist(mirrors=[f"{server.url}/forbidden/"], progress=False), arrays)
    assert_arrays(load_mnist(download=False), arrays)
    assert server.requests == []


def test_only_missing_files_are_downloaded(serving):
    server, arrays = serving
    write(default_cache_dir(), {name: idx(arrays[name]) for name in NAMES[:2]}, compress=False)
    assert_arrays(load_mnist(mirrors=f"{server.url}/good", progress=False), arrays)   # one mirror as a string
    assert server.requests == [f"/good/{name}.gz" for name in NAMES[2:]]


def test_module_level_mirrors_are_the_default(serving, monkeypatch):
    server, arrays = serving
    monkeypatch.setattr(datasets, "MIRRORS", [f"{server.url}/forbidden/", f"{server.url}/good/"])
    assert_arrays(load_mnist(progress=False), arrays)
    assert server.requests[:2] == [f"/forbidden/{NAMES[0]}.gz", f"/good/{NAMES[0]}.gz"]


def test_corrupt_cached_file_is_named_with_the_remedy(serving):
    server, arrays = serving
    path = default_cache_dir() / f"{NAMES[1]}.gz"
    write(default_cache_dir(), {name: idx(arrays[name]) for name in NAMES})
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(MNISTFileError, match="delete the file") as info:
        load_mnist(mirrors=[f"{server.url}/good/"], progress=False)
    assert info.value.path == path


def test_download_false_with_an_empty_cache(serving):
    server, _ = serving
    with pytest.raises(MNISTError, match=f"download=False.*{ENV_VAR}"):
        load_mnist(download=False, mirrors=[f"{server.url}/good/"])
    assert server.requests == []


def test_progress_false_is_silent(serving, capsys):
    server, _ = serving
    load_mnist(mirrors=[f"{server.url}/forbidden/", f"{server.url}/good/"], progress=False)
    assert capsys.readouterr().err == ""


def test_progress_on_a_terminal_ends_each_redrawn_line(serving, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    server, _ = serving
    monkeypatch.setattr(sys, "stderr", Terminal())
    load_mnist(mirrors=[f"{server.url}/good/"])
    lines = sys.stderr.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) == 5
    assert all(line.startswith(f"\rDownloading {server.url}/good/") for line in lines[:-1])


def test_uncreatable_cache_is_one_clear_error(serving, monkeypatch, tmp_path):
    server, _ = serving
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    with pytest.raises(MNISTError, match=f"cannot create the MNIST cache.*{ENV_VAR}"):
        load_mnist(mirrors=[f"{server.url}/good/"])
    assert server.requests == []


def test_download_of_the_real_files_checks_the_real_digests(mirrors, mnist_dir, mnist_raw):
    mirrors.files = {f"{name}.gz": (Path(mnist_dir) / f"{name}.gz").read_bytes() for name in NAMES}
    assert_arrays(load_mnist(mirrors=[f"{mirrors.url}/wrong/", f"{mirrors.url}/good/"], progress=False),
                  dict(zip(NAMES, mnist_raw)))
    assert cache_listing() == sorted(f"{name}.gz" for name in NAMES)


# --- prepare --------------------------------------------------------------------------------------

def _every_pixel_value():
    """Two images holding every value 0..255, and labels covering every class."""
    X = np.resize(np.arange(256, dtype=np.uint8), (2, 28, 28))
    return X, np.array([3, 9], np.uint8)


@pytest.mark.parametrize("dtype, as_uint", [(np.float64, np.uint64), (np.float32, np.uint32)])
def test_prepare_scales_every_pixel_value_as_the_tutorial(dtype, as_uint):
    X, y = _every_pixel_value()
    X_train, Y_train, X_test, y_test = prepare(X, y, X[::-1], y[::-1], dtype=dtype)
    expected = (X.reshape(-1, 28 * 28) / 255.).astype(dtype)
    assert X_train.dtype == dtype and X_train.shape == (2, 784)
    np.testing.assert_array_equal(X_train.view(as_uint), expected.view(as_uint))   # bit for bit
    np.testing.assert_array_equal(X_test.view(as_uint), expected[::-1].view(as_uint))
    np.testing.assert_array_equal(Y_train, np.eye(10, dtype=dtype)[y])
    assert Y_train.dtype == dtype
    np.testing.assert_array_equal(y_test, y[::-1])
    assert y_test.dtype == y.dtype


def test_prepare_returns_new_contiguous_arrays(rng):
    X = rng.integers(0, 256, (6, 784), dtype=np.int64)   # flat images of another integer type
    y = rng.integers(0, 10, 6)
    outputs = prepare(np.asfortranarray(X)[::2], y[::2], X[1::2], y[1::2])
    assert all(a.flags.c_contiguous and a.flags.owndata for a in outputs)
    np.testing.assert_array_equal(outputs[0], X[::2] / 255.)
    np.testing.assert_array_equal(outputs[3], y[1::2])


@pytest.mark.parametrize("change, error, words", [
    (dict(X_train=np.zeros((2, 28, 28))), TypeError, "already scaled"),
    (dict(X_train=np.zeros((2, 28, 27), np.uint8)), ValueError, "X_train must be images"),
    (dict(X_test=np.full((2, 784), 256, np.int16)), ValueError, "pixels 0..255"),
    (dict(y_train=np.array([3, 10])), ValueError, "labels 0..9"),
    (dict(y_train=np.array([3])), ValueError, "shape (2,)"),
    (dict(y_test=np.array([0.0, 1.0])), TypeError, "y_test must hold integer"),
    (dict(dtype=np.int32), TypeError, "float32 or float64"),
])
def test_prepare_rejects_what_it_cannot_prepare(change, error, words):
    X, y = _every_pixel_value()
    arguments = dict(X_train=X, y_train=y, X_test=X, y_test=y) | change
    with pytest.raises(error) as info:
        prepare(**arguments)
    assert words in str(info.value)
