"""``jit``: ``numba.njit`` with ``config.JIT_OPTIONS`` and a checked on-disk cache, for every kernel.

Under ``NUMBA_DISABLE_JIT=1`` kernels are plain Python. Kernels are cached on
disk (next to the package, or under ``NUMBA_CACHE_DIR``), with these changes
to Numba's own cache. Entries are stamped with a digest of all kernel sources
and of ``config``, whose compiled-in settings they embed: Numba stamps only
the file of the function itself, so editing a kernel would leave its callers
in other modules stale; the ``FASTSCRATCH_SIMD`` setting is part of each
entry's key. Every file carries a SHA-256 of its content and names the kernel
it belongs to (and a data file its key: signature, CPU, setting): a
truncated, corrupt or misplaced file is a miss that is recompiled and
rewritten, where Numba would raise, load garbage or run another kernel's
code. An index starts with its version, stamp and kernel as text, so the
index of other sources (after an upgrade, a pickle that may name classes that
are gone) is a miss before anything in it is unpickled. The cache is pickle,
so whoever can write its directory can run code as the user: a directory that
other users can write (or an ancestor of it, unless sticky like /tmp), or that
another user owns, is refused with a ``CacheWarning``, and kernels compile in
memory, as they do where no cache location is writable (a read-only install).
This cache subclasses Numba internals; if they are not what it expects (at
import or at run time), kernels compile in memory, with one ``CacheWarning``:
Numba's own cache would lack every check above, and could load a caller
compiled against an older callee from another module.

A process that compiles a kernel says so once, on standard error: the first
run on a CPU (or after an upgrade) spends seconds there, once, and a user
watching a silent prompt deserves to know why (``compiles_told_to`` sends it
elsewhere; ``FASTSCRATCH_COMPILE_NOTICE=0`` silences it).
"""
import contextlib
import functools
import hashlib
import os
import pathlib
import pickle
import stat
import sys
import time
import warnings

import numba
from numba import njit
from numba.core import event

from fastscratch import config

class CacheWarning(RuntimeWarning):
    """The compiled kernels are not cached as intended; they still compile and give the same results."""


_PACKAGE = pathlib.Path(__file__).parent
#: A digest of the sources compiled into the kernels: theirs, this module's and ``config``'s.
SOURCE_STAMP = hashlib.sha256(b"".join(
    path.read_bytes() for path in [pathlib.Path(__file__), _PACKAGE / "config.py",
                                   *sorted((_PACKAGE / "kernels").glob("*.py"))]
)).hexdigest()


class _BadCacheFile(ValueError):
    """A cache file that is corrupt or belongs elsewhere: a miss, never an error."""


def _checked(payload):
    return hashlib.sha256(payload).digest() + payload


def _unchecked(blob):
    """The payload of ``_checked(payload)``, or _BadCacheFile if the digest does not match."""
    digest, payload = blob[:32], blob[32:]
    if len(digest) != 32 or hashlib.sha256(payload).digest() != digest:
        raise _BadCacheFile("cache file is corrupt")
    return payload


_internals_warned = False


def _internals_failed(error):
    """Say once per process that the checked cache gave up on Numba's internals."""
    global _internals_warned
    if not _internals_warned:
        _internals_warned = True
        warnings.warn(f"fastscratch: Numba's caching internals are not what fastscratch expects "
                      f"({type(error).__name__}: {error}); kernels compile in memory", CacheWarning, stacklevel=4)


@functools.cache
def untrusted(directory):
    """Why files in a cache directory could come from another user, or None if only we (or root) can write it.

    The directory (or, before it exists, where it would be created) must be
    owned by the effective user or root and not writable by group or others;
    so must every ancestor, except that a sticky one (like /tmp) may be.
    Not checked where there are no POSIX owners (Windows).
    """
    if not hasattr(os, "geteuid"):
        return None
    path = os.path.realpath(directory)
    is_cache = True
    while True:
        try:
            info = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):  # not there yet (or cannot be): its parent decides
            info = None
        except OSError as error:
            return f"{path} cannot be checked ({error})"
        if info is not None:
            if info.st_uid not in (os.geteuid(), 0):
                return f"{path} is owned by user id {info.st_uid}"
            shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            if shared and (is_cache or not info.st_mode & stat.S_ISVTX):
                return f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o})"
            is_cache = False
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


