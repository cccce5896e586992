"""The memory probe: a network whose parameters cannot fit fails before any data is loaded; running out later
is a clear error."""
import os
import subprocess
import sys

import pytest

from fastscratch.cli import memory, text
from test_rundir import SUBPROCESS_TIMEOUT, no_data_loading, usage_error  # noqa: F401 (a fixture)


@pytest.mark.parametrize("dtype, need", [("float64", "2.3 TiB"), ("float32", "1.2 TiB")])
def test_a_network_too_large_for_memory_is_a_usage_error_with_the_size(dtype, need, no_data_loading, tmp_path,
                                                                        capsys):
    err = usage_error(["train", "--hidden", "100000000", "--dtype", dtype, "--out", str(tmp_path / "run")], capsys)
    assert "argument --hidden" in err and f"needs at least {need}" in err and "available" in err
    assert not (tmp_path / "run").exists()


def test_memory_estimate_counts_every_parameter():
    sizes = [784, 64, 32, 10]
    assert memory.parameter_count(sizes) == 784 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10
    assert memory.memory_problem(sizes, "float64") is None
    assert text.byte_count(3 * 1024 ** 3) == "3.0 GiB" and text.byte_count(512) == "512 bytes"


MEMORY_LIMIT = 6 * 1024 ** 3  # virtual memory; NumPy, Numba and the data take about 3 GiB of it


def test_out_of_memory_after_the_estimate_is_a_clear_error(mnist_dir, tmp_path):
    """Under a memory limit the weights fit but the outputs over 60,000 images do not: no traceback."""
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]),) * 2); "
            "from fastscratch import cli; sys.exit(cli.main(sys.argv[2:]))")
    result = subprocess.run([sys.executable, "-c", code, str(MEMORY_LIMIT), "train", "--hidden", "30000",
                             "--data-dir", mnist_dir, "--out", str(tmp_path / "run"), "--quiet"],
                            env=dict(os.environ, OPENBLAS_NUM_THREADS="1"), capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == 1, result.stderr
    assert "out of memory" in result.stderr and "784-30000-10" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
