"""Render saved pytest-benchmark JSON into a markdown table and a PNG bar chart.

Usage::

    python benchmarks/render.py [PATH ...] [--markdown OUT.md] [--png OUT.png]

Each PATH is a JSON file written by ``pytest --benchmark-save`` or a directory
(default ``.benchmarks``) in which the newest such file is taken (the newest
matching each ``--pattern``, if given). Several files are merged (e.g. a
``bench`` run and a ``full`` run). Speed-ups come from
``extra_info`` when the run recorded them, else they are recomputed here: the
median of the fastest ``reference*`` variant with the same config and dtype,
divided by the row's median.
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

GROUP_ORDER = ["epoch", "peers", "grid", "startup", "full-run"]


def newest_json(directory, pattern="*.json"):
    files = sorted(Path(directory).rglob(pattern), key=lambda p: (p.stat().st_mtime, p.name))
    if not files:
        raise FileNotFoundError(f"no pytest-benchmark JSON matching {pattern!r} under {directory}")
    return files[-1]


def resolve(paths, patterns=("*.json",)):
    """Files as given; for a directory, the newest file matching each pattern (patterns without a match
    are ignored as long as one matches)."""
    out = []
    for path in map(Path, paths):
        if not path.is_dir():
            out.append(path)
            continue
        found = []
        for pattern in patterns:
            try:
                found.append(newest_json(path, pattern))
            except FileNotFoundError:
                pass
        if not found:
            raise FileNotFoundError(f"no pytest-benchmark JSON matching {list(patterns)} under {path}")
        out += found
    return list(dict.fromkeys(out))


def load(paths, patterns=("*.json",)):
    """Return (runs, rows): the runs' machine facts and one dict per benchmark."""
    runs, rows = [], []
    for path in resolve(paths, patterns):
        data = json.loads(path.read_text())
        runs.append({"file": str(path), "datetime": data.get("datetime"),
                     "commit": (data.get("commit_info") or {}).get("id"),
                     "dirty": (data.get("commit_info") or {}).get("dirty"),
                     "machine": data.get("machine_info") or {}})
        for bench in data.get("benchmarks", []):
            info = bench.get("extra_info") or {}
            stats = bench.get("stats") or {}
            rows.append({
                "group": bench.get("group") or info.get("group") or "",
                "implementation": info.get("implementation") or bench.get("name", "?"),
                "dtype": info.get("dtype", ""),
                "config": info.get("config") or bench.get("param") or bench.get("name", ""),
                "shapes": info.get("shapes", ""),
                "median": stats.get("median"), "iqr": stats.get("iqr"), "rounds": stats.get("rounds"),
                "info": info,
            })
    add_speedups(rows)
    rows.sort(key=sort_key)
    return runs, rows


def add_speedups(rows):
    best = {}
    for row in rows:
        if row["implementation"].startswith("reference") and row["median"]:
            key = (row["config"], row["dtype"])
            if key not in best or row["median"] < best[key]:
                best[key] = row["median"]
    for row in rows:
        info, median = row["info"], row["median"]
        for out, dtype in (("speedup", row["dtype"]), ("speedup_f64", "float64")):
            recorded = info.get("speedup_vs_reference" if out == "speedup" else "speedup_vs_reference_float64")
            ref = best.get((row["config"], dtype))
            if recorded is not None:
                row[out] = recorded
            elif ref and median and not row["implementation"].startswith("reference"):
                row[out] = ref / median
            else:
                row[out] = None


