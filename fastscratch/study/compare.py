"""``fastscratch study compare DIR_A DIR_B``: the ratio per cell, flagging only changes beyond the noise.

Each cell is judged twice. On its absolute time, as asv does: the ratio of
the medians beyond ``factor`` either way *and* a two-sided Mann-Whitney U
test on the runs' mean seconds per epoch rejecting equality at ``alpha``. And
on its time relative to the same study's reference cell of the same settings
(the inverse of its speed-up), with the same two tests: a machine whose load
moved between the studies slows the reference as well, which this judgement
discounts. A cell is flagged only when both judgements agree; a cell without a
reference cell in both studies is judged on its absolute time alone, and says
so. With n and m runs the smallest attainable p is 2 / C(n + m, n): 3 against 3
can never reach 0.05, which the table says rather than flag noise.
"""
import itertools
import math

import numpy as np

from fastscratch.study import report


def mann_whitney_p(a, b):
    """Two-sided p of the Mann-Whitney U test: exact (by enumeration) up to 14 samples, else the normal
    approximation with the tie correction."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    n, m = len(a), len(b)
    pooled = np.concatenate([a, b])
    ranks = _ranks(pooled)
    u = ranks[:n].sum() - n * (n + 1) / 2
    centre = n * m / 2
    if n + m <= 14:
        extreme = abs(u - centre)
        count = total = 0
        for chosen in itertools.combinations(range(n + m), n):
            total += 1
            count += abs(ranks[list(chosen)].sum() - n * (n + 1) / 2 - centre) >= extreme - 1e-9
        return count / total
    _, ties = np.unique(pooled, return_counts=True)
    variance = n * m / 12 * ((n + m + 1) - np.sum(ties ** 3 - ties) / ((n + m) * (n + m - 1)))
    if variance == 0:
        return 1.0
    z = (abs(u - centre) - 0.5) / math.sqrt(variance)
    return math.erfc(max(z, 0) / math.sqrt(2))


def _ranks(x):
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):  # ties share their mean rank
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def samples(directory, skipped=None):
    """({(machine, cell): [mean seconds per epoch of each ok run]}, {machine: [1-minute load at each start]})."""
    out, loads = {}, {}
    for r in report.load(directory, skipped):
        if r["status"] == "ok":
            machine = report.machine_name(r)
            out.setdefault((machine, report.cell_of(r, without=())), []).append(float(np.mean(r["seconds_per_epoch"])))
            if r.get("loadavg_1min") is not None:
                loads.setdefault(machine, []).append(r["loadavg_1min"])
    return out, loads


def _reference_of(machine, cell):
    return machine, tuple((k, {"implementation": "reference", "device": "cpu"}.get(k, v)) for k, v in cell)


def _judge(a, b, alpha, factor):
    """(ratio of medians B/A, p, "slower" / "faster" / "")."""
    ratio = float(np.median(b) / np.median(a))
    p = mann_whitney_p(a, b)
    beyond = ratio > factor or ratio < 1 / factor
    return ratio, p, ("slower" if ratio > 1 else "faster") if beyond and p < alpha else ""


def compare(dir_a, dir_b, *, alpha=0.05, factor=1.1, skipped=None):
    """A :class:`Comparison`: per cell both studies ran, the absolute and the relative judgement and the flag."""
    (a, loads_a), (b, loads_b) = samples(dir_a, skipped), samples(dir_b, skipped)
    common = [k for k in a if k in b]
    if not common:
        raise ValueError(f"{dir_a} and {dir_b} share no cell on the same machine")
    rows = []
    for machine, cell in common:
        xa, xb = a[(machine, cell)], b[(machine, cell)]
        ratio, p, absolute = _judge(xa, xb, alpha, factor)
        ref = _reference_of(machine, cell)
        row = dict(machine=machine, cell=dict(cell), a=float(np.median(xa)), b=float(np.median(xb)), ratio=ratio,
                   p=p, absolute=absolute, relative=None, relative_ratio=None, relative_p=None,
                   speedup_a=None, speedup_b=None, runs=(len(xa), len(xb)),
                   too_few=2 / math.comb(len(xa) + len(xb), len(xa)) >= alpha)
        if dict(cell)["implementation"] == "reference":
            row["flag"] = ""  # the yardstick of the relative judgement: its own change is the load's as much as its
        elif ref in a and ref in b:
            ref_a, ref_b = float(np.median(a[ref])), float(np.median(b[ref]))
            row["speedup_a"], row["speedup_b"] = ref_a / row["a"], ref_b / row["b"]
            row["relative_ratio"], row["relative_p"], row["relative"] = _judge(
                np.asarray(xa) / ref_a, np.asarray(xb) / ref_b, alpha, factor)
            row["flag"] = absolute if absolute == row["relative"] else ""
        else:
            row["flag"] = absolute and f"{absolute} (absolute only)"
        rows.append(row)
    rows.sort(key=_order)
    only_a = [(m, dict(c)) for m, c in a if (m, c) not in b]
    only_b = [(m, dict(c)) for m, c in b if (m, c) not in a]
    return Comparison(rows, only_a, only_b, _load_span(loads_a), _load_span(loads_b))


def _order(row):
    """As the report orders its rows: by settings, then the reference first among the implementations."""
    cell = row["cell"]
    return (row["machine"], [str(v) for k, v in cell.items() if k not in ("implementation", "device")],
            report.IMPLEMENTATION_ORDER.get(cell["implementation"], 9), cell["device"])


class Comparison(list):
    """The rows of a comparison, plus the cells only one study ran and each study's load (min, median, max)."""

    def __init__(self, rows, only_a, only_b, load_a, load_b):
        super().__init__(rows)
        self.only_a, self.only_b, self.load_a, self.load_b = only_a, only_b, load_a, load_b


