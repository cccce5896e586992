"""``fastscratch study compare DIR_A DIR_B``: the ratio per cell, flagging only changes beyond the noise.

As asv does, a cell is flagged only when the ratio of the medians is beyond
``factor`` either way *and* a two-sided Mann-Whitney U test on the runs'
mean seconds per epoch rejects equality at ``alpha``. With n and m runs the
smallest attainable p is 2 / C(n + m, n): 3 against 3 can never reach 0.05,
which the table says rather than flag noise.
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
    """{(machine, cell): [mean seconds per epoch of each ok run]} of a study directory."""
    out = {}
    for r in report.load(directory, skipped):
        if r["status"] == "ok":
            out.setdefault((report.machine_name(r), report.cell_of(r, without=())), []).append(float(np.mean(r["seconds_per_epoch"])))
    return out


def compare(dir_a, dir_b, *, alpha=0.05, factor=1.1, skipped=None):
    """Rows (machine, cell, median A, median B, ratio B/A, p, flag) for the cells both studies ran."""
    a, b = samples(dir_a, skipped), samples(dir_b, skipped)
    common = [k for k in a if k in b]
    if not common:
        raise ValueError(f"{dir_a} and {dir_b} share no cell on the same machine")
    rows = []
    for machine, cell in common:
        ma, mb = float(np.median(a[(machine, cell)])), float(np.median(b[(machine, cell)]))
        p = mann_whitney_p(a[(machine, cell)], b[(machine, cell)])
        ratio = mb / ma
        beyond = ratio > factor or ratio < 1 / factor
        flag = ("slower" if ratio > 1 else "faster") if beyond and p < alpha else ""
        reachable = 2 / math.comb(len(a[(machine, cell)]) + len(b[(machine, cell)]), len(a[(machine, cell)]))
        rows.append(dict(machine=machine, cell=dict(cell), a=ma, b=mb, ratio=ratio, p=p, flag=flag,
                         too_few=reachable >= alpha, runs=(len(a[(machine, cell)]), len(b[(machine, cell)]))))
    return rows


def format_table(rows, alpha, factor):
    lines = [f"{'cell':<58} {'A s/epoch':>10} {'B s/epoch':>10} {'B/A':>6} {'p':>7}  flag"]
    for r in rows:
        c = r["cell"]
        name = (f"{c['implementation']} {c['dtype']} {'-'.join(map(str, c['hidden']))} b{c['batch_size']} "
                f"{c['activation']} {c['loss']} t{c['threads']} s{c['seed']}")
        note = r["flag"] or ("(too few runs to flag)" if r["too_few"] else "")
        lines.append(f"{name:<58} {r['a']:>10.4g} {r['b']:>10.4g} {r['ratio']:>6.2f} {r['p']:>7.3f}  {note}")
    flagged = sum(bool(r["flag"]) for r in rows)
    lines.append(f"{flagged} of {len(rows)} cells changed beyond x{factor:g} with p < {alpha:g} (Mann-Whitney U)")
    return "\n".join(lines)