_refused = set()


def _refuse_untrusted(cache):
    """``cache``, or None (compile in memory) with a warning if its directory is not ours alone."""
    reason = untrusted(cache.cache_path)
    if reason is None:
        return cache
    if cache.cache_path not in _refused:
        _refused.add(cache.cache_path)
        warnings.warn(f"fastscratch: not using the kernel cache in {cache.cache_path}: {reason}, and its files "
                      f"are pickles that run code when loaded; kernels compile in memory. Point NUMBA_CACHE_DIR "
                      f"at a directory only you can write.", CacheWarning, stacklevel=4)
    return None


def _checked_cache_class():
    """The checked cache (see the module docstring), built on Numba's FunctionCache and IndexDataCacheFile."""
    from numba.core.caching import FunctionCache, IndexDataCacheFile

    class CheckedCacheFile(IndexDataCacheFile):
        """Numba's index and data files, each with a digest of its content and the name of its kernel."""

        def __init__(self, cache_path, filename_base, source_stamp, kernel):
            super().__init__(cache_path, filename_base, source_stamp)
            self._kernel = kernel

        def _header(self):
            # Text, not a pickle: an index from other kernel sources (a pickle that may name classes those
            # sources no longer have), another kernel or another Numba is a miss before anything is unpickled.
            return f"{self._version}\n{self._source_stamp}\n{self._kernel}\n".encode()

        def _load_index(self):
            header = self._header()
            try:
                with open(self._index_path, "rb") as f:
                    if f.read(len(header)) != header:
                        return {}
                    return pickle.loads(_unchecked(f.read()))
            except (OSError, _BadCacheFile):  # none yet, unreadable or corrupt: rebuilt by the next save
                return {}
            except (AttributeError, ImportError, pickle.UnpicklingError):  # it names what is gone: a miss too
                return {}

        def _save_index(self, overloads):
            payload = self._dump(overloads)
            with self._open_for_write(self._index_path) as f:
                f.write(self._header())
                f.write(_checked(payload))

        def load(self, key):
            try:
                entry = super().load(key)
            except _BadCacheFile:
                return None
            if entry is None:
                return None
            kernel, stored_key, data = entry
            # Another kernel's file, copied or renamed over this one's, is a miss, then overwritten.
            return data if (kernel, stored_key) == (self._kernel, key) else None

        def save(self, key, data):
            super().save(key, (self._kernel, key, data))

        def _load_data(self, name):
            with open(self._data_path(name), "rb") as f:
                payload = _unchecked(f.read())
            try:
                return pickle.loads(payload)
            except (AttributeError, ImportError, pickle.UnpicklingError) as error:  # names what is gone
                raise _BadCacheFile(f"cache file names what is gone: {error}") from None

        def _save_data(self, name, data):
            with self._open_for_write(self._data_path(name)) as f:
                f.write(_checked(self._dump(data)))

    class KernelCache(FunctionCache):
        """Numba's FunctionCache over CheckedCacheFile; nothing cached once its internals fail at run time."""

        def __init__(self, py_func):
            super().__init__(py_func)
            kernel = f"{py_func.__module__}.{py_func.__qualname__}"
            # Files of their own: Numba's cache, used by other programs in the same place, reads none of them.
            self._cache_file = CheckedCacheFile(self._cache_path, self._impl.filename_base + "-checked",
                                                SOURCE_STAMP, kernel)
            self._failed = False

        def _index_key(self, sig, codegen):
            return (*super()._index_key(sig, codegen), config.SIMD)

        def load_overload(self, sig, target_context):
            if self._failed:
                return None
            try:
                return super().load_overload(sig, target_context)
            except Exception as error:  # noqa: BLE001  (bad files are misses inside; this is Numba itself)
                self._failed = True
                _internals_failed(error)
                return None

        def save_overload(self, sig, data):
            if self._failed:
                return
            try:
                super().save_overload(sig, data)
            except OSError:  # an unsaved kernel only costs a compile in the next process
                pass
            except Exception as error:  # noqa: BLE001
                self._failed = True
                _internals_failed(error)

    return KernelCache


