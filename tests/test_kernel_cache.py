"""The compilation cache never costs correctness, and never runs files another user planted.

Kernels use ``cache=True`` and honour ``NUMBA_CACHE_DIR``. Each case runs a
fresh interpreter with ``NUMBA_CACHE_DIR`` pointing at its own directory and
checks the JIT network's forward pass and batched predict against the reference (and which
warnings it gave): two processes compiling into one empty cache at once, then
runs from that cache with its index (``.nbi``) or data (``.nbc``) files
truncated, filled with garbage, bit-flipped or copied over another kernel's,
with other ``FASTSCRATCH_SIMD`` settings, a cache directory that cannot be
created, that others can write or that another user owns, no cache location
at all (a read-only install), and Numba internals missing at import, at
subclassing or at run time.

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
    import json, sys, warnings
    warnings.simplefilter("always")
    with warnings.catch_warnings(record=True) as caught:
        PRELUDE
        import numpy as np
        import fastscratch, fastscratch.reference as ref
        rng = np.random.default_rng(0)
        X = rng.uniform(-1, 1, (64, 12))

        def run(network_class):
            np.random.seed(1)
            net = network_class(12, 4, [8, 6])
            # predict(X) indexes X (fill_structure) and runs the compiled rows: seconds more to compile, so only
            # the cache that later tests copy (raced_cache) has it
            return (net.forward(X), net.forward(X[0])) + ((net.predict(X),) if PREDICT else ())

        jit, expected = run(fastscratch.SimpleNetwork), run(ref.SimpleNetwork)
    ok = all(np.allclose(a, b, rtol=1e-10, atol=0) for a, b in zip(jit, expected))
    print(json.dumps({"ok": bool(ok), "warnings": [[w.category.__name__, str(w.message)] for w in caught]}))
    sys.exit(0 if ok else 1)
""")


def start(cache_dir, tmp_path, prelude="pass", predict=True, **extra_env):
    """A child that imports fastscratch after running ``prelude`` (to break Numba's internals) and checks a forward
    pass (and a batched predict, unless ``predict`` is False: a cold child then compiles in under half the time)."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir), "FASTSCRATCH_COMPILE_NOTICE": "1", **extra_env}
    env.pop("NUMBA_DISABLE_JIT", None)
    env.pop("FASTSCRATCH_SIMD", None)
    code = CHILD.replace("PRELUDE", textwrap.indent(textwrap.dedent(prelude), " " * 4).strip())
    code = code.replace("PREDICT", str(predict))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=tmp_path)


def finish(child):
    try:
        out, err = child.communicate(timeout=240)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.returncode, out, err


def assert_correct(result, warnings=()):
    """The child's forward pass was right, and it warned exactly these (category, message part) pairs."""
    returncode, out, err = result
    assert returncode == 0, f"exit {returncode}\n{err[-3000:]}"
    report = json.loads(out.strip().splitlines()[-1])
    assert report["ok"] is True
    assert len(report["warnings"]) == len(warnings), report["warnings"]
    for (category, message), (expected_category, part) in zip(report["warnings"], warnings):
        assert category == expected_category and part in message, (category, message)
    return report


NOTICE = "fastscratch: compiling kernels for this CPU ("


def notices(result):
    """The lines of the child's stderr that say kernels compile."""
    return [line for line in result[2].splitlines() if line.startswith(NOTICE)]


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
    # Whoever compiled said so, once, naming the cache (the other may have loaded everything it needed).
    said = [notices(result) for result in results]
    assert all(len(lines) <= 1 for lines in said) and any(said), said
    assert all(f"once: they are cached in {cache_dir}" in line for lines in said for line in lines), said
    # A third process loads from that cache, correctly, without writing to it, and compiles nothing to tell.
    stamps = {path: os.stat(path).st_mtime_ns for path in index + data}
    third = finish(start(cache_dir, tmp_path))
    assert_correct(third)
    assert notices(third) == []
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


GONE = b"cfastscratch.kernels.sgd\nNoSuchClass\n."  # a pickle naming a class the kernels no longer have
RAISES = b"c__builtin__\nint\n(S'x'\ntR."  # a pickle whose loading raises ValueError: proof nothing was unpickled


def old_format_index(version, payload):
    """An index as earlier fastscratch versions wrote it: the version line, then one checked pickle."""
    import hashlib
    return f"{version}\n".encode() + hashlib.sha256(payload).digest() + payload


def test_a_data_file_naming_what_is_gone_is_a_miss(raced_cache, tmp_path):
    """A data file that unpickles to a class that is gone (a race of two versions on one cache) is recompiled."""
    import hashlib
    cache_dir = tmp_path / "cache"
    shutil.copytree(raced_cache[0], cache_dir)
    files = cache_files(cache_dir, ".nbc")
    for path in files:
        with open(path, "wb") as f:
            f.write(hashlib.sha256(GONE).digest() + GONE)
    assert_correct(finish(start(cache_dir, tmp_path)))


