"""fastscratch.datasets: the real MNIST, where files are looked for, broken local files, downloads
from mirrors on 127.0.0.1 (good, 403, truncated, corrupt, silent), and the tutorial's preparation.

Downloads and local faults use small synthetic MNIST-format files whose digests replace MNIST's.
"""
import dataclasses
import gzip
import hashlib
import http.server
import io
import os
import pickle
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import mnist
import numpy as np
import pytest

from fastscratch import config, datasets
from fastscratch.datasets import (DATASETS, ENV_VAR, MNISTDownloadError, MNISTError, MNISTFileError,
                                  default_cache_dir, load_mnist, prepare)

MNIST = DATASETS["mnist"]
NAMES = [file.name for file in MNIST.files]
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
    use_as_canonical(monkeypatch, "mnist", contents)
    return arrays, contents


def use_as_canonical(monkeypatch, name, contents, **changes):
    """Make ``contents`` (IDX content by file name) the files of dataset ``name``, with their digests and sizes."""
    files = tuple(datasets.DataFile(file, hashlib.sha256(contents[file]).hexdigest(), len(contents[file]))
                  for file in NAMES)
    monkeypatch.setitem(datasets.DATASETS, name, dataclasses.replace(DATASETS[name], files=files, **changes))


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
        assert hashlib.sha256(idx(array)).hexdigest() == MNIST.files[NAMES.index(name)].sha256


def test_loaded_data_says_each_files_sha256(mnist_raw, synthetic, tmp_path, rng):
    """The digests of the content read, decompressed: the published ones for the real files, and the content's
    own for other data in MNIST's format (what a run records to know its data again)."""
    assert mnist_raw.sha256 == tuple(file.sha256 for file in MNIST.files)
    arrays, contents = fashion_like(rng)
    write(tmp_path, contents)
    loaded = datasets.load_dataset("mnist", tmp_path, verify=False)
    assert loaded.sha256 == tuple(hashlib.sha256(contents[name]).hexdigest() for name in NAMES)
    again = pickle.loads(pickle.dumps(loaded))  # Dask ships datasets to workers
    assert (again.sha256, again.verified, again.directory) == (loaded.sha256, False, tmp_path)


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


BROKEN = {   # case: (file, content made from the good content c, words the message must contain, verify)
    "empty": (0, lambda c: b"", "full header", True),
    "bad magic": (0, lambda c: b"\x01\x02" + c[2:], "two zero bytes", True),
    "unknown data type": (0, lambda c: _replace_header(c, ">HB", 0, 0x07), "Unknown data type", True),
    "header cut short": (0, lambda c: c[:6], "not a valid IDX file", True),
    "zero dimensions": (0, lambda c: struct.pack(">HBB", 0, 0x08, 0), "not a valid IDX file", True),
    "short data": (0, lambda c: c[:-10], "wrong number of items", True),
    "trailing data": (0, lambda c: c + bytes(10), "wrong number of items", False),
    "wrong count": (1, lambda c: _replace_header(c, ">HBBI", 0, 0x08, 1, 6), "declares shape (6,)", True),
    "wrong count unverified": (1, lambda c: _replace_header(c, ">HBBI", 0, 0x08, 1, 6), "wrong number of items",
                               False),
    "absurd count": (0, lambda c: _replace_header(c, ">HBBI", 0, 0x08, 3, 2 ** 32 - 1), "declares shape", True),
    "absurd count unverified": (0, lambda c: _replace_header(c, ">HBBI", 0, 0x08, 3, 2 ** 32 - 1),
                                "more than the 1000000", False),
    "not bytes": (0, lambda c: _replace_header(c, ">HBB", 0, 0x0B, 3)[:-1], "int16 data", True),
    "float data": (2, lambda c: idx(np.zeros((3, 28, 28), ">f4"), 0x0D), "float32 data", True),
    "wrong image size": (2, lambda c: idx(np.zeros((3, 28, 27), np.uint8)), "shape (3, 28, 27)", True),
    "labels as images": (0, lambda c: idx(np.zeros(5, np.uint8)), "shape (5,)", True),
    "label out of range": (3, lambda c: c[:-1] + b"\x0a", "label 10", True),
    # Files are checked one by one, so each count fits its digest until both files of a pair are read.
    "fewer labels than images": (1, lambda c: idx(np.zeros(4, np.uint8)), "4 labels", False),
    "checksum mismatch": (2, lambda c: c[:-1] + bytes([c[-1] ^ 1]), "verify=False", True),
    "bad gzip": (0, lambda c: b"\x1f\x8b" + b"\x00" * 40, "not a valid gzip file", True),
    "truncated gzip": (3, lambda c: gzip.compress(c)[:-8], "not a valid gzip file", True),
    # Deflate block type 3 is reserved: corrupt from the first compressed byte on.
    "corrupt gzip": (2, lambda c: (lambda z: z[:10] + b"\xff" * 8 + z[18:])(gzip.compress(c)),
                     "not a valid gzip file", True),
    "gzip crc": (2, lambda c: (lambda z: z[:-8] + bytes([z[-8] ^ 1]) + z[-7:])(gzip.compress(c)),
                 "not a valid gzip file", False),
}


