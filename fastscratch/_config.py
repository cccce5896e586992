"""Numba settings and the compilation cache, in one place for every kernel.

- ``fastmath`` stays off: it would reorder sums and fold ``inf - inf``, and the
  JIT network must track the reference to ~1e-12. The kernels are written so
  that the vector dimension is never a reduction, which LLVM vectorises
  without it.
- ``error_model="numpy"``: division by zero gives inf/nan as in NumPy instead of
  raising inside a kernel.
- Kernels are cached on disk (next to the package, or under
  ``NUMBA_CACHE_DIR``), with two changes to Numba's own cache. Entries are
  stamped with a digest of all kernel sources: Numba stamps only the file of
  the function itself, so editing a kernel would leave its callers in other
  modules stale. And every file carries a SHA-256 of its content: a truncated
  or corrupt cache file is a miss that is recompiled and rewritten, where
  Numba would raise or load garbage. Where no cache location is writable (a
  read-only install), kernels compile in memory.
"""
import hashlib
import pathlib
import pickle

from numba import njit

JIT_OPTIONS = {"nogil": True, "error_model": "numpy", "boundscheck": False, "fastmath": False}

_PACKAGE = pathlib.Path(__file__).parent
SOURCE_STAMP = hashlib.sha256(b"".join(
    path.read_bytes() for path in [pathlib.Path(__file__), *sorted((_PACKAGE / "kernels").glob("*.py"))]
)).hexdigest()

try:
    from numba.core.caching import FunctionCache, IndexDataCacheFile
except ImportError:  # a Numba without these internals: plain caching
    FunctionCache = IndexDataCacheFile = None


def _checked(payload):
    return hashlib.sha256(payload).digest() + payload


def _unchecked(blob):
    """The payload of ``_checked(payload)``, or ValueError if the digest does not match."""
    digest, payload = blob[:32], blob[32:]
    if len(digest) != 32 or hashlib.sha256(payload).digest() != digest:
        raise ValueError("cache file is corrupt")
    return payload


if FunctionCache is not None:
    class _CheckedCacheFile(IndexDataCacheFile):
        """Numba's index and data files, each with a digest of its content."""

        def _load_index(self):
            try:
                with open(self._index_path, "rb") as f:
                    version = pickle.load(f)
                    if version != self._version:
                        return {}
                    stamp, overloads = pickle.loads(_unchecked(f.read()))
            except FileNotFoundError:
                return {}
            except Exception:  # unreadable: rebuilt by the next save
                return {}
            return overloads if stamp == self._source_stamp else {}

        def _save_index(self, overloads):
            payload = self._dump((self._source_stamp, overloads))
            with self._open_for_write(self._index_path) as f:
                pickle.dump(self._version, f, protocol=-1)
                f.write(_checked(payload))

        def _load_data(self, name):
            with open(self._data_path(name), "rb") as f:
                return pickle.loads(_unchecked(f.read()))

        def _save_data(self, name, data):
            with self._open_for_write(self._data_path(name)) as f:
                f.write(_checked(self._dump(data)))

    class _KernelCache(FunctionCache):
        def __init__(self, py_func):
            super().__init__(py_func)
            self._cache_file = _CheckedCacheFile(self._cache_path, self._impl.filename_base, SOURCE_STAMP)

        def load_overload(self, sig, target_context):
            try:
                return super().load_overload(sig, target_context)
            except Exception:  # a corrupt entry is a miss: compile, then save over it
                return None

        def save_overload(self, sig, data):
            try:
                super().save_overload(sig, data)
            except OSError:  # an unsaved kernel only costs a compile in the next process
                pass


def jit(function):
    """``numba.njit`` with the project's options and its cache."""
    dispatcher = njit(**JIT_OPTIONS)(function)
    if FunctionCache is None:
        try:
            dispatcher.enable_caching()
        except RuntimeError:
            pass
        return dispatcher
    try:
        dispatcher._cache = _KernelCache(dispatcher.py_func)
    except RuntimeError:  # "cannot cache function ...: no locator available" (read-only install)
        pass
    return dispatcher