def _load_span(loads):
    values = [x for machine in loads.values() for x in machine]
    return (min(values), float(np.median(values)), max(values)) if values else None


def format_table(comparison, alpha, factor, names=("A", "B")):
    """The comparison as text: the loads, one line per cell, the cells of one study only, and the count."""
    rows = list(comparison)
    keys = report.varying([r["cell"] for r in rows] + [c for _, c in comparison.only_a + comparison.only_b])
    load = {name: span for name, span in zip(names, (comparison.load_a, comparison.load_b))}
    lines = [f"load average (1 min) at the cells' start, {name}: " +
             ("not recorded" if span is None else f"{span[0]:.2f}-{span[2]:.2f} (median {span[1]:.2f})")
             for name, span in load.items()]
    labels = [report.describe(r["cell"], keys) for r in rows]
    width = max([len("cell")] + [len(x) for x in labels])
    lines.append(f"{'cell':<{width}} {'A s/epoch':>10} {'B s/epoch':>10} {'B/A':>6} {'p':>7} "
                 f"{'speed-up A':>10} {'speed-up B':>10} {'p':>7}  flag")
    for label, r in zip(labels, rows):
        if r["cell"]["implementation"] == "reference":
            note = "(the reference: the yardstick, not flagged)"
        elif r["flag"]:
            note = r["flag"]
        elif r["too_few"]:
            note = "(too few runs to flag)"
        elif r["absolute"] and r["relative"] is not None:
            note = f"({r['absolute']} in absolute time only: against the same study's reference, " \
                   f"{r['relative'] or 'unchanged'})"
        else:
            note = ""
        speedups = (f"{_x(r['speedup_a']):>10} {_x(r['speedup_b']):>10} "
                    f"{'-' if r['relative_p'] is None else format(r['relative_p'], '.3f'):>7}")
        lines.append(f"{label:<{width}} {r['a']:>10.4g} {r['b']:>10.4g} {r['ratio']:>6.2f} {r['p']:>7.3f} "
                     f"{speedups}  {note}")
    for name, only in zip(names, (comparison.only_a, comparison.only_b)):
        for machine, cell in only:
            lines.append(f"only in {name}: {report.describe(cell, keys)} on {machine}")
    flagged = sum(bool(r["flag"]) for r in rows)
    lines.append(f"{flagged} of {len(rows)} cells changed beyond x{factor:g} with p < {alpha:g} (Mann-Whitney U) in "
                 "absolute time and against their study's reference"
                 + (f"; {len(comparison.only_a)} cells only in A, {len(comparison.only_b)} only in B"
                    if comparison.only_a or comparison.only_b else ""))
    return "\n".join(lines)


def _x(speedup):
    return "-" if speedup is None else f"{speedup:.2f}x"
