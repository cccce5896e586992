"""``fastscratch study report DIR``: ``DIR/report.md``, ``DIR/speedups.png`` and (cells of several epochs) ``DIR/curves.png``.

Per machine (hostname and CPU), per cell without its seed: the median over
repeats and seeds of each run's mean seconds per epoch, the interquartile range,
the speed-up against the reference cell of the same settings and dtype in the
same study on the same machine, the largest ``max_rel_diff_vs_reference``, and
the final accuracy, mean +/- std over seeds. Only lines of the newest
methodology count; failed cells are listed apart.
"""
import collections
import os

import numpy as np

from fastscratch.study import results

SETTINGS = ("implementation", "device", "dataset", "dtype", "hidden", "batch_size", "activation", "loss",
            "learning_rate", "epochs", "threads")
IMPLEMENTATION_ORDER = {"reference": 0, "jit": 1, "torch": 2, "torch-graph": 3, "jax": 4}
MAX_CURVES = 16


def machine_name(record):
    m = record.get("machine") or {}
    return f"{m.get('hostname')} ({m.get('cpu')}, {m.get('logical_cores')} logical cores)"


def cell_of(record, without=("seed",)):
    return tuple((k, tuple(record[k]) if k == "hidden" else record[k]) for k in SETTINGS + ("seed",)
                 if k not in without)


def summarise(records):
    """{machine: [row dict per cell]} from ``ok`` records (one row per settings tuple, seeds pooled)."""
    groups = collections.defaultdict(list)
    for r in records:
        groups[(machine_name(r), cell_of(r))].append(r)
    medians, table = {}, collections.defaultdict(list)
    for (machine, cell), runs in groups.items():
        samples = np.array([np.mean(r["seconds_per_epoch"]) for r in runs])
        q1, median, q3 = np.percentile(samples, [25, 50, 75])
        finals = {}
        for r in sorted(runs, key=lambda r: r["repeat"]):
            finals.setdefault(r["seed"], r["accuracies"][-1] if r["accuracies"] else np.nan)
        diffs = [r["max_rel_diff_vs_reference"] for r in runs if r.get("max_rel_diff_vs_reference") is not None]
        row = dict(cell, machine=machine, median=median, iqr=q3 - q1, runs=len(runs), seeds=len(finals),
                   accuracy_mean=float(np.mean(list(finals.values()))),
                   accuracy_std=float(np.std(list(finals.values()))),
                   max_rel_diff=max(diffs) if diffs else None, equivalence_steps=runs[0].get("equivalence_steps"),
                   exclusive=all(r.get("exclusive", True) for r in runs),
                   isolation=sorted({r.get("isolation") or "?" for r in runs}),
                   device_name=_device_name(runs[0]),
                   load=float(np.median([_or_nan(r.get("loadavg_1min")) for r in runs])))
        medians[(machine, cell)] = median
        table[machine].append(row)
    for machine, rows in table.items():
        for row in rows:
            ref = dict(cell_of(row, without=("seed",)), implementation="reference", device="cpu")
            ref_median = medians.get((machine, tuple(ref.items())))
            row["speedup"] = ref_median / row["median"] if ref_median else None
        rows.sort(key=lambda r: (r["dataset"], r["dtype"], r["hidden"], r["batch_size"], r["activation"], r["loss"],
                                 r["learning_rate"], r["epochs"], r["threads"],
                                 IMPLEMENTATION_ORDER.get(r["implementation"], 9), r["device"]))
    return dict(table)


def _or_nan(value):
    """A number of a record that may be None (a worker where the platform has no load average) as NaN."""
    return np.nan if value is None else value


def _device_name(record):
    """The device a record ran on, as its framework named it: ``cpu`` or ``cuda (NVIDIA H200)``."""
    name = (record.get("device_facts") or {}).get("name")
    return record["device"] if record["device"] == "cpu" or not name else f"{record['device']} ({name})"


def load(directory, skipped=None):
    """The records of ``directory`` that reports read (this methodology, the newest series); ``skipped``: see
    ``results.read``."""
    if not os.path.exists(os.path.join(directory, results.FILENAME)):
        raise FileNotFoundError(f"no {results.FILENAME} in {directory}: run `fastscratch study run SPEC --out "
                                f"{directory}` first")
    records = [r for r in results.latest(results.read(directory, skipped))
               if r.get("methodology") == results.METHODOLOGY_VERSION]
    if not records:
        raise ValueError(f"{directory}/{results.FILENAME} holds no cells of methodology {results.METHODOLOGY_VERSION}")
    return newest_series(records)