@pytest.mark.parametrize("layout", ["earlier-format", "other-sources", "same-header"])
def test_an_index_naming_what_the_kernels_no_longer_have_is_a_miss(raced_cache, tmp_path, layout):
    """After an upgrade, an index pickled with a class that was since removed (StepScratch, once) made the
    checked cache give up on itself for the process; it is a miss like any stale entry, with no warning."""
    import hashlib
    cache_dir = tmp_path / "cache"
    shutil.copytree(raced_cache[0], cache_dir)
    files = cache_files(cache_dir, ".nbi")
    for path in files:
        with open(path, "rb") as f:
            version, stamp, kernel = (f.readline() for _ in range(3))
        # Only where the header matches may the payload be unpickled, and then what it names is gone.
        payload = GONE if layout == "same-header" else RAISES
        if layout == "earlier-format":
            content = old_format_index(version.decode().strip(), payload)
        else:
            if layout == "other-sources":
                stamp = b"0" * 64 + b"\n"
            content = version + stamp + kernel + hashlib.sha256(payload).digest() + payload
        with open(path, "wb") as f:
            f.write(content)
    assert_correct(finish(start(cache_dir, tmp_path)))
    for path in cache_files(cache_dir, ".nbi"):
        with open(path, "rb") as f:
            assert not f.read().endswith((GONE, RAISES)), path  # rewritten by the run
    assert_correct(finish(start(cache_dir, tmp_path)))


def test_unwritable_cache_directory(tmp_path):
    """NUMBA_CACHE_DIR under a regular file can never be created (whoever runs the test, root included)."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    assert_correct(finish(start(blocker / "cache", tmp_path, predict=False)))
    assert blocker.is_file()


def test_no_cache_location_at_all(tmp_path):
    """A read-only install: Numba finds no cache locator, and the kernels compile in memory.

    Simulated, since root can write anywhere, by allowing only Numba's IPython
    locator, which never applies to a module file.
    """
    cache_dir = tmp_path / "cache"
    result = finish(start(cache_dir, tmp_path, predict=False, NUMBA_CACHE_LOCATOR_CLASSES="IPythonCacheLocator"))
    assert_correct(result)
    assert not cache_dir.exists()
    [line] = notices(result)
    assert line.endswith("not cached: each new process compiles them again")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to a read-only directory")
def test_read_only_cache_directory(tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cache_dir.chmod(0o500)
    try:
        assert_correct(finish(start(cache_dir, tmp_path, predict=False)))
        assert not os.listdir(cache_dir)
    finally:
        cache_dir.chmod(0o700)


@pytest.mark.parametrize("with_index", [False, True], ids=["data", "index-and-data"])
def test_a_kernels_files_copied_over_anothers_are_recompiled(raced_cache, tmp_path, with_index):
    """Two valid files swapped between kernels the child calls from Python: found out by the kernel name and
    key inside, recompiled and saved over, where Numba would run the other kernel's code."""
    cache_dir = tmp_path / "cache"
    shutil.copytree(raced_cache[0], cache_dir)
    source, target = (min(path for path in cache_files(cache_dir, ".1.nbc") if f".{kernel}-" in path)
                      for kernel in ("fill_structure", "blocked_forward"))
    shutil.copyfile(source, target)
    if with_index:
        shutil.copyfile(source.replace(".1.nbc", ".nbi"), target.replace(".1.nbc", ".nbi"))
    copied = open(target, "rb").read()
    assert_correct(finish(start(cache_dir, tmp_path)))
    assert open(target, "rb").read() != copied
    assert_correct(finish(start(cache_dir, tmp_path)))


def test_each_simd_setting_keeps_its_own_entries(raced_cache, tmp_path):
    """Runs with another FASTSCRATCH_SIMD add their entries beside the default's instead of replacing them."""
    cache_dir = tmp_path / "cache"
    shutil.copytree(raced_cache[0], cache_dir)
    plain = finish(start(cache_dir, tmp_path, predict=False, FASTSCRATCH_SIMD="plain", FASTSCRATCH_COMPILE_NOTICE="0"))
    assert_correct(plain)
    assert "compiling" not in plain[2]  # it compiled, silenced
    stamps = {path: os.stat(path).st_mtime_ns for path in cache_files(cache_dir, ".nbi") + cache_files(
        cache_dir, ".nbc")}
    for setting in ("auto", "plain"):  # both load from the cache now: nothing is written
        assert_correct(finish(start(cache_dir, tmp_path, predict=False, FASTSCRATCH_SIMD=setting)))
    assert {path: os.stat(path).st_mtime_ns for path in stamps} == stamps


REFUSED = [("CacheWarning", "not using the kernel cache")]


@pytest.mark.parametrize("mode, owner", [(0o777, None), (0o770, None), (0o700, 12345)],
                         ids=["world-writable", "group-writable", "another-owner"])