try:
    _KernelCache = _checked_cache_class()
except Exception as failure:  # noqa: BLE001  (a Numba without these internals, or other ones)
    _KernelCache = None
    _internals_failed(failure)


def _cache(py_func):
    """The cache for py_func's compiled code, or None to compile in memory."""
    global _KernelCache
    if _KernelCache is not None:
        try:
            return _refuse_untrusted(_KernelCache(py_func))
        except RuntimeError:  # "cannot cache function ...: no locator available" (read-only install)
            return None
        except Exception as error:  # noqa: BLE001  (internals)
            _KernelCache = None
            _internals_failed(error)
    return None


def _stderr_line(line):
    stream = sys.stderr
    if stream is None:  # pythonw, or a closed stream: nobody to tell
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):  # a reader gone must never cost the compile
        pass


class _CompileNotice(event.Listener):
    """Tells ``write`` once per process, when the first of fastscratch's kernels starts compiling, what is
    compiled, for which CPU and whether it is cached; adds up the seconds spent compiling them."""

    def __init__(self, write, silenced):
        self.write = write
        self.silenced = silenced
        self.said = False
        self.seconds = 0.0
        self._depth = 0
        self._started = 0.0

    @staticmethod
    def _ours(event):
        dispatcher = event.data.get("dispatcher") if isinstance(event.data, dict) else None
        return getattr(getattr(dispatcher, "py_func", None), "__module__", "").startswith("fastscratch.")

    def on_start(self, event):
        if not self._ours(event):
            return
        if self._depth == 0:
            self._started = time.perf_counter()
        self._depth += 1
        if not (self.said or self.silenced) and self.write is not None:
            self.said = True
            self.write(compile_message(event.data["dispatcher"]))

    def on_end(self, event):
        if not self._ours(event):
            return
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._started


def compile_message(dispatcher):
    """The line that says kernels compile: for which CPU and vector width, and where they are cached."""
    from llvmlite import binding
    cpu = numba.config.CPU_NAME or binding.get_host_cpu_name()
    simd = sys.modules.get("fastscratch.kernels.simd")
    bits = getattr(simd, "VECTOR_BITS", None)
    width = "" if bits is None else (", plain loops" if bits == 0 else f", {bits}-bit vectors")
    cache = getattr(dispatcher, "_cache", None)
    if _KernelCache is not None and isinstance(cache, _KernelCache):
        where = f"once: they are cached in {cache.cache_path}"
    else:
        where = "not cached: each new process compiles them again"
    return f"fastscratch: compiling kernels for this CPU ({cpu}{width}), {where}"


_notice = _CompileNotice(_stderr_line, silenced=os.environ.get("FASTSCRATCH_COMPILE_NOTICE", "").strip() == "0")
event.register("numba:compile", _notice)


@contextlib.contextmanager
def compiles_told_to(write):
    """Within the block, the one line that says kernels are compiling goes to ``write(line)`` (None: nowhere)
    instead of standard error; a process that has said it once, or runs under ``FASTSCRATCH_COMPILE_NOTICE=0``,
    says nothing."""
    previous, _notice.write = _notice.write, write
    try:
        yield
    finally:
        _notice.write = previous


def compile_seconds():
    """Seconds this process has spent compiling fastscratch's kernels (loading them from the cache excluded)."""
    return _notice.seconds


def jit(function):
    """``numba.njit`` with ``config.JIT_OPTIONS`` and the checked cache; the function itself under NUMBA_DISABLE_JIT."""
    if numba.config.DISABLE_JIT:
        return function
    dispatcher = njit(**config.JIT_OPTIONS)(function)
    cache = _cache(dispatcher.py_func)
    if cache is not None:
        dispatcher._cache = cache
    return dispatcher
