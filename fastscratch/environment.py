"""The one record of the machine and software a result came from: CPU, cores, load, versions, threads, BLAS.

``fastscratch train`` writes it into each run's history, the benchmarks into
each result, the studies into each cell's record (``machine``). Every part is
``None`` where the platform cannot tell (no ``/proc/cpuinfo``, no
``sched_getaffinity``, no threadpoolctl).
"""
import functools
import os
import platform
import sys
from importlib import metadata

#: Vector extensions worth knowing when reading a timing (x86, then ARM), in this order.
VECTOR_EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "neon", "asimd", "sve")
#: Environment variables that set the thread counts of the libraries fastscratch uses.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER")


def record():
    """Everything below in one dict: what a run's history and a benchmark's result keep."""
    return {
        "versions": versions("numpy", "numba", "fastscratch", "matplotlib", "rich", "threadpoolctl"),
        "platform": platform.platform(), "machine": platform.machine(),
        "cpu": cpu(), "cpu_count": os.cpu_count(), "usable_cpu_count": usable_cpu_count(),
        "load": load(),
        "thread_variables": thread_variables(),
        "numba": numba_threads(),
        "blas": blas(),
    }


def machine():
    """The host a study's cell ran on: name, CPU model, logical cores, vector extensions, platform, Python."""
    info = cpu()
    return {"hostname": platform.node(), "cpu": info["model"] or platform.processor() or platform.machine(),
            "logical_cores": os.cpu_count(), "vector_extensions": info["vector_extensions"],
            "platform": platform.platform(), "python": sys.version.split()[0]}


def versions(*distributions):
    """``{"python": ..., distribution: version or None}``."""
    found = {"python": platform.python_version()}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


@functools.lru_cache(maxsize=None)
def _cpuinfo():
    model, flags = None, ()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                name = name.strip()
                if name == "model name" and model is None:
                    model = value.strip()
                elif name in ("flags", "Features") and not flags:  # "Features" on ARM
                    flags = tuple(value.split())
    except OSError:
        pass
    return model, frozenset(flags)


def cpu():
    """``{"model": "Intel(R) Xeon(R) ...", "vector_extensions": ["avx2", ...]}`` (model None where unknown)."""
    model, flags = _cpuinfo()
    return {"model": model or platform.processor() or None,
            "vector_extensions": [f for f in VECTOR_EXTENSIONS if f in flags]}


def usable_cpus():
    """The CPUs this process may run on, sorted (its affinity: what ``taskset`` or a container allows), or None
    where the platform does not say."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def usable_cpu_count():
    """How many CPUs this process may run on (``usable_cpus``), or None."""
    cpus = usable_cpus()
    return None if cpus is None else len(cpus)


def load():
    """The 1-, 5- and 15-minute load averages, rounded to 0.01."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def thread_variables():
    """The thread-count variables that are set, with their values."""
    return {name: os.environ[name] for name in THREAD_VARIABLES if name in os.environ}


def numba_threads():
    """Numba's threading layer (None until a parallel kernel ran), its configured layer and thread counts."""
    try:
        import numba
    except ImportError:
        return None
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = None
    return {"threading_layer": layer, "threading_layer_config": numba.config.THREADING_LAYER,
            "num_threads": numba.get_num_threads(), "max_threads": numba.config.NUMBA_NUM_THREADS}


def blas():
    """NumPy's BLAS as built, and the thread pools loaded (with their thread counts) when threadpoolctl is there."""
    import numpy as np

    info = {}
    try:
        build = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_build"] = {k: build.get(k) for k in ("name", "version", "openblas configuration") if k in build}
    except Exception:  # noqa: BLE001  (the layout of show_config is not a stable API)
        info["numpy_build"] = None
    try:
        import threadpoolctl
    except ImportError:
        info["loaded"] = None
    else:
        info["loaded"] = [{k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads",
                                                     "threading_layer", "architecture", "filepath")}
                          for pool in threadpoolctl.threadpool_info()]
    return info