def test_cache_directory_others_can_write_is_refused(tmp_path, mode, owner):
    """Numba's cache is pickle: files planted by another user would run as us. Warn, compile in memory."""
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cache_dir.chmod(mode)
    if owner is not None:
        if os.geteuid() != 0:
            pytest.skip("only root can give a directory away")
        os.chown(cache_dir, owner, -1)
    result = finish(start(cache_dir, tmp_path, predict=False))
    assert_correct(result, REFUSED)
    assert not cache_files(cache_dir, ".nbi") and not cache_files(cache_dir, ".nbc")
    assert [line.endswith("not cached: each new process compiles them again") for line in notices(result)] == [True]


@pytest.mark.parametrize("mode, refused", [(0o777, True), (0o1777, False)], ids=["open", "sticky"])
def test_an_ancestor_others_can_write_is_refused_unless_sticky(tmp_path, mode, refused):
    """Whoever can write a parent can replace the cache directory itself; a sticky one (like /tmp) protects it:
    others cannot rename what is ours there, and what they create there is theirs, which is refused."""
    parent = tmp_path / "shared"
    parent.mkdir()
    parent.chmod(mode)
    cache_dir = parent / "mine" / "cache"  # not there yet: Numba creates it
    assert_correct(finish(start(cache_dir, tmp_path, predict=False)), REFUSED if refused else ())
    assert bool(cache_files(cache_dir, ".nbi")) != refused


def test_untrusted_names_the_reason(tmp_path):
    from fastscratch.kernel_cache import untrusted
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    assert untrusted(str(mine / "not" / "yet")) is None
    assert untrusted(str(mine)) is None
    mine.chmod(0o722)
    untrusted.cache_clear()
    assert "writable by other users (mode 722)" in untrusted(str(mine / "cache"))
    mine.chmod(0o700)
    untrusted.cache_clear()


# Numba internals the checked cache relies on, broken in the child before fastscratch is imported.
BROKEN_INTERNALS = {
    # Gone at import.
    "import": "import numba.core.caching as caching\ndel caching.IndexDataCacheFile",
    # A class that can no longer be subclassed (Numba's own cache would still work).
    "subclassing": """
        import numba.core.caching as caching
        def final(cls, **kwargs):
            raise TypeError("IndexDataCacheFile is final")
        caching.IndexDataCacheFile.__init_subclass__ = classmethod(final)
    """,
    # A method renamed, found out only when the first kernel is saved.
    "run time": "import numba.core.caching as caching\ndel caching.IndexDataCacheFile._open_for_write",
}


@pytest.mark.parametrize("broken", list(BROKEN_INTERNALS))
def test_broken_numba_internals_compile_in_memory_with_one_warning(tmp_path, broken):
    """Numba's own cache is not used instead: it lacks the checks above (it would load a caller compiled against
    an older callee from another module); the kernels compile in memory, nothing is written, the results hold."""
    cache_dir = tmp_path / "cache"
    for _ in range(2):  # nothing the first process left is read by the second either
        assert_correct(finish(start(cache_dir, tmp_path, BROKEN_INTERNALS[broken], predict=False)),
                       [("CacheWarning", "kernels compile in memory")])
        assert cache_files(cache_dir, ".nbi") == cache_files(cache_dir, ".nbc") == []


def _probe_kernel():
    """A kernel of fastscratch's not yet compiled in this process (no cache: it compiles at its first call)."""
    import numba

    def probe(x):
        return x + 1.0
    probe.__module__ = "fastscratch.probe"
    return numba.njit(probe)


def test_the_notice_goes_where_it_is_told_once_and_compiles_are_timed(monkeypatch):
    from fastscratch import kernel_cache
    monkeypatch.setattr(kernel_cache._notice, "silenced", False)
    monkeypatch.setattr(kernel_cache._notice, "said", False)
    before = kernel_cache.compile_seconds()
    told = []
    with kernel_cache.compiles_told_to(told.append):
        assert _probe_kernel()(1.0) == 2.0
        assert _probe_kernel()(1.0) == 2.0  # another compile: nothing more to say
    assert [line.startswith(NOTICE) and line.endswith("not cached: each new process compiles them again")
            for line in told] == [True]
    assert kernel_cache.compile_seconds() > before
    assert kernel_cache._notice.write is kernel_cache._stderr_line


def test_a_silenced_notice_says_nothing_where_it_is_told(monkeypatch):
    from fastscratch import kernel_cache
    monkeypatch.setattr(kernel_cache._notice, "silenced", True)
    monkeypatch.setattr(kernel_cache._notice, "said", False)
    told = []
    with kernel_cache.compiles_told_to(told.append):
        _probe_kernel()(1.0)
    assert told == []


def test_numbas_own_functions_are_not_announced(monkeypatch):
    import numba

    from fastscratch import kernel_cache
    monkeypatch.setattr(kernel_cache._notice, "silenced", False)
    monkeypatch.setattr(kernel_cache._notice, "said", False)
    told = []
    with kernel_cache.compiles_told_to(told.append):
        numba.njit(lambda x: x * 3.0)(1.0)
    assert told == []
