"""Every setting lives in ``fastscratch.config`` under one name, read at the moment it is needed: patching that
one name changes every reader."""
import ast
import importlib
import pathlib

import numba
import numpy as np
import pytest

import fastscratch
from fastscratch import config
from fastscratch.kernels import structure

PACKAGE = pathlib.Path(fastscratch.__file__).parent

#: Where each setting lived before it moved to ``config``.
MOVED = {
    "fastscratch.routing": ["KERNEL_MAX_BATCH", "KERNEL_SMALL_HIDDEN_WEIGHTS", "KERNEL_SPARSE_INPUT",
                            "KERNEL_MAX_HIDDEN_WEIGHTS", "KERNEL_MAX_ENTRIES"],  # plan.py's, which is gone
    "fastscratch.prediction": ["EVAL_GROUP", "COMPILED_MIN_ROWS", "MIN_ROWS_PER_THREAD"],
    "fastscratch.kernels.structure": ["MIN_ROWS_PER_THREAD"],
    "fastscratch.kept_data": ["SAMPLE_ROWS"],
    "fastscratch.kernels.simd": ["TILE_VECTORS", "PREFETCH_DISTANCE", "PREFETCH_ABOVE_BYTES", "PREFETCH_TILE_BYTES"],
    "fastscratch.datasets": ["TIMEOUT", "MAX_ITEMS"],
}


#: Settings compiled into the kernels: read once, when they are compiled.
COMPILED_IN = {"SIMD", "JIT_OPTIONS", "TILE_VECTORS", "PREFETCH_DISTANCE", "PREFETCH_ABOVE_BYTES",
               "PREFETCH_TILE_BYTES"}


def sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_takes_a_copy_of_a_setting():
    """``from fastscratch.config import X``, ``X = config.Y`` at module level or ``config.Y`` as a default argument
    would freeze the value a later assignment to ``config.Y`` must change."""
    found = []
    for path in sources():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "fastscratch.config":
                found.append(f"{path.name}:{node.lineno}: from fastscratch.config import")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for default in [*node.args.defaults, *node.args.kw_defaults]:
                    if default is not None and any(reads_config(n) for n in ast.walk(default)):
                        found.append(f"{path.name}:{node.lineno}: config in a default argument")
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and path.name != "config.py":
                if any(reads_config(n) for n in ast.walk(node.value)):
                    found.append(f"{path.name}:{node.lineno}: a module-level copy of a setting")
    assert not found


def reads_config(node):
    """Whether ``node`` reads a setting that takes effect at each use (compiled-in ones are read once, on purpose)."""
    return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "config"
            and node.attr not in COMPILED_IN)


@pytest.mark.parametrize("module", MOVED)
def test_moved_settings_are_gone_from_their_old_modules(module):
    old = importlib.import_module(module)
    assert [name for name in MOVED[module] if hasattr(old, name)] == []
    assert all(hasattr(config, name) for name in MOVED[module] if name != "TIMEOUT")
    assert config.DOWNLOAD_TIMEOUT > 0


@pytest.mark.parametrize("module", ["fastscratch._config", "fastscratch.plan"])
def test_the_modules_that_held_settings_are_gone(module):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(module)


def test_reset_restores_one_setting_or_all():
    config.KERNEL_MAX_BATCH, config.MIRRORS["mnist"] = 5, ("http://127.0.0.1:9/",)
    config.EVAL_GROUP = 3
    try:
        config.reset("KERNEL_MAX_BATCH")
        assert config.KERNEL_MAX_BATCH == 127 and config.EVAL_GROUP == 3
        config.reset()
        assert config.EVAL_GROUP == 32 and config.MIRRORS["mnist"][0].startswith("https://")
        with pytest.raises(KeyError, match="not a fastscratch setting"):
            config.reset("NO_SUCH_SETTING")
    finally:
        config.reset()


def test_one_name_sets_how_the_rows_are_split_over_threads(rng, monkeypatch):
    """The indexing of X and the compiled predict split their rows by ``config.MIN_ROWS_PER_THREAD`` alone (each
    used to read a copy of its own, which tests had to patch both of)."""
    pools = []

    class Pool(structure.ThreadPoolExecutor):
        def __init__(self, workers):
            pools.append(workers)
            super().__init__(workers)
    monkeypatch.setattr(structure, "ThreadPoolExecutor", Pool)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 3)
    net = fastscratch.SimpleNetwork(12, 4, [6])
    X = rng.random((700, 12)) * (rng.random((700, 12)) > 0.5)
    whole = net.predict(X)
    assert pools == []  # 700 rows: too few for a second thread by default
    monkeypatch.setattr(config, "MIN_ROWS_PER_THREAD", 100)
    np.testing.assert_array_equal(net.predict(X.copy()), whole)
    # Counting X's nonzeros, filling its structure, its groups' entries, the forward passes: each in 3 parts.
    assert len(pools) >= 3 and set(pools) == {2}
