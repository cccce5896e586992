"""Under NUMBA_DISABLE_JIT=1 fastscratch imports, and the kernel tests pass on the plain twins run as Python.

That is how the kernels' bodies can be traced for coverage. The child runs
tests/kernels except what cannot apply or would take minutes as Python: the
allocation count of compiled code, the real-MNIST structure test, the
784-input shapes and the two-process thread test (the twins' training is
checked against the compiled variants in test_variants.py: the same numbers).
"""
import json
import os
import pathlib
import subprocess
import sys

import pytest
from numba import config

pytestmark = pytest.mark.skipif(config.DISABLE_JIT, reason="starts its own NUMBA_DISABLE_JIT run")

HERE = pathlib.Path(__file__).parent
NOT_AS_PYTHON = "not mnist and not 784 and not thread_counts and not allocates_nothing"


def test_kernel_tests_pass_as_plain_python():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    env.pop("FASTSCRATCH_SIMD", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE), "-k", NOT_AS_PYTHON,
         "--ignore", str(HERE / "test_variants.py"), "--ignore", __file__],
        capture_output=True, text=True, timeout=600, env=env, cwd=HERE.parent.parent)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-3000:]
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary


IMPORT = """
import json
import numpy as np
import fastscratch
import fastscratch.kernels.dense_forward
from fastscratch.kernels import simd
assert simd.combine_rows is simd.plain_combine_rows and simd.VECTOR_BITS == 0
assert not hasattr(fastscratch.kernels.dense_forward.dense_forward, "py_func")  # plain Python, not a dispatcher
np.random.seed(0)
net = fastscratch.SimpleNetwork(6, 3, [5])
print(json.dumps(np.asarray(net.forward(np.ones((2, 6)))).shape))
"""


def test_import_works_without_jit():
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    env.pop("FASTSCRATCH_SIMD", None)
    result = subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == [2, 3]
