"""compare: the Mann-Whitney U test against SciPy's, and flags only for changes beyond the noise."""
import math

import numpy as np
import pytest

from fastscratch.implementations import Config
from fastscratch.study import compare, results


@pytest.mark.parametrize("n, m, ties", [(3, 3, False), (5, 5, False), (4, 6, True), (12, 15, False), (20, 9, True)])
def test_p_matches_scipy(rng, n, m, ties):
    stats = pytest.importorskip("scipy.stats")
    a, b = rng.normal(size=n), rng.normal(0.8, size=m)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
        b[0] = a[0]
    method = "exact" if n + m <= 14 and not ties else "asymptotic"
    expected = stats.mannwhitneyu(a, b, alternative="two-sided", method=method,
                                  use_continuity=True).pvalue
    if ties and n + m <= 14:  # our enumeration of the tied ranks is exact; SciPy's asymptotic is not
        assert 0 < compare.mann_whitney_p(a, b) <= 1
    else:
        assert compare.mann_whitney_p(a, b) == pytest.approx(expected, rel=1e-9)


def test_smallest_exact_p_is_two_over_the_number_of_splits():
    assert compare.mann_whitney_p([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / math.comb(6, 3))
    assert compare.mann_whitney_p([4, 5, 6], [1, 2, 3]) == pytest.approx(2 / math.comb(6, 3))
    assert compare.mann_whitney_p([1, 2, 3], [1, 2, 3]) == 1.0


def study_dir(path, seconds_by_cell, versions=None, load=1.0):
    """A results directory with one ok line per (cell, repeat) and these seconds per epoch; a cell is an
    implementation name, or (name, seed)."""
    with results.Writer(path) as writer:
        for cell, seconds in seconds_by_cell.items():
            implementation, seed = cell if isinstance(cell, tuple) else (cell, 1)
            for repeat, s in enumerate(seconds):
                writer.append({"key": f"{implementation}-{seed}-{repeat}-{s}-{versions}", "versions": versions or {},
                               "status": "ok", **Config(implementation, hidden=(8,), seed=seed).asdict(),
                               "repeat": repeat, "seconds_per_epoch": [s], "losses": [1.0], "accuracies": [0.5],
                               "methodology": results.METHODOLOGY_VERSION, "loadavg_1min": load,
                               "machine": {"hostname": "h", "cpu": "c", "logical_cores": 2}})
    return path


def test_flags_only_changes_beyond_factor_and_noise(tmp_path, rng):
    base = {name: list(1 + 0.02 * rng.random(5)) for name in ("reference", "jit", "torch", "jax")}
    a = study_dir(tmp_path / "a", base)
    b = study_dir(tmp_path / "b", {
        "reference": base["reference"],                          # the yardstick, unchanged
        "jit": [x * 1.5 for x in base["jit"]],                   # slower, clearly
        "torch": [x * 1.05 for x in base["torch"]],              # within the factor
        "jax": [1.0, 1.0, 2.5, 2.5, 1.0],                         # median unchanged, noisy
    })
    rows = {r["cell"]["implementation"]: r for r in compare.compare(a, b)}
    assert rows["jit"]["flag"] == "slower" and rows["jit"]["ratio"] == pytest.approx(1.5)
    assert rows["jit"]["speedup_b"] == pytest.approx(rows["jit"]["speedup_a"] / 1.5)
    assert rows["torch"]["flag"] == "" and rows["jax"]["flag"] == "" and rows["reference"]["flag"] == ""
    table = compare.format_table(compare.compare(a, b), 0.05, 1.1)
    assert "1 of 4 cells changed beyond x1.1 with p < 0.05" in table
    assert "(the reference: the yardstick, not flagged)" in table


def test_a_busier_machine_slows_every_cell_and_flags_none(tmp_path, rng):
    """Two identical studies, the second on a machine twice as loaded: every cell (reference included) is 1.4x
    slower in absolute time, but no speed-up moved, so nothing is flagged; both loads are shown."""
    base = {name: list(1 + 0.02 * rng.random(5)) for name in ("reference", "jit", "jax")}
    a = study_dir(tmp_path / "a", base, load=1.0)
    b = study_dir(tmp_path / "b", {k: [x * 1.4 for x in v] for k, v in base.items()}, load=2.0)
    comparison = compare.compare(a, b)
    assert all(r["absolute"] == "slower" and r["flag"] == "" for r in comparison)
    assert {r["relative"] for r in comparison if r["cell"]["implementation"] != "reference"} == {""}
    table = compare.format_table(comparison, 0.05, 1.1)
    assert "load average (1 min) at the cells' start, A: 1.00-1.00 (median 1.00)" in table
    assert "B: 2.00-2.00 (median 2.00)" in table
    assert "(slower in absolute time only: against the same study's reference, unchanged)" in table
    assert "0 of 3 cells changed" in table


def test_cells_of_one_study_only_are_listed_and_a_cell_without_reference_is_judged_alone(tmp_path):
    a = study_dir(tmp_path / "a", {("jit", 1): [1.0, 1.01, 1.02, 1.0, 1.01], ("jit", 2): [1.0] * 5})
    b = study_dir(tmp_path / "b", {("jit", 1): [2.0, 2.01, 2.02, 2.0, 2.01], ("jax", 1): [1.0] * 5})
    comparison = compare.compare(a, b)
    (row,) = comparison
    assert row["flag"] == "slower (absolute only)" and row["relative"] is None
    table = compare.format_table(comparison, 0.05, 1.1)
    assert "only in A: jit float64, seed 2 on h (c, 2 logical cores)" in table
    assert "only in B: jax float64, seed 1 on h" in table
    assert "1 cells only in A, 1 only in B" in table
    assert "jit float64, seed 1 " in table and "b30" not in table  # words, not b30 t1 s42


def test_a_new_library_version_starts_a_new_series(tmp_path):
    """Lines of an older version of the same cell in the same directory are left out, not pooled."""
    a = study_dir(tmp_path / "a", {"jit": [1.0] * 5})
    b = study_dir(tmp_path / "b", {"jit": [1.0] * 5}, versions={"numba": "0.1"})
    study_dir(tmp_path / "b", {"jit": [2.0, 2.0, 2.1, 2.0, 2.0]}, versions={"numba": "0.2"})
    assert sorted(compare.samples(b)[0].popitem()[1]) == [2.0, 2.0, 2.0, 2.0, 2.1]
    (row,) = compare.compare(a, b)
    assert row["ratio"] == pytest.approx(2.0) and row["flag"] == "slower (absolute only)"


def test_three_repeats_cannot_flag(tmp_path):
    a = study_dir(tmp_path / "a", {"jit": [1.0, 1.01, 1.02]})
    b = study_dir(tmp_path / "b", {"jit": [2.0, 2.01, 2.02]})
    (row,) = compare.compare(a, b)
    assert row["flag"] == "" and row["too_few"] and row["p"] == pytest.approx(0.1)


def test_no_common_cell(tmp_path):
    a = study_dir(tmp_path / "a", {"jit": [1.0]})
    b = study_dir(tmp_path / "b", {"jax": [1.0]})
    with pytest.raises(ValueError, match="share no cell on the same machine"):
        compare.compare(a, b)