def newest_series(records):
    """Per machine and cell, the lines of the library versions that ran it last: a new version starts a
    new series, which takes the old one's place in reports and comparisons instead of pooling with it."""
    def where(r):
        return machine_name(r), cell_of(r, without=())
    last = {where(r): r.get("versions") for r in records}
    return [r for r in records if r.get("versions") == last[where(r)]]


#: how a setting reads in a label: the implementation and dtype as they are, the others with their name
_WORDS = {"device": str, "dataset": str, "hidden": lambda v: "hidden " + "-".join(map(str, v)),
          "batch_size": lambda v: f"batch {v}",
          "activation": str, "loss": lambda v: f"{v} loss", "learning_rate": lambda v: f"lr {v:g}",
          "epochs": lambda v: f"{v} epoch{'s' if v != 1 else ''}", "seed": lambda v: f"seed {v}",
          "threads": lambda v: f"{v} thread{'s' if v != 1 else ''}"}


def varying(cells, keys=tuple(_WORDS)):
    """The settings among ``keys`` whose values differ between the ``cells`` (dicts)."""
    return [k for k in keys if len({_hashable(c.get(k)) for c in cells}) > 1]


def describe(cell, keys):
    """A readable label of ``cell``: its implementation and dtype, then the settings ``keys`` in words
    (``jit float32, hidden 64-32, batch 30, seed 42``; a GPU cell says so: ``torch on cuda float32``)."""
    where = f" on {cell['device']}" if cell.get("device", "cpu") != "cpu" and "device" not in keys else ""
    return ", ".join([f"{cell['implementation']}{where} {cell['dtype']}"] + [_WORDS[k](cell[k]) for k in keys])


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _label(row, keys):
    """``describe`` without what a chart's colour or title already says."""
    return ", ".join([" ".join(row[k] for k in ("implementation", "dtype") if k in keys)] * any(
        k in keys for k in ("implementation", "dtype")) + [_WORDS[k](row[k]) for k in keys if k in _WORDS])


def _varying(rows, keys):
    return [k for k in keys if len({_hashable(r[k]) for r in rows}) > 1]


def _number(x, digits=3):
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}g}"


