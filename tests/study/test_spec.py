"""Study specs: what a grid expands to, and every kind of bad spec refused before anything runs."""
import subprocess
import sys

import pytest

from fastscratch.datasets import DATASETS
from fastscratch.implementations import Config
from fastscratch.study import spec


def parse(text, tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(text)
    return spec.load(path)


def test_grid_is_the_cartesian_product(tmp_path):
    study = parse('repeats = 4\norder_seed = 9\n[data]\ntrain_rows = 500\n[grid]\n'
                  'implementation = ["reference", "jit"]\ndtype = ["float64", "float32"]\n'
                  'hidden = [[8], [4, 2]]\nbatch_size = [1, 30]\nlearning_rate = 1\nseed = [1, 2, 3]\n', tmp_path)
    assert study.name == "s" and study.repeats == 4 and study.order_seed == 9
    assert study.data == spec.Data(None, 500, 10000)
    assert len(study.cells) == 2 * 2 * 2 * 2 * 3
    assert study.cells[0] == Config("reference", "float64", (8,), 1, learning_rate=1.0, seed=1)
    assert {c.hidden for c in study.cells} == {(8,), (4, 2)}
    assert all(isinstance(c.learning_rate, float) for c in study.cells)


def test_one_hidden_value_and_defaults(tmp_path):
    study = parse('[grid]\nimplementation = "jit"\nhidden = [64, 32]\n', tmp_path)
    assert study.cells == (Config("jit"),) and study.repeats == 3


@pytest.mark.parametrize("text, message", [
    ('repeat = 3\n[grid]\nimplementation = "jit"', "unknown key 'repeat'; allowed: repeats, order_seed, data, grid"),
    ('[grid]\nimplementation = "jit"\nbatch = 3', "unknown key 'grid.batch'; allowed: grid.implementation, "
                                                  "grid.dtype, grid.hidden, grid.batch_size"),
    ('[data]\nrows = 3\n[grid]\nimplementation = "jit"', "unknown key 'data.rows'; allowed: data.dir"),
    ('[grid]\nimplementation = ["jit", "tensorflow"]', "unknown grid.implementation 'tensorflow'; "
                                                        "allowed: jax, jit, reference, torch"),
    ('[grid]\nimplementation = "jit"\ndtype = "float16"', "unknown grid.dtype 'float16'; allowed: float64, float32"),
    ('[grid]\nimplementation = "jit"\nactivation = "gelu"', "allowed: relu, sigmoid, tanh"),
    ('[grid]\nimplementation = "jit"\nbatch_size = "30"', "grid.batch_size must be an integer, got '30'"),
    ('[grid]\nimplementation = "jit"\nbatch_size = 2.5', "grid.batch_size must be an integer, got 2.5"),
    ('[grid]\nimplementation = "jit"\nepochs = true', "grid.epochs must be an integer, got True"),
    ('[grid]\nimplementation = "jit"\nlearning_rate = "fast"', "grid.learning_rate must be a number"),
    ('[grid]\nimplementation = "jit"\nhidden = [[64, "a"]]', "grid.hidden must be a list of layer sizes"),
    ('repeats = "3"\n[grid]\nimplementation = "jit"', "repeats must be an integer, got '3'"),
    ('repeats = 0\n[grid]\nimplementation = "jit"', "repeats must be between 1 and 1000, got 0"),
    ('[grid]\nimplementation = "jit"\nseed = []', "the grid has zero cells: grid.seed is an empty list"),
    ('[grid]\nimplementation = []\nseed = []', "zero cells: grid.implementation, grid.seed are empty lists"),
    ('[grid]\ndtype = "float64"', "grid.implementation is required; allowed: jax, jit, reference, torch"),
    ('repeats = 2', "missing [grid] table"),
    ('grid = 3', "grid must be a table"),
    ('[data]\ntrain_rows = 70000\n[grid]\nimplementation = "jit"', "data.train_rows must be between 1 and 60000"),
    ('[data]\ntrain_rows = 20\n[grid]\nimplementation = "jit"', "grid.batch_size 30 is larger than data.train_rows = 20"),
    ('[grid]\nimplementation = "jit"\nbatch_size = 0', "grid.batch_size must be between 1 and 60000, got 0"),
    ('[grid]\nimplementation = "jit"\nlearning_rate = -1.0', "learning_rate must be finite and > 0"),
    ('[grid\nimplementation = "jit"', "not valid TOML"),
    # ranges the runners need (NumPy's seeds are 32-bit) and bounds past which a value is a typo
    ('[grid]\nimplementation = "jit"\nseed = [1, -1]', "grid.seed must be between 0 and 4294967295, got -1"),
    ('[grid]\nimplementation = "jit"\nseed = 4294967296', "grid.seed must be between 0 and 4294967295"),
    ('[grid]\nimplementation = "jit"\nepochs = 1000000', "grid.epochs must be between 1 and 10000"),
    ('[grid]\nimplementation = "jit"\nthreads = 0', "grid.threads must be between 1 and 1024, got 0"),
    ('[grid]\nimplementation = "jit"\nhidden = [64, 0]', "grid.hidden must be between 1 and 65536 (each layer"),
    ('[grid]\nimplementation = "jit"\nhidden = [[8], [10000000]]', "got [10000000]"),
    ('[grid]\nimplementation = "jit"\nlearning_rate = inf', "learning_rate must be finite and > 0"),
    ('repeats = 1000000000000\n[grid]\nimplementation = "jit"', "repeats must be between 1 and 1000, got"),
    ('order_seed = -3\n[grid]\nimplementation = "jit"', "order_seed must be between 0 and 4294967295"),
    ('repeats = 20\n[grid]\nimplementation = "jit"\nseed = ' + str(list(range(6000))),
     "the grid has 6,000 cells x 20 repeats = 120,000 cell-repeats; a study may have at most 10,000 cells"),
])
def test_bad_spec(tmp_path, text, message):
    with pytest.raises(spec.SpecError, match=None) as info:
        parse(text, tmp_path)
    assert message in str(info.value) and str(tmp_path / "s.toml") in str(info.value)


def test_a_huge_grid_is_refused_quickly(tmp_path):
    """2 million cells are refused from the axes' lengths, before any cell is built."""
    import time
    text = ('repeats = 1\n[grid]\nimplementation = ["jit", "reference"]\nseed = ' + str(list(range(1000)))
            + '\nbatch_size = ' + str(list(range(1, 1001))))
    start = time.perf_counter()
    with pytest.raises(spec.SpecError, match="the grid has 2,000,000 cells"):
        parse(text, tmp_path)
    assert time.perf_counter() - start < 1.0


def mnist_names(directory, gz=("", ".gz", "", ".gz")):
    """``directory`` holding empty files under MNIST's four names: the spec checks names, never contents."""
    directory.mkdir(parents=True)
    for file, suffix in zip(DATASETS["mnist"].files, gz):
        (directory / f"{file.name}{suffix}").touch()
    return directory


def test_data_dir_is_relative_to_the_spec(tmp_path):
    (tmp_path / "studies").mkdir()
    mnist_names(tmp_path / "mnist")
    mnist_names(tmp_path / "abs", gz=("",) * 4)
    path = tmp_path / "studies" / "s.toml"
    path.write_text('[data]\ndir = "../mnist"\n[grid]\nimplementation = "jit"\n')
    assert spec.load(path).data.dir == str(tmp_path / "mnist")
    path.write_text(f'[data]\ndir = "{tmp_path}/abs"\n[grid]\nimplementation = "jit"\n')
    assert spec.load(path).data.dir == str(tmp_path / "abs")


@pytest.mark.parametrize("given, problem", [
    ("../nowhere", "[data] dir = '../nowhere': no such directory ({tmp}/nowhere, relative to the spec's folder)"),
    ("{tmp}/nowhere", "[data] dir = '{tmp}/nowhere': no such directory ({tmp}/nowhere)"),
    ("../a-file", "[data] dir = '../a-file': not a directory ({tmp}/a-file, relative to the spec's folder)"),
    ("../empty", "[data] dir = '../empty': {tmp}/empty has no train-images-idx3-ubyte[.gz], "
                 "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]; it "
                 "must hold MNIST's four files"),
    ("../three", "[data] dir = '../three': {tmp}/three has no t10k-labels-idx1-ubyte[.gz];"),
])
def test_a_data_dir_that_cannot_hold_mnist_is_refused(tmp_path, given, problem):
    """Every MNIST cell of such a study would fail with MNISTError: the spec is refused, naming the key and
    the path as given and as resolved."""
    (tmp_path / "studies").mkdir()
    (tmp_path / "a-file").write_text("")
    (tmp_path / "empty").mkdir()
    mnist_names(tmp_path / "three")
    (tmp_path / "three" / "t10k-labels-idx1-ubyte.gz").unlink()
    path = tmp_path / "studies" / "s.toml"
    path.write_text(f'[data]\ndir = "{given.format(tmp=tmp_path)}"\n[grid]\nimplementation = "jit"\n')
    with pytest.raises(spec.SpecError) as raised:
        spec.load(path)
    assert str(raised.value).startswith(f"{path}: ") and problem.format(tmp=tmp_path) in str(raised.value)


def test_missing_file(tmp_path):
    with pytest.raises(spec.SpecError, match="cannot read the study spec"):
        spec.load(tmp_path / "nope.toml")


def test_cli_refuses_a_bad_spec_before_running(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[grid]\nimplementation = "jit"\nthreads = [1, "two"]\n')
    proc = subprocess.run([sys.executable, "-m", "fastscratch", "study", "run", str(path), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "grid.threads must be an integer, got 'two'" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_missing_data_dir_before_running(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[data]\ndir = "mnist"\n[grid]\nimplementation = "jit"\n')
    proc = subprocess.run([sys.executable, "-m", "fastscratch", "study", "run", str(path), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"[data] dir = 'mnist': no such directory ({tmp_path}/mnist, relative to the spec's folder)" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["seed-job", "activations", "devices"])
def test_shipped_studies_are_valid(name):
    import pathlib
    study = spec.load(pathlib.Path(__file__).parents[2] / "studies" / f"{name}.toml")
    assert study.cells


def test_shipped_worker_config_drops_the_nannys_malloc_setting():
    """DASK_CONFIG=studies/dask-worker.yaml, as the README starts workers: the nanny's variables minus that one."""
    import json
    import os
    import pathlib
    path = pathlib.Path(__file__).parents[2] / "studies" / "dask-worker.yaml"
    code = ("import json; from distributed.nanny import _get_env_variables; "
            "print(json.dumps(_get_env_variables('distributed.nanny.pre-spawn-environ')))")

    def variables(**env):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                             env={k: v for k, v in {**os.environ, **env}.items() if k != "MALLOC_TRIM_THRESHOLD_"})
        return json.loads(out.stdout)
    assert variables()["MALLOC_TRIM_THRESHOLD_"] == "65536"
    configured = variables(DASK_CONFIG=str(path))
    assert "MALLOC_TRIM_THRESHOLD_" not in configured and configured["OMP_NUM_THREADS"] == "1"


@pytest.mark.parametrize("grid, message", [
    ('implementation = ["torch", "jit"]\ndevice = "cuda"',
     "grid: the cell implementation = 'jit', device = 'cuda', dtype = 'float64', dataset = 'mnist': implementation "
     "'jit' runs on cpu only, not on device 'cuda'"),
    ('implementation = "reference"\ndevice = ["cpu", "cuda"]', "implementation 'reference' runs on cpu only"),
    ('implementation = "torch-graph"', "the cell implementation = 'torch-graph', device = 'cpu'"),
    ('implementation = "torch"\ndevice = "tpu"', "unknown grid.device 'tpu'; allowed: cpu, cuda"),
    ('implementation = "jit"\ndataset = "cifar"', "unknown grid.dataset 'cifar'; allowed: mnist, fashion-mnist"),
])
def test_devices_and_datasets_each_implementation_accepts(tmp_path, grid, message):
    with pytest.raises(spec.SpecError) as info:
        parse("[grid]\n" + grid, tmp_path)
    assert message in str(info.value)


def test_several_grids_give_the_union_of_their_cells(tmp_path):
    study = parse('[[grid]]\nimplementation = ["jit", "torch"]\ndataset = ["mnist", "fashion-mnist"]\n'
                  '[[grid]]\nimplementation = ["torch", "torch-graph"]\ndevice = "cuda"\n'
                  '[[grid]]\nimplementation = "jit"\n', tmp_path)
    assert [(c.implementation, c.device, c.dataset) for c in study.cells] == [
        ("jit", "cpu", "mnist"), ("jit", "cpu", "fashion-mnist"), ("torch", "cpu", "mnist"),
        ("torch", "cpu", "fashion-mnist"), ("torch", "cuda", "mnist"), ("torch-graph", "cuda", "mnist")]
    with pytest.raises(spec.SpecError, match=r"grid \(table 2 of 2\): the cell implementation = 'jit', "
                                             r"device = 'cuda'"):
        parse('[[grid]]\nimplementation = "jit"\n[[grid]]\nimplementation = "jit"\ndevice = "cuda"\n', tmp_path)
