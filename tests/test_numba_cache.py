"""The compilation cache never costs correctness.

Kernels use ``cache=True`` and honour ``NUMBA_CACHE_DIR``. Each case runs a
fresh interpreter with ``NUMBA_CACHE_DIR`` pointing at its own directory and
checks the JIT network's forward pass against the reference: two processes
compiling into one empty cache at once, then runs from that cache with its
index (``.nbi``) or data (``.nbc``) files truncated, filled with garbage or
bit-flipped, a cache directory that cannot be created, and no cache location
at all (a read-only install).

The child exercises only the forward kernels (a cold compile of those takes a
few seconds; the whole training kernel would take ~20 s per process).
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastscratch, fastscratch.reference as ref
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (64, 12))

    def run(network_class):
        np.random.seed(1)
        net = network_class(12, 4, [8, 6])
        return net.forward(X), net.forward(X[0])

    jit, expected = run(fastscratch.SimpleNetwork), run(ref.SimpleNetwork)
    ok = all(np.allclose(a, b, rtol=1e-10, atol=0) for a, b in zip(jit, expected))
    print(json.dumps({"ok": bool(ok)}))
    sys.exit(0 if ok else 1)
""")


def start(cache_dir, tmp_path, **extra_env):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), **extra_env}
    env.pop("NUMBA_DISABLE_JIT", None)
    return subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)


def finish(child):
    try:
        out, err = child.communicate(timeout=240)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, out, err


def assert_correct(result):
    returncode, out, err = result
    assert returncode == 0, f"exit {returncode}\n{err[-3000:]}"
    assert json.loads(out.strip().splitlines()[-1]) == {"ok": True}


def cache_files(cache_dir, suffix):
    return sorted(os.path.join(root, name) for root, _, names in os.walk(cache_dir)
                  for name in names if name.endswith(suffix))


@pytest.fixture(scope="module")
def raced_cache(tmp_path_factory):
    """Two processes compile into the same empty cache at the same time; returns the dir and their results."""
    tmp = tmp_path_factory.mktemp("numba-cache")
    cache_dir = tmp / "cache"
    children = [start(cache_dir, tmp) for _ in range(2)]
    return cache_dir, [finish(child) for child in children]


def test_two_processes_compiling_into_an_empty_cache(raced_cache, tmp_path):
    cache_dir, results = raced_cache
    for result in results:
        assert_correct(result)
    index, data = cache_files(cache_dir, ".nbi"), cache_files(cache_dir, ".nbc")
    assert index and data, "NUMBA_CACHE_DIR was not used"
    # A third process loads from that cache, correctly, without writing to it.
    stamps = {path: os.stat(path).st_mtime_ns for path in index + data}
    assert_correct(finish(start(cache_dir, tmp_path)))
    assert {path: os.stat(path).st_mtime_ns for path in cache_files(cache_dir, ".nbi") + cache_files(
        cache_dir, ".nbc")} == stamps


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def empty(path):
    open(path, "wb").close()


def garbage(path):
    size = max(os.path.getsize(path), 64)
    with open(path, "wb") as f:
        f.write(bytes((i * 131 + 7) % 256 for i in range(size)))


def flip(path):
    """Flip bytes in the middle: the pickle framing may survive, the payload does not."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        middle = len(data) // 3
        for i in range(middle, min(middle + 64, len(data))):
            data[i] ^= 0x5A
        f.seek(0)
        f.write(data)


@pytest.mark.parametrize("suffix", [".nbi", ".nbc"], ids=["index", "data"])
def test_corrupt_cache_files(raced_cache, tmp_path, suffix):
    """Every file of one kind is damaged, each in one of several ways: kernels must recompile, not fail."""
    cache_dir = tmp_path / "cache"
    shutil.copytree(raced_cache[0], cache_dir)
    files = cache_files(cache_dir, suffix)
    assert files
    damages = [empty, truncate, garbage] + ([flip] if suffix == ".nbc" else [])
    for i, path in enumerate(files):
        damages[i % len(damages)](path)
    assert_correct(finish(start(cache_dir, tmp_path)))
    # And the next process, after that run rewrote what it could, is fine too.
    assert_correct(finish(start(cache_dir, tmp_path)))


def test_unwritable_cache_directory(tmp_path):
    """NUMBA_CACHE_DIR under a regular file can never be created (whoever runs the test, root included)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    assert_correct(finish(start(blocker / "cache", tmp_path)))
    assert blocker.is_file()


def test_no_cache_location_at_all(tmp_path):
    """A read-only install: Numba finds no cache locator, and the kernels compile in memory.

    Simulated, since root can write anywhere, by allowing only Numba's IPython
    locator, which never applies to a module file.
    """
    cache_dir = tmp_path / "cache"
    assert_correct(finish(start(cache_dir, tmp_path, NUMBA_CACHE_LOCATOR_CLASSES="IPythonCacheLocator")))
    assert not cache_dir.exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to a read-only directory")
def test_read_only_cache_directory(tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cache_dir.chmod(0o500)
    try:
        assert_correct(finish(start(cache_dir, tmp_path)))
        assert not os.listdir(cache_dir)
    finally:
        cache_dir.chmod(0o700)
