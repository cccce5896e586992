"""The environment record: what a run's history, a benchmark result and a study cell say about the machine."""
import builtins
import io
import json
import os
import platform

import numpy as np
import pytest

from fastscratch import environment


def test_the_record_holds_every_part_and_is_json():
    record = json.loads(json.dumps(environment.record()))
    assert record["versions"]["numpy"] == np.__version__ and record["versions"]["python"] == platform.python_version()
    assert record["cpu_count"] == os.cpu_count() and 1 <= record["usable_cpu_count"] <= os.cpu_count()
    assert len(record["load"]) == 3 and all(value >= 0 for value in record["load"])
    assert record["numba"]["num_threads"] >= 1
    assert {pool["user_api"] for pool in record["blas"]["loaded"]} >= {"blas"}


def test_thread_variables_are_those_set(monkeypatch):
    for name in environment.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert environment.thread_variables() == {"OPENBLAS_NUM_THREADS": "1"}


CPUINFO = {
    "x86": "processor\t: 0\nmodel name\t: Test Xeon\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f\n\n"
           "processor\t: 1\nmodel name\t: Other\nflags\t\t: fpu\n",
    "arm": "processor\t: 0\nFeatures\t: fp asimd sve\n",
}


@pytest.mark.parametrize("kind, model, extensions", [("x86", "Test Xeon", ["sse4_2", "avx", "avx2", "fma", "avx512f"]),
                                                     ("arm", None, ["asimd", "sve"])])
def test_cpuinfo_is_read_once_for_the_first_cpu(kind, model, extensions, monkeypatch):
    real_open = builtins.open

    def fake_open(path, *args, **kwargs):
        return io.StringIO(CPUINFO[kind]) if path == "/proc/cpuinfo" else real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(platform, "processor", lambda: "")
    environment._cpuinfo.cache_clear()
    try:
        assert environment.cpu() == {"model": model, "vector_extensions": extensions}
        machine = environment.machine()
        assert machine["cpu"] == (model or platform.machine()) and machine["vector_extensions"] == extensions
        assert machine["logical_cores"] == os.cpu_count()
    finally:
        environment._cpuinfo.cache_clear()