def markdown(directory, records):
    ok = [r for r in records if r["status"] == "ok"]
    bad = [r for r in records if r["status"] != "ok"]
    table = summarise(ok)
    names = sorted({r["study"] for r in records if isinstance(r.get("study"), str)})
    title = ", ".join(names) or os.path.basename(os.path.abspath(directory))
    lines = [f"# Study report: {title}", "",
             f"{len(records)} cell-repeats in `{directory}`: {len(ok)} ok, {len(bad)} failed; methodology "
             f"{results.METHODOLOGY_VERSION}. Seconds per epoch include each epoch's test-set evaluation and, "
             "for the first epoch, what the call sets up; the warm-up (compilation) is not in them. Speed-ups "
             "are against the reference (on the CPU) with the same settings, dataset and dtype on the same machine, "
             "in this study. "
             "`max rel diff` is the largest relative difference of a step's loss from the reference's, over the "
             "first `steps` SGD steps from the same weights. The final accuracy is the mean ± standard deviation "
             "over the seeds.", ""]
    for machine, rows in table.items():
        versions = {f"{k} {v}" for r in ok if machine_name(r) == machine for k, v in r["versions"].items()}
        loads = [r["loadavg_1min"] for r in ok if machine_name(r) == machine and r.get("loadavg_1min") is not None]
        lines += [f"## {machine}", "", f"Versions: {', '.join(sorted(versions))}."
                  + (f" Load average (1 min) at the cells' start: {min(loads):.2f}-{max(loads):.2f}." if loads else "")
                  + ("" if all(r["exclusive"] for r in rows) else
                     " **Several workers shared this machine: timings are not comparable.**")
                  + _isolation_note([r for r in ok if machine_name(r) == machine])
                  + _trim_note([r for r in ok if machine_name(r) == machine]), "",
                  "| implementation | device | dataset | dtype | hidden | batch | activation | loss | lr | epochs "
                  "| threads | runs | median s/epoch | IQR | speed-up | max rel diff (steps) | final accuracy "
                  "| seeds |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            diff = "reference" if r["implementation"] == "reference" else \
                f"{_number(r['max_rel_diff'], 2)} ({r['equivalence_steps']})"
            lines.append(
                f"| {r['implementation']} | {r['device_name']} | {r['dataset']} | {r['dtype']} "
                f"| {'-'.join(map(str, r['hidden']))} | {r['batch_size']} "
                f"| {r['activation']} | {r['loss']} | {r['learning_rate']:g} | {r['epochs']} | {r['threads']} "
                f"| {r['runs']} | {r['median']:.4g} | {r['iqr']:.2g} | "
                f"{_speedup(r['speedup'])} "
                f"| {diff} | {100 * r['accuracy_mean']:.2f}% ± {100 * r['accuracy_std']:.2f} | {r['seeds']} |")
        lines.append("")
    lines += _calibration(directory)
    if bad:
        lines += ["## Failed cells", "", "Identical errors are grouped; `fastscratch study run ... --retry-failed` "
                  "runs these cells again.", "", "| error | cell-repeats | cells |", "|---|---|---|"]
        for error, rs, cells in failure_groups(bad):
            lines.append(f"| {error.replace('|', '/')} | {len(rs)} | {some(cells)} |")
        lines.append("")
    if _has_speedups(table):
        lines += ["![speed-ups](speedups.png)", ""]
    if _has_curves(records):
        lines += ["![loss and accuracy](curves.png)", ""]
    return "\n".join(lines), table


def failure_reason(record):
    """What groups a failed record with others: the first line of its error, at most 300 characters."""
    return record["error"].splitlines()[0][:300] if record.get("error") else "(no message)"


def failure_groups(failed):
    """The ``failed`` records grouped by ``failure_reason``, most frequent first, as ``[(reason, records,
    cells)]``; ``cells`` are the distinct cells' labels (``describe`` with the settings that vary among the
    failed records), sorted."""
    groups = collections.defaultdict(list)
    for r in failed:
        groups[failure_reason(r)].append(r)
    keys = varying(failed)
    return [(reason, rs, sorted({describe(r, keys) for r in rs}))
            for reason, rs in sorted(groups.items(), key=lambda item: -len(item[1]))]


def some(labels, shown=6):
    """The first ``shown`` labels, then how many more: ``a; b; c; and 4 more``."""
    return "; ".join(labels[:shown]) + (f"; and {len(labels) - shown} more" if len(labels) > shown else "")


def _isolation_note(records):
    counts = collections.Counter(r.get("isolation") or "not recorded" for r in records)
    return " Cells ran " + ", ".join(f"{how} ({n})" for how, n in sorted(counts.items())) + "."


def _calibration(directory):
    """The report's lines on the calibrations of pinned runs (``run.CALIBRATION``), newest first."""
    import json
    path = os.path.join(directory, "calibration.jsonl")
    if not os.path.exists(path):
        return []
    found = []
    with open(path, "rb") as f:
        for line in f:
            try:
                c = json.loads(line)
                found.append(f"| {c['when']} | {c['workers']} | {len(c['cpus'][0] or [])} | {c['alone']:.4g} | "
                             f"{', '.join(format(x, '.4g') for x in c['busy'])} | {c['ratio']:.2f} |")
            except (ValueError, KeyError, TypeError, IndexError):
                continue  # a cut-off or foreign line: the calibration is a note, not a result
    if not found:
        return []
    return ["## Calibration of pinned workers", "",
            "The seed job's `jit` cell (1 epoch, float64), timed on one worker alone, then on every worker at "
            "once: the ratio (median busy / alone) is what the neighbours cost a timed cell on its own CPUs.", "",
            "| when | workers | CPUs each | alone s/epoch | busy s/epoch | ratio |", "|---|---|---|---|---|---|",
            *reversed(found), ""]


def _trim_note(records):
    values = {(r.get("environ") or {}).get("MALLOC_TRIM_THRESHOLD_") for r in records} - {None}
    if not values:
        return ""
    return (f" Workers ran with MALLOC_TRIM_THRESHOLD_={', '.join(sorted(values))} (Dask's nanny default), which "
            "slows allocation-heavy implementations such as the reference; see studies/dask-worker.yaml.")


def _has_speedups(table):
    return any(r["speedup"] is not None and r["implementation"] != "reference" for rows in table.values() for r in rows)


def _has_curves(records):
    return any(r["status"] == "ok" and len(r["losses"]) > 1 for r in records)


def speedup_chart(table, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    machines = [m for m in table if _has_speedups({m: table[m]})]
    heights = [max(1, sum(r["speedup"] is not None and r["implementation"] != "reference" for r in table[m]))
               for m in machines]
    fig, axes = plt.subplots(len(machines), 1, figsize=(8, 1.2 + 0.32 * sum(heights) + 0.6 * len(machines)),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    colours = {"jit": "tab:blue", "torch": "tab:orange", "torch-graph": "tab:red", "jax": "tab:green"}
    for ax, machine in zip(axes[:, 0], machines):
        rows = [r for r in table[machine] if r["speedup"] is not None and r["implementation"] != "reference"]
        varying = _varying(table[machine], ("implementation", "dtype", "device", "dataset", "hidden", "batch_size",
                                            "activation",
                                            "loss", "threads")) or ["implementation"]
        if "implementation" not in varying:
            varying.insert(0, "implementation")
        y = np.arange(len(rows))[::-1]
        ax.barh(y, [r["speedup"] for r in rows], color=[colours.get(r["implementation"], "grey") for r in rows])
        for yi, r in zip(y, rows):
            ax.text(r["speedup"], yi, f" {r['speedup']:.2f}x", va="center", fontsize=8)
        ax.set_yticks(y, [_label(r, varying) for r in rows], fontsize=8)
        ax.axvline(1, color="black", lw=0.8)
        ax.set_xlabel("speed-up vs the reference on the CPU (median s/epoch, same settings, dataset and dtype)")
        loads = [r["load"] for r in table[machine] if not np.isnan(r["load"])]
        ax.set_title(f"{machine}, " + (f"load {min(loads):.1f}-{max(loads):.1f} (median per cell)" if loads else
                                       "load not recorded"), fontsize=9)
        ax.set_xlim(0, max([r["speedup"] for r in rows] + [1]) * 1.18)
    fig.tight_layout()
    _save(fig, path)


def curves_chart(records, path):
    """Loss and accuracy per epoch, one line per outcome setting: the mean over seeds with a min-max band.

    The implementations compute the same trajectory (see the equivalence
    column), so each setting's curve is taken from one of them: the reference
    when it ran, float64 before float32.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = collections.defaultdict(dict)
    for r in sorted((r for r in records if r["status"] == "ok" and r["repeat"] == 0),
                    key=lambda r: (-IMPLEMENTATION_ORDER.get(r["implementation"], 9), r["dtype"] != "float32")):
        groups[cell_of(r, without=("seed", "threads", "implementation", "dtype", "device"))][r["seed"]] = r  # best last
    shown = sorted(groups.items(), key=str)[:MAX_CURVES]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.4 + 0.22 * ((len(shown) + 1) // 2)))
    rows = [dict(cell) for cell in groups]
    keys = _varying(rows, ("dataset", "hidden", "batch_size", "activation", "loss", "learning_rate"))
    styles = ["-", "--", ":", "-."]
    for i, (cell, by_seed) in enumerate(shown):
        row = dict(cell)
        for ax, field in ((ax_loss, "losses"), (ax_acc, "accuracies")):
            curves = np.array([by_seed[s][field] for s in sorted(by_seed)], dtype=float)
            epochs = np.arange(1, curves.shape[1] + 1)
            scale = 100 if field == "accuracies" else 1
            # line styles and markers that differ as well as the colours: curves that coincide stay visible
            line, = ax.plot(epochs, scale * curves.mean(axis=0), linestyle=styles[i % len(styles)],
                            marker="os^vDx<>"[i % 8] if len(epochs) < 12 else None, markersize=4, alpha=0.85,
                            label=f"{_label(row, keys) or 'the study'} ({len(by_seed)} seed"
                                  f"{'s' if len(by_seed) != 1 else ''})")
            if len(by_seed) > 1:
                ax.fill_between(epochs, scale * curves.min(axis=0), scale * curves.max(axis=0),
                                color=line.get_color(), alpha=0.15)
    ax_loss.xaxis.get_major_locator().set_params(integer=True)
    ax_acc.xaxis.get_major_locator().set_params(integer=True)
    ax_loss.set(xlabel="epoch", ylabel="training loss (mean over batches)", title="loss: mean over seeds, band min-max")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)", title="accuracy: mean over seeds, band min-max")
    ax_loss.set_yscale("log")
    handles, labels = ax_loss.get_legend_handles_labels()
    more = f" (first {MAX_CURVES} of {len(groups)} settings)" if len(groups) > MAX_CURVES else ""
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False,
               title=f"settings{more}", title_fontsize=8, bbox_to_anchor=(0.5, 0))
    fig.tight_layout(rect=(0, 0.05 + 0.04 * ((len(shown) + 1) // 2), 1, 1))
    _save(fig, path)


def write(directory, skipped=None):
    """Write the report and its charts into ``directory``; return the report's path (``skipped``: see
    ``results.read``)."""
    from fastscratch._files import write_text
    records = load(directory, skipped)
    text, table = markdown(directory, records)
    for name, wanted, draw in (("speedups.png", _has_speedups(table), lambda p: speedup_chart(table, p)),
                               ("curves.png", _has_curves(records), lambda p: curves_chart(records, p))):
        path = os.path.join(directory, name)
        if wanted:
            draw(path)
        elif os.path.exists(path):
            os.unlink(path)  # a chart of an earlier report that no longer applies
    path = os.path.join(directory, "report.md")
    write_text(path, text.rstrip("\n") + "\n")
    return path


def _speedup(x):
    return "-" if x is None else f"{x:.2f}x"


def _save(fig, path):
    import matplotlib.pyplot as plt
    from fastscratch._files import atomic_write
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
