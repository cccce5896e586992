"""Tests of benchmarks/render.py on tiny hand-made pytest-benchmark JSON."""
import importlib.util
import json
import os
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("fastscratch_bench_render", Path(__file__).with_name("render.py"))
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)


def bench(group, impl, dtype, config, median, iqr=0.01, **info):
    return {"group": group, "name": f"test_{group}[{impl}-{dtype}]", "param": f"{impl}-{dtype}",
            "extra_info": {"implementation": impl, "dtype": dtype, "config": config, "cpu_model": "Test CPU",
                           "cpu_count": 2, "loadavg_1min": 0.5, "numba": "0.0", "blas": ["openblas"], **info},
            "stats": {"median": median, "iqr": iqr, "rounds": 5}}


def write(path, benchmarks, when="2026-11-28T12:00:00"):
    path.write_text(json.dumps({"datetime": when, "commit_info": {"id": "abc1234def5678", "dirty": False},
                                "machine_info": {}, "benchmarks": benchmarks}))
    return path


@pytest.fixture
def run(tmp_path):
    return write(tmp_path / "0001_bench.json", [
        bench("epoch", "reference", "float64", "seed-epoch", 2.0),
        bench("epoch", "reference-blas1", "float64", "seed-epoch", 1.0, blas_threads_limit=1),
        bench("epoch", "jit", "float64", "seed-epoch", 0.1, loss_rel_diff=1e-13),
        bench("epoch", "reference", "float32", "seed-epoch", 1.6),
        bench("epoch", "jit", "float32", "seed-epoch", 0.05),
        bench("grid", "reference", "float64", "784-64-32-10 b=1 steps=400", 0.2),
        bench("grid", "jit", "float64", "784-64-32-10 b=1 steps=400", 0.01, speedup_vs_reference=19.5,
              paired_speedup=18.25, pairs=5),
        bench("startup", "jit", "float64", "startup cold cache", 9.0, cache="cold",
              first_epoch_overhead_s=5.5, later_epoch_s=0.1, import_s=0.8),
    ])


def test_speedups_use_fastest_reference_and_prefer_recorded_values(run):
    _, rows = render.load([run])
    by = {(r["group"], r["implementation"], r["dtype"]): r for r in rows}
    assert by["epoch", "jit", "float64"]["speedup"] == pytest.approx(10.0)  # 1.0 (blas1) / 0.1, not 2.0 / 0.1
    assert by["epoch", "jit", "float32"]["speedup"] == pytest.approx(32.0)
    assert by["epoch", "jit", "float32"]["speedup_f64"] == pytest.approx(20.0)
    assert by["grid", "jit", "float64"]["speedup"] == 19.5  # recorded in extra_info wins
    assert by["epoch", "reference", "float64"]["speedup"] is None
    assert by["startup", "jit", "float64"]["speedup"] is None


def test_markdown_has_one_table_per_group_in_order(run):
    text = render.markdown(*render.load([run]))
    assert text.index("## epoch") < text.index("## grid") < text.index("## startup")
    assert "| jit | float64 | seed-epoch | 100 ms | 10 ms | 5 | 10x | 10x |" in text
    assert "| reference | float64 | seed-epoch | 2 s |" in text
    assert "loss rel. diff 1.0e-13" in text
    assert "1st epoch +5.50 s" in text
    assert "paired 18.2x (median of 5 alternating reference/JIT calls)" in text
    assert "Test CPU" in text and "abc1234def" in text
    # references come before the JIT within a config and dtype
    assert text.index("| reference | float64 | seed-epoch") < text.index("| jit | float64 | seed-epoch")


def test_directory_takes_newest_file_per_pattern(tmp_path, run):
    old = write(tmp_path / "0002_full.json", [bench("full-run", "jit", "float64", "full run", 60.0,
                                                    final_accuracy=0.9, peak_rss_bytes=2 ** 29,
                                                    data_bytes=2 ** 28)])
    newer = write(tmp_path / "0003_bench.json", [bench("epoch", "jit", "float64", "seed-epoch", 0.2)],
                  when="2026-11-28T13:00:00")
    os.utime(run, (1, 1))
    os.utime(old, (2, 2))
    assert render.resolve([tmp_path]) == [newer]
    assert render.resolve([tmp_path], ("*_bench.json", "*_full.json")) == [newer, old]
    assert render.resolve([tmp_path], ("*_full.json", "*_peers.json")) == [old]  # unmatched pattern ignored
    runs, rows = render.load([tmp_path], ("*_bench.json", "*_full.json"))
    assert [r["group"] for r in rows] == ["epoch", "full-run"]
    assert "peak RSS 512 MiB (data 256 MiB;" in render.markdown(runs, rows)


def test_cli_writes_markdown_and_a_png(tmp_path, run):
    out_md, out_png = tmp_path / "r.md", tmp_path / "r.png"
    assert render.main([str(run), "--markdown", str(out_md), "--png", str(out_png)]) == 0
    assert out_md.read_text().startswith("# fastscratch benchmarks")
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out_png.stat().st_size > 5000


def test_cli_prints_without_markdown_and_rejects_empty_runs(tmp_path, run, capsys):
    render.main([str(run)])
    assert "## epoch" in capsys.readouterr().out
    empty = write(tmp_path / "empty.json", [])
    with pytest.raises(SystemExit):
        render.main([str(empty)])


def test_missing_directory_content_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        render.resolve([tmp_path])