def natural(text):
    """'784-64-32-10 b=30' sorts before '784-256-128-10 b=1': numbers compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def sort_key(row):
    group = GROUP_ORDER.index(row["group"]) if row["group"] in GROUP_ORDER else len(GROUP_ORDER)
    impl = row["implementation"]
    rank = 0 if impl.startswith("reference") else 1 if impl == "jit" else 2
    return group, row["group"], natural(row["config"]), row["dtype"] != "float64", rank, impl


def seconds(value):
    if value is None:
        return "—"
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} µs"


def ratio(value):
    return "—" if value is None else f"{value:.3g}x"


def notes(row):
    info = row["info"]
    out = []
    if (info.get("epochs") or 1) > 1 and info.get("per_epoch_s"):
        out.append(f"{info['epochs']} epochs per call: {seconds(info['per_epoch_s'])} per epoch")
    if "loss_rel_diff" in info:
        out.append(f"loss rel. diff {info['loss_rel_diff']:.1e}")
    if row["group"] == "startup" and info.get("first_epoch_overhead_s") is not None:
        out.append(f"1st epoch +{info['first_epoch_overhead_s']:.2f} s over a later one "
                   f"({info.get('later_epoch_s', 0):.3f} s); import {info.get('import_s', 0):.2f} s")
    if row["group"] == "full-run":
        out.append(f"final accuracy {info.get('final_accuracy', float('nan')):.4f}; "
                   f"peak RSS {info.get('peak_rss_bytes', 0) / 2 ** 20:.0f} MiB "
                   f"(data {info.get('data_bytes', 0) / 2 ** 20:.0f} MiB; "
                   f"{info.get('peak_rss_above_import_bytes', 0) / 2 ** 20:.0f} MiB above the imports)")
    if info.get("paired_speedup"):
        out.append(f"paired {info['paired_speedup']:.3g}x (median of {info.get('pairs')} alternating "
                   "reference/JIT calls)")
    if info.get("blas_threads_limit"):
        out.append(f"BLAS limited to {info['blas_threads_limit']} thread")
    if info.get("jit_is_reference_alias"):
        out.append("fastscratch.SimpleNetwork was the reference")
    return "; ".join(out)


def machine_lines(runs, rows):
    with_facts = [r for r in rows if r["info"].get("cpu_model")]
    # the JIT's rows were recorded after its kernels ran, so they know Numba's threading layer
    info = next((r["info"] for r in with_facts if r["implementation"] == "jit"),
                with_facts[0]["info"] if with_facts else {})
    lines = []
    for run in runs:
        commit = (run["commit"] or "?")[:10] + (" (dirty tree)" if run["dirty"] else "")
        lines.append(f"- run `{os.path.basename(run['file'])}` at {run['datetime']}, commit {commit}")
    if info:
        lines.append(f"- CPU: {info.get('cpu_model')} ({info.get('cpu_count')} logical cores; "
                     f"{info.get('cpu_simd')}); 1-min load average when recorded: "
                     f"{min(r['info'].get('loadavg_1min', 0) for r in rows if r['info'])}"
                     f"–{max(r['info'].get('loadavg_1min', 0) for r in rows if r['info'])}")
        lines.append(f"- Python {info.get('python')}, NumPy {info.get('numpy')}, Numba {info.get('numba')} "
                     f"({info.get('numba_threads')} threads, threading layer {info.get('numba_threading_layer')})")
        lines.append(f"- BLAS and OpenMP pools (threadpoolctl): {'; '.join(info.get('blas') or [])}")
    peers = {r["implementation"]: r["info"].get("peer_version") for r in rows if r["info"].get("peer_version")}
    if peers:
        lines.append("- peers: " + ", ".join(f"{k} {v}" for k, v in sorted(peers.items())))
    return lines


def markdown(runs, rows):
    out = ["# fastscratch benchmarks", ""]
    out += machine_lines(runs, rows)
    out += ["", "`reference` = `fastscratch.reference.SimpleNetwork` (NumPy, BLAS at its default threads), "
            "`reference-blas1` = the same with BLAS limited to one thread, `jit` = `fastscratch.SimpleNetwork` "
            "(Numba); `torch*`, `jax` = the peers (benchmarks/test_peers.py). Medians over rounds; IQR = "
            "interquartile range. Speed-up = the fastest reference variant's median (same config; same dtype, "
            "or float64) / this row's median, from the same run.", ""]
    for group in dict.fromkeys(r["group"] for r in rows):
        out += [f"## {group}", "",
                "| implementation | dtype | config | median | IQR | rounds | speed-up vs reference "
                "| vs float64 reference | notes |",
                "|---|---|---|---:|---:|---:|---:|---:|---|"]
        for r in (r for r in rows if r["group"] == group):
            out.append(f"| {r['implementation']} | {r['dtype']} | {r['config']} | {seconds(r['median'])} | "
                       f"{seconds(r['iqr'])} | {r['rounds'] or '—'} | {ratio(r['speedup'])} | "
                       f"{ratio(r['speedup_f64'])} | {notes(r)} |")
        out.append("")
    return "\n".join(out)


def epochs(row):
    return row["info"].get("epochs") or 1


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    plain = FuncFormatter(lambda v, _: f"{v:g}")

    panels = []
    timed = [r for r in rows if r["group"] in ("epoch", "peers") and r["median"]]
    if timed:
        panels.append(("epoch", timed))
    grid = [r for r in rows if r["group"] == "grid" and r["implementation"] == "jit" and r["speedup"]]
    if grid:
        panels.append(("grid", grid))
    startup = [r for r in rows if r["group"] == "startup" and r["info"].get("first_epoch_overhead_s") is not None]
    if startup:
        panels.append(("startup", startup))
    if not panels:
        raise ValueError("nothing to plot: no timed epoch, peers, grid or startup results")
    heights = [max(2.0, 0.32 * len(p[1]) + 1.2) for p in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    colors = {"float64": "tab:blue", "float32": "tab:orange"}
    for ax, (kind, items) in zip(axes[:, 0], panels):
        if kind == "epoch":
            labels = [f"{r['implementation']} {r['dtype']}" + (f", {epochs(r)} epochs per call" if epochs(r) > 1 else "")
                      for r in items]
            values = [r["median"] / epochs(r) for r in items]
            ax.barh(range(len(items)), values, color=[colors.get(r["dtype"], "grey") for r in items])
            ax.set_xscale("log")
            ax.set_xlabel("seconds per epoch of the seed's job (median call / epochs per call, log scale)")
            for i, (v, r) in enumerate(zip(values, items)):
                text = f" {v:.3g} s" + (f"  ({r['speedup']:.3g}x)" if r["speedup"] else "")
                ax.text(v, i, text, va="center", fontsize=8)
            ax.set_title("epoch and peers: one epoch of the seed's job\n(in brackets: speed-up vs the fastest "
                         "reference, same dtype)", fontsize=10)
        elif kind == "grid":
            labels = [f"{r['config'].split(' steps')[0].replace('784-', '').replace('-10 ', ' ')} {r['dtype']}"
                      for r in items]
            values = [r["speedup"] for r in items]
            ax.barh(range(len(items)), values, color=[colors.get(r["dtype"], "grey") for r in items])
            ax.axvline(1.0, color="black", lw=0.8)
            ax.set_xscale("log")
            ax.set_xlabel("JIT speed-up vs reference, same dtype (log scale; >1 = faster)")
            paired = [r["info"].get("paired_speedup") for r in items]
            for i, (v, p) in enumerate(zip(values, paired)):
                ax.text(max(v, p or 0) * 1.03, i, f" {v:.3g}x" + (f", paired {p:.3g}x" if p else ""), va="center",
                        fontsize=8)
            if any(paired):
                ax.plot([p for p in paired if p], [i for i, p in enumerate(paired) if p], "kD", ms=4,
                        label="paired: median of alternating reference/JIT calls")
                ax.legend(loc="lower right", fontsize=8)
            ax.set_title("grid: a fixed number of SGD steps, hidden sizes x batch\n(bars: medians timed "
                         "seconds apart)", fontsize=10)
        else:
            labels = [f"{r['info'].get('cache')} cache {r['dtype']}" for r in items]
            values = [r["info"]["first_epoch_overhead_s"] for r in items]
            ax.barh(range(len(items)), values, color=[colors.get(r["dtype"], "grey") for r in items])
            ax.set_xlabel("first epoch minus a later epoch in a fresh process (s)")
            for i, v in enumerate(values):
                ax.text(max(v, 0), i, f" {v:.2f} s", va="center", fontsize=8)
            ax.set_title("startup: extra cost of the first epoch in a fresh process", fontsize=10)
        if ax.get_xscale() == "log":
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(plain)
            ax.xaxis.set_minor_formatter(NullFormatter())
        # Positions, not categories: rows with the same label would share one bar.
        ax.set_yticks(range(len(items)), labels)
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
        ax.margins(x=0.15)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=[".benchmarks"],
                        help="pytest-benchmark JSON files, or directories to take the newest from")
    parser.add_argument("--pattern", action="append",
                        help="in a directory, take the newest file matching this glob (repeatable; "
                             "default *.json), e.g. --pattern '*_bench.json' --pattern '*_full.json'")
    parser.add_argument("--markdown", help="write the table here (default: print it)")
    parser.add_argument("--png", help="write the bar chart here")
    args = parser.parse_args(argv)
    runs, rows = load(args.paths, tuple(args.pattern or ["*.json"]))
    if not rows:
        parser.error("the JSON holds no benchmarks (was the run made with --benchmark-disable?)")
    text = markdown(runs, rows)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")
    if args.png:
        plot(rows, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
