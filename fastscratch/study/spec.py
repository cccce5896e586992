"""The study spec (TOML): ``repeats``, an optional ``[data]`` table and a ``[grid]`` of axes.

Every axis of ``[grid]`` is a list of values (a scalar is one value; for
``hidden`` a list of ints is one value) and the cells are their cartesian
product. Several grids (``[[grid]]`` tables) give the union of their cells,
for studies whose axes do not all combine (GPU-only and CPU-only
implementations). Everything is checked before anything runs: an unknown key, an
unknown implementation, a wrong type or a grid of zero cells is a
:class:`SpecError` naming the key and what is allowed.
"""
import dataclasses
import itertools
import math
import os
import sys

from fastscratch.functions import ACTIVATIONS, LOSSES
from fastscratch.implementations import DATASETS, DEVICES, DTYPES, IMPLEMENTATIONS, RANGES, Config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: grid axis -> (type of one value, allowed values or None, default)
AXES = {
    "implementation": (str, sorted(IMPLEMENTATIONS), None),
    "dtype": (str, list(DTYPES), "float64"),
    "hidden": ("sizes", None, (64, 32)),
    "batch_size": (int, None, 30),
    "activation": (str, sorted(ACTIVATIONS), "sigmoid"),
    "loss": (str, sorted(LOSSES), "l2"),
    "learning_rate": (float, None, 1e-3),
    "epochs": (int, None, 1),
    "seed": (int, None, 42),
    "threads": (int, None, 1),
    "device": (str, list(DEVICES), "cpu"),
    "dataset": (str, list(DATASETS), "mnist"),
}
TOP = {"repeats": int, "order_seed": int, "data": dict, "grid": dict}
DATA = {"dir": str, "train_rows": int, "test_rows": int}
MNIST_ROWS = {"train_rows": 60000, "test_rows": 10000}
#: A study larger than this is a typo, not a plan (and its check alone would take seconds): refused.
MAX_CELLS = 10000
MAX_REPEATS = 1000
MAX_CELL_REPEATS = 100000


class SpecError(ValueError):
    """A study spec that cannot run; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Data:
    dir: str = None          # None: $FASTSCRATCH_MNIST_DIR on each worker, else the user cache;
    #                          relative to the spec file's directory
    train_rows: int = 60000
    test_rows: int = 10000

    def identity(self):
        """What the cells' keys depend on besides the cell's ``dataset`` (not the directory: the loader checks
        the files' digests)."""
        return {"train_rows": self.train_rows, "test_rows": self.test_rows}


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    repeats: int
    data: Data
    cells: tuple             # of implementations.Config, in grid order
    order_seed: int = 0      # seeds the shuffled order of the cell-repeats

    @property
    def max_threads(self):
        return max(cell.threads for cell in self.cells)


def load(path):
    """Read and check the study at ``path``; return a :class:`Study`."""
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except OSError as err:
        raise SpecError(f"{path}: cannot read the study spec ({err.strerror})") from err
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML: {err}") from err
    study = parse(raw, os.path.splitext(os.path.basename(path))[0], source=str(path))
    if study.data.dir is not None:  # a relative data.dir is relative to the spec, as the spec's reader sees it
        directory = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(path)),
                                                  os.path.expanduser(study.data.dir)))
        _check_data_dir(study.data.dir, directory, str(path))
        study = dataclasses.replace(study, data=dataclasses.replace(study.data, dir=directory))
    return study


def _check_data_dir(given, directory, source):
    """Refuse a ``[data] dir`` that cannot hold MNIST, which would fail every MNIST cell of the study."""
    from fastscratch.datasets import missing_files
    where = directory if os.path.isabs(os.path.expanduser(given)) else f"{directory}, relative to the spec's folder"
    if not os.path.isdir(directory):
        problem = "not a directory" if os.path.exists(directory) else "no such directory"
        raise SpecError(f"{source}: [data] dir = {given!r}: {problem} ({where})")
    missing = missing_files("mnist", directory)
    if missing:
        raise SpecError(f"{source}: [data] dir = {given!r}: {directory} has no {', '.join(missing)}; it must hold "
                        f"MNIST's four files (each may end in .gz)")