BOMB_CHECK = """
import sys, time, tracemalloc
from pathlib import Path
from fastscratch.datasets import MNISTFileError, load_mnist
tracemalloc.start()
start = time.perf_counter()
try:
    load_mnist(sys.argv[1], verify=sys.argv[2] == "verify")
except MNISTFileError as err:
    assert err.path == Path(sys.argv[1]) / "train-images-idx3-ubyte.gz", err.path
    # VmHWM: this interpreter's peak RSS (ru_maxrss would keep the parent's across exec).
    peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(tracemalloc.get_traced_memory()[1], peak, time.perf_counter() - start, err.problem)
"""


@pytest.mark.parametrize("declared, verify, words", [
    ((60000, 28, 28), "verify", "wrong number of items"),   # MNIST's header, then far more data
    ((60000, 28, 28), "no-verify", "wrong number of items"),
    ((1 << 20, 28, 28), "verify", "declares shape"),   # a header that asks for 822 MB
    ((1 << 21, 28, 28), "no-verify", "more than the"),
])
def test_decompression_bomb_fails_fast_in_bounded_memory(synthetic, tmp_path, declared, verify, words):
    """A 1 MB gzip file of 1 GiB: refused after at most the real file's 47 MB, measured in a fresh interpreter."""
    _, contents = synthetic
    write(tmp_path, {name: content for name, content in contents.items() if name != NAMES[0]})
    # Gzip members concatenated make one valid gzip stream: 1024 members of 1 MiB of zeros each.
    header = struct.pack(">HBB3I", 0, 0x08, 3, *declared)
    member = gzip.compress(bytes(1 << 20), compresslevel=9)
    with open(tmp_path / f"{NAMES[0]}.gz", "wb") as bomb:
        bomb.write(gzip.compress(header))
        for _ in range(1024):
            bomb.write(member)
    assert (tmp_path / f"{NAMES[0]}.gz").stat().st_size < 1.1e6
    # The real MNIST sizes: synthetic's tiny ones would stop the read even earlier.
    run = subprocess.run([sys.executable, "-c", BOMB_CHECK, str(tmp_path), verify],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout, run.stderr
    traced, max_rss, seconds, problem = run.stdout.split(" ", 3)
    assert words in problem
    assert int(traced) < 60e6   # the 47 MB array at most, never the gibibyte
    assert int(max_rss) < 300e6   # with the interpreter, NumPy and Numba's imports


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_local_file_names_the_file(synthetic, tmp_path, case):
    _, contents = synthetic
    which, damage, words, verify = BROKEN[case]
    name = NAMES[which]
    write(tmp_path, {other: content for other, content in contents.items() if other != name})
    path = tmp_path / name   # uncompressed, so that "bad gzip" cases are told apart by content
    path.write_bytes(damage(contents[name]))
    with pytest.raises(MNISTFileError) as info:
        load_mnist(tmp_path, verify=verify)
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
        elif behaviour == "altered":   # a valid file of the right size, one pixel changed
            content = bytearray(gzip.decompress(body))
            content[-1] ^= 1
            body = gzip.compress(bytes(content))
            declared = len(body)
        elif behaviour in ("bomb", "unsized-bomb"):   # the right content and 16 MB of zeros: 16 KB compressed
            body = gzip.compress(gzip.decompress(body) + bytes(1 << 24))
            declared = len(body) if behaviour == "bomb" else None
        self.send_response(200)
        if declared is not None:   # else the body ends when the connection closes (HTTP/1.0)
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
    behaviours = ["forbidden", "truncated", "cut", "corrupt", "wrong", "altered", "bomb", "unsized-bomb", "good"]
    assert_arrays(load_mnist(mirrors=[f"{server.url}/{b}/" for b in behaviours], timeout=5), arrays)
    assert server.requests == [f"/{b}/{name}.gz" for name in NAMES for b in behaviours]
    assert cache_listing() == sorted(f"{name}.gz" for name in NAMES)   # no temporary files left
    for name in NAMES:
        assert gzip.decompress((default_cache_dir() / f"{name}.gz").read_bytes()) == idx(arrays[name])
    err = capsys.readouterr().err
    for reason in ("HTTP 403", "not a valid gzip file", "bytes short", "wrong number of items", "SHA-256",
                   "more than the", "sends more than", "Downloading"):
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

    def interrupted(response, out, url, progress, limit):
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
    monkeypatch.setitem(config.MIRRORS, "mnist", (f"{server.url}/forbidden/", f"{server.url}/good/"))
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


# --- datasets by name ------------------------------------------------------------------------------

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")   # Debian's dataset-fashion-mnist
FASHION_TRAIN_COUNTS = [6000] * 10   # Zalando's README: 6,000 training and 1,000 test images per class


@pytest.fixture
def fashion_isolated(monkeypatch):
    monkeypatch.delenv(DATASETS["fashion-mnist"].env_var, raising=False)


def test_registry_describes_each_dataset():
    assert set(DATASETS) >= {"mnist", "fashion-mnist"}
    for name, dataset in DATASETS.items():
        assert dataset.name == name and len(dataset.classes) == 10 and dataset.mirrors
        assert [file.name for file in dataset.files] == NAMES
        assert [file.shape for file in dataset.files] == [(60000, 28, 28), (60000,), (10000, 28, 28), (10000,)]
        assert all(len(file.sha256) == 64 and int(file.sha256, 16) >= 0 for file in dataset.files)
    assert DATASETS["mnist"].env_var == ENV_VAR == "FASTSCRATCH_MNIST_DIR"
    assert DATASETS["fashion-mnist"].env_var == "FASTSCRATCH_FASHION_MNIST_DIR"
    fashion = DATASETS["fashion-mnist"].classes
    assert fashion[0] == "T-shirt/top" and fashion[9] == "Ankle boot" and len(set(fashion)) == 10
    with pytest.raises(dataclasses.FrozenInstanceError):
        DATASETS["mnist"].title = "other"


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(ValueError, match="'kmnist'.*mnist, fashion-mnist"):
        datasets.load_dataset("kmnist")


def test_load_mnist_is_load_dataset_mnist(synthetic, tmp_path):
    arrays, contents = synthetic
    loaded = datasets.load_dataset("mnist", write(tmp_path, contents))
    assert_arrays(loaded, arrays)
    assert loaded.dataset is datasets.DATASETS["mnist"] and loaded.verified and loaded.directory == tmp_path
    again = load_mnist(tmp_path)
    assert_arrays(again, arrays)
    assert again.dataset is loaded.dataset and again.verified


def fashion_like(rng):
    """A tiny dataset of (4, 2) items: another content than the ``synthetic`` MNIST."""
    arrays = {NAMES[0]: rng.integers(0, 256, (4, 28, 28), dtype=np.uint8), NAMES[1]: rng.integers(0, 10, 4, np.uint8),
              NAMES[2]: rng.integers(0, 256, (2, 28, 28), dtype=np.uint8), NAMES[3]: rng.integers(0, 10, 2, np.uint8)}
    return arrays, {name: idx(array) for name, array in arrays.items()}


def test_each_dataset_has_its_env_var_system_dir_and_cache(monkeypatch, synthetic, tmp_path, rng, mirrors):
    _, mnist_contents = synthetic
    arrays, contents = fashion_like(rng)
    system = tmp_path / "usr-share"
    use_as_canonical(monkeypatch, "fashion-mnist", contents, system_dirs=(str(system),))
    monkeypatch.setitem(config.MIRRORS, "fashion-mnist", (f"{mirrors.url}/good/",))
    mirrors.files = {f"{name}.gz": gzip.compress(content) for name, content in contents.items()}
    monkeypatch.setenv(ENV_VAR, str(write(tmp_path / "mnist", mnist_contents)))   # MNIST's variable is not used
    monkeypatch.delenv("FASTSCRATCH_FASHION_MNIST_DIR", raising=False)

    loaded = datasets.load_dataset("fashion-mnist", progress=False)   # no system copy yet: downloaded
    assert_arrays(loaded, arrays)
    assert loaded.directory == default_cache_dir("fashion-mnist") == tmp_path / "xdg" / "fastscratch" / "fashion-mnist"
    assert len(mirrors.requests) == 4 and loaded.verified

    write(system, contents, compress=False)   # Debian's package ships gzipped files; raw ones load too
    assert datasets.load_dataset("fashion-mnist").directory == system
    monkeypatch.setenv("FASTSCRATCH_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MNISTError, match="FASTSCRATCH_FASHION_MNIST_DIR"):
        datasets.load_dataset("fashion-mnist")
    assert len(mirrors.requests) == 4


def test_a_partial_system_dir_is_passed_over(monkeypatch, rng, tmp_path, fashion_isolated):
    arrays, contents = fashion_like(rng)
    system = write(tmp_path / "usr-share", {NAMES[0]: contents[NAMES[0]]})
    use_as_canonical(monkeypatch, "fashion-mnist", contents, system_dirs=(str(system),))
    write(default_cache_dir("fashion-mnist"), contents)
    assert datasets.load_dataset("fashion-mnist", download=False).directory == default_cache_dir("fashion-mnist")


def test_verify_false_reads_another_dataset_and_says_so(synthetic, tmp_path, rng):
    arrays, contents = fashion_like(rng)
    write(tmp_path, contents)
    with pytest.raises(MNISTFileError, match="declares shape .*MNIST's"):
        load_mnist(tmp_path)
    loaded = datasets.load_dataset("mnist", tmp_path, verify=False)
    assert_arrays(loaded, arrays)
    assert loaded.dataset.name == "mnist" and not loaded.verified
    _, mnist_contents = synthetic
    write(tmp_path, mnist_contents)
    assert datasets.load_dataset("mnist", tmp_path, verify=False).verified   # the real thing, unasked


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_debian_package(fashion_isolated, mnist_raw):
    loaded = datasets.load_dataset("fashion-mnist", download=False)
    assert loaded.directory == FASHION_DIR and loaded.verified
    for array, file in zip(loaded, DATASETS["fashion-mnist"].files):
        assert array.shape == file.shape and array.dtype == np.uint8
    assert np.bincount(loaded[1], minlength=10).tolist() == FASHION_TRAIN_COUNTS
    assert np.bincount(loaded[3], minlength=10).tolist() == [1000] * 10
    assert not np.array_equal(loaded[2], mnist_raw[2])
    with pytest.raises(MNISTFileError, match="SHA-256"):   # it is not MNIST, and MNIST's check says so
        load_mnist(FASHION_DIR)
    assert not load_mnist(FASHION_DIR, verify=False).verified


# --- the tutorial's own loading lines, through the mnist package ----------------------------------

TUTORIAL_LINES = """
import mnist
from fastscratch.datasets import use_with_mnist_package
use_with_mnist_package()   # the one line added to the tutorial's
X_train, y_train = mnist.train_images(), mnist.train_labels()
X_test, y_test = mnist.test_images(), mnist.test_labels()
print(X_train.shape, y_train.shape, X_test.shape, y_test.shape, int(X_train.sum() % 1000003), int(y_test.sum()))
"""


def test_the_tutorials_mnist_lines_run_offline_on_the_verified_copy(mnist_dir, mnist_raw, tmp_path,
                                                                   closed_port_url):
    """The tutorial's ``mnist.train_images()`` and co., in a fresh interpreter whose temporary directory is
    empty and whose every download would fail: the verified local copy, read through the mnist package."""
    env = {**os.environ, "FASTSCRATCH_MNIST_DIR": mnist_dir, "TMPDIR": str(tmp_path / "empty-tmp"),
           "http_proxy": closed_port_url, "https_proxy": closed_port_url, "no_proxy": ""}
    (tmp_path / "empty-tmp").mkdir()
    run = subprocess.run([sys.executable, "-c", TUTORIAL_LINES], capture_output=True, text=True, env=env,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    X_train, y_train, X_test, y_test = mnist_raw
    assert run.stdout.split() == ["(60000,", "28,", "28)", "(60000,)", "(10000,", "28,", "28)", "(10000,)",
                                  str(int(X_train.sum() % 1000003)), str(int(y_test.sum()))]
    assert os.listdir(tmp_path / "empty-tmp") == []   # nothing was downloaded into the package's default


def test_without_it_the_mnist_package_goes_online(tmp_path, closed_port_url, monkeypatch):
    """What the tutorial's lines do alone: a download from the original site (here: nothing listens)."""
    monkeypatch.setattr(mnist, "datasets_url", closed_port_url)
    with pytest.raises(OSError):
        mnist.download_file("t10k-labels-idx1-ubyte.gz", target_dir=str(tmp_path))


@pytest.fixture
def mnist_package(monkeypatch):
    """The mnist package's settings restored after the test; any download it tries fails the test."""
    monkeypatch.setattr(mnist, "temporary_dir", mnist.temporary_dir)

    def no_download(url, filename):
        raise AssertionError(f"the mnist package downloaded {url}")
    monkeypatch.setattr(mnist, "urlretrieve", no_download)
    return mnist


def package_arrays(package):
    return package.train_images(), package.train_labels(), package.test_images(), package.test_labels()


def test_a_gzipped_copy_is_used_where_it_is(synthetic, tmp_path, mnist_package):
    arrays, contents = synthetic
    write(tmp_path / "copy", contents)
    assert datasets.use_with_mnist_package(tmp_path / "copy") == tmp_path / "copy"
    assert_arrays(package_arrays(mnist_package), arrays)


@pytest.mark.parametrize("given_as", ["argument", "env var"])
def test_a_relative_directory_still_holds_after_a_chdir(given_as, synthetic, tmp_path, mnist_package, monkeypatch):
    """The package reads ``temporary_dir()`` at every call: a relative path would be read from whatever directory
    is current then, find nothing, and go online (here: fail the test)."""
    arrays, contents = synthetic
    write(tmp_path / "work" / "copy", contents)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    if given_as == "env var":
        monkeypatch.setenv(ENV_VAR, "copy")
    assert datasets.use_with_mnist_package("copy" if given_as == "argument" else None) == tmp_path / "work" / "copy"
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert mnist_package.temporary_dir() == str(tmp_path / "work" / "copy")
    assert_arrays(package_arrays(mnist_package), arrays)


def test_an_uncompressed_copy_is_gzipped_into_the_cache_once(synthetic, tmp_path, mnist_package):
    arrays, contents = synthetic
    write(tmp_path / "copy", contents, compress=False)
    assert datasets.use_with_mnist_package(tmp_path / "copy") == default_cache_dir()
    assert cache_listing() == sorted(f"{name}.gz" for name in NAMES)
    assert_arrays(package_arrays(mnist_package), arrays)
    written = {name: os.stat(default_cache_dir() / f"{name}.gz").st_mtime_ns for name in NAMES}
    datasets.use_with_mnist_package(tmp_path / "copy")
    assert {name: os.stat(default_cache_dir() / f"{name}.gz").st_mtime_ns for name in NAMES} == written


def test_with_the_uncompressed_file_preferred_a_stale_gz_beside_it_is_not_what_the_package_reads(
        synthetic, tmp_path, mnist_package):
    """load_mnist reads (and verifies) the uncompressed file where both exist: the .gz beside it, unverified
    and here wrong, must not be what the package reads."""
    arrays, contents = synthetic
    write(tmp_path / "copy", contents, compress=False)
    (tmp_path / "copy" / f"{NAMES[3]}.gz").write_bytes(gzip.compress(idx(np.zeros(3, np.uint8))))
    write(tmp_path / "copy", {name: contents[name] for name in NAMES[:3]})
    assert datasets.use_with_mnist_package(tmp_path / "copy") == default_cache_dir()
    assert_arrays(package_arrays(mnist_package), arrays)


def test_a_download_goes_to_the_cache_verified_and_the_package_reads_it(serving, mnist_package):
    server, arrays = serving
    assert datasets.use_with_mnist_package(mirrors=[f"{server.url}/good/"], progress=False) == default_cache_dir()
    assert_arrays(package_arrays(mnist_package), arrays)


def test_a_bad_copy_raises_and_leaves_the_package_alone(synthetic, tmp_path, mnist_package):
    _, contents = synthetic
    write(tmp_path / "copy", {**contents, NAMES[1]: contents[NAMES[1]][:-1]})
    before = mnist_package.temporary_dir
    with pytest.raises(MNISTFileError, match=NAMES[1]):
        datasets.use_with_mnist_package(tmp_path / "copy")
    assert mnist_package.temporary_dir is before


def test_a_cache_that_cannot_take_the_gzipped_copy_is_a_clear_error(synthetic, tmp_path, mnist_package, monkeypatch):
    """An uncompressed copy needs gzipped files in the cache; a cache that refuses them (read-only, full) is an
    MNISTError naming the file, as load_mnist's errors are, and the package is left as it was."""
    _, contents = synthetic
    write(tmp_path / "copy", contents, compress=False)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr(datasets, "atomic_write", refuse)
    before = mnist_package.temporary_dir
    with pytest.raises(datasets.MNISTError, match=f"{NAMES[0]}.gz.*Permission denied"):
        datasets.use_with_mnist_package(tmp_path / "copy")
    assert mnist_package.temporary_dir is before
