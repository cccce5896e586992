"""report: what report.md says and which charts it promises, from results lines written here."""
import pytest

from fastscratch.implementations import Config
from fastscratch.study import report, results


def line(implementation, seed=1, repeat=0, epochs=1, error=None, **settings):
    record = {"key": f"{implementation}-{seed}-{repeat}-{epochs}-{settings}", "study": "seed-job",
              "methodology": results.METHODOLOGY_VERSION, "repeat": repeat,
              **Config(implementation, seed=seed, epochs=epochs, **settings).asdict()}
    if error:
        return {**record, "status": "failed", "error": error, "machine": None}
    return {**record, "status": "ok", "seconds_per_epoch": [1.0 if implementation == "reference" else 0.25] * epochs,
            "losses": [0.5 / (e + 1) for e in range(epochs)], "accuracies": [0.9] * epochs, "loadavg_1min": 1.5,
            "versions": {"numpy": "2"}, "machine": {"hostname": "h", "cpu": "c", "logical_cores": 2}}


def write(directory, records):
    with results.Writer(directory) as writer:
        for r in records:
            writer.append(r)
    report.write(directory)
    return (directory / "report.md").read_text()


def test_failed_cells_are_grouped_by_error_and_the_title_is_the_studys(tmp_path):
    missing = "ImportError: implementation 'torch' needs torch, which is not installed"
    records = ([line("reference", seed=s) for s in (1, 2)] + [line("jit", seed=s) for s in (1, 2)]
               + [line("torch", seed=s, repeat=r, error=missing) for s in (1, 2) for r in range(5)]
               + [line("jax", seed=1, error="RuntimeError: boom")])
    text = write(tmp_path, records)
    assert text.startswith("# Study report: seed-job\n")
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert "15 cell-repeats in" in text and ": 4 ok, 11 failed;" in text
    failed = text[text.index("## Failed cells"):]
    assert failed.count(missing) == 1 and f"| {missing} | 10 | torch float64, seed 1; torch float64, seed 2 |" in failed
    assert "| RuntimeError: boom | 1 | jax float64, seed 1 |" in failed
    # seeds as a column of their own, not "(2)" after the accuracy; the device each row ran on
    assert "| 90.00% ± 0.00 | 2 |" in text and "| jit | cpu | mnist | float64 |" in text
    # one epoch: no curves promised or drawn; speed-ups drawn and shown
    assert "curves.png" not in text and not (tmp_path / "curves.png").exists()
    assert "![speed-ups](speedups.png)" in text and (tmp_path / "speedups.png").exists()


def test_several_epochs_draw_curves_and_no_speedups_without_a_reference(tmp_path):
    text = write(tmp_path, [line("jit", seed=s, epochs=3, activation=a) for s in (1, 2) for a in ("relu", "tanh")])
    assert "![loss and accuracy](curves.png)" in text and (tmp_path / "curves.png").exists()
    assert "speedups.png" not in text and not (tmp_path / "speedups.png").exists()


def test_labels_are_words():
    keys = report.varying([Config("jit", seed=1).asdict(), Config("jit", seed=2, batch_size=10, threads=2).asdict()])
    assert keys == ["batch_size", "seed", "threads"]
    assert report.describe(Config("jit", "float32", seed=2, batch_size=10, threads=2).asdict(), keys) == \
        "jit float32, batch 10, seed 2, 2 threads"


def test_a_title_without_study_names_is_the_folders(tmp_path):
    record = line("jit")
    del record["study"]
    assert write(tmp_path / "folder", [record]).startswith("# Study report: folder\n")


@pytest.fixture(autouse=True)
def _agg():
    import matplotlib
    matplotlib.use("Agg")


def test_a_worker_without_a_load_average_is_reported(tmp_path):
    """A platform without os.getloadavg records the load as null; the report says so instead of failing."""
    text = write(tmp_path, [{**line(name, seed=s), "loadavg_1min": None} for name in ("reference", "jit")
                            for s in (1, 2)])
    assert "| jit | cpu | mnist | float64 |" in text