def parse(raw, name, source="<spec>"):
    """Check the TOML tables ``raw`` and expand the grid; ``source`` prefixes every error."""
    def fail(message):
        raise SpecError(f"{source}: {message}")

    _known(raw, TOP, "", fail)
    repeats = _value(raw.get("repeats", 3), int, "repeats", fail)
    order_seed = _value(raw.get("order_seed", 0), int, "order_seed", fail)
    if not 1 <= repeats <= MAX_REPEATS:
        fail(f"repeats must be between 1 and {MAX_REPEATS}, got {repeats}")
    if not 0 <= order_seed <= 2**32 - 1:
        fail(f"order_seed must be between 0 and {2**32 - 1}, got {order_seed}")
    data_raw = raw.get("data", {})
    _table(data_raw, "data", fail)
    _known(data_raw, DATA, "data.", fail)
    data = Data(dir=_value(data_raw["dir"], str, "data.dir", fail) if "dir" in data_raw else None,
                **{k: _rows(data_raw, k, fail) for k in MNIST_ROWS})
    grids = raw.get("grid")
    if grids is None:
        fail("missing [grid] table (at least: implementation = [...])")
    if isinstance(grids, list) and grids and all(isinstance(g, dict) for g in grids):
        cells = [cell for i, grid in enumerate(grids, 1)
                 for cell in _cells(grid, f"grid (table {i} of {len(grids)})", repeats, fail)]
    else:
        cells = _cells(grids, "grid", repeats, fail)
    cells = list(dict.fromkeys(cells))
    if len(cells) > MAX_CELLS or len(cells) * repeats > MAX_CELL_REPEATS:
        fail(f"the grids have {len(cells):,} cells x {repeats:,} repeats; a study may have at most {MAX_CELLS:,} "
             f"cells and {MAX_CELL_REPEATS:,} cell-repeats: split it into several studies")
    too_big = [c.batch_size for c in cells if c.batch_size > data.train_rows]
    if too_big:
        fail(f"grid.batch_size {max(too_big)} is larger than data.train_rows = {data.train_rows}")
    return Study(name, repeats, data, tuple(cells), order_seed)


def _cells(grid, where, repeats, fail):
    """The cells of one ``[grid]`` table, in grid order; ``where`` names the table in errors."""
    _table(grid, "grid", fail)
    _known(grid, AXES, "grid.", fail)
    if "implementation" not in grid:
        fail(f"{where}: grid.implementation is required; allowed: {', '.join(AXES['implementation'][1])}")
    axes = {axis: _axis(grid.get(axis, [default]), axis, kind, allowed, fail)
            for axis, (kind, allowed, default) in AXES.items()}
    empty = [axis for axis, values in axes.items() if not values]
    if empty:
        fail(f"the grid has zero cells: {', '.join('grid.' + a for a in empty)} "
             f"{'is an empty list' if len(empty) == 1 else 'are empty lists'}")
    size = math.prod(len(values) for values in axes.values())
    if size > MAX_CELLS or size * repeats > MAX_CELL_REPEATS:
        fail(f"the grid has {size:,} cells x {repeats:,} repeats = {size * repeats:,} cell-repeats; a study may have "
             f"at most {MAX_CELLS:,} cells and {MAX_CELL_REPEATS:,} cell-repeats: split it into several studies")
    cells = []
    for values in itertools.product(*axes.values()):
        cell = dict(zip(axes, values))
        try:
            cells.append(Config(**cell))
        except ValueError as err:
            named = ", ".join(f"{k} = {cell[k]!r}" for k in ("implementation", "device", "dtype", "dataset"))
            fail(f"{where}: the cell {named}: {err}")
    return cells


def _known(table, allowed, prefix, fail):
    for key in table:
        if key not in allowed:
            fail(f"unknown key '{prefix}{key}'; allowed: {', '.join(prefix + k for k in allowed)}")


def _table(value, key, fail):
    if not isinstance(value, dict):
        fail(f"{key} must be a table ([{key}]), got {type(value).__name__}")


def _rows(table, key, fail):
    rows = _value(table.get(key, MNIST_ROWS[key]), int, f"data.{key}", fail)
    if not 1 <= rows <= MNIST_ROWS[key]:
        fail(f"data.{key} must be between 1 and {MNIST_ROWS[key]}, got {rows}")
    return rows


def _value(value, kind, key, fail, allowed=None):
    ok = (isinstance(value, kind) and not isinstance(value, bool) if kind in (int, str)
          else isinstance(value, (int, float)) and not isinstance(value, bool))
    if not ok:
        fail(f"{key} must be {'a number' if kind is float else 'an integer' if kind is int else 'a string'}, "
             f"got {value!r}")
    if allowed is not None and value not in allowed:
        fail(f"unknown {key} {value!r}; allowed: {', '.join(allowed)}")
    return float(value) if kind is float else value


def _axis(values, axis, kind, allowed, fail):
    key = f"grid.{axis}"
    if kind == "sizes":
        # one value is a list of ints; a list of such lists is several
        if isinstance(values, (list, tuple)) and values and all(isinstance(v, int) for v in values):
            values = [values]
        if not isinstance(values, (list, tuple)) or not all(
                isinstance(v, (list, tuple)) and all(isinstance(s, int) and not isinstance(s, bool) for s in v)
                for v in values):
            fail(f"{key} must be a list of layer sizes ([64, 32]) or a list of them ([[64, 32], [256, 128]]), "
                 f"got {values!r}")
        values = [tuple(v) for v in values]
    else:
        if not isinstance(values, list):
            values = [values]
        values = [_value(v, kind, key, fail, allowed) for v in values]
    if axis in RANGES:
        low, high = RANGES[axis]
        for value in values:
            if not all(low <= v <= high for v in (value if axis == "hidden" else (value,))):
                fail(f"{key} must be between {low} and {high}{' (each layer size)' if axis == 'hidden' else ''}, "
                     f"got {list(value) if axis == 'hidden' else value}")
    return values
