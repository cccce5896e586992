"""results.jsonl: content-addressed keys, append + fsync, and a cut-off last line dropped on reopening."""
import dataclasses
import json
import os

import pytest

from fastscratch.implementations import Config
from fastscratch.study import results
from fastscratch.study.spec import Data

VERSIONS = {"python": "3.11.0", "fastscratch": "0.1.0", "numpy": "2.0"}


def test_key_depends_on_everything_that_changes_a_result(monkeypatch):
    cell, data = Config("jit"), Data(None, 100, 50)
    key = results.cell_key(cell, data, 0, VERSIONS)
    assert key == results.cell_key(Config("jit"), Data("/elsewhere", 100, 50), 0, dict(VERSIONS))  # not the dir
    others = {results.cell_key(dataclasses.replace(cell, seed=43), data, 0, VERSIONS),
              results.cell_key(dataclasses.replace(cell, threads=2), data, 0, VERSIONS),
              results.cell_key(cell, Data(None, 101, 50), 0, VERSIONS),
              results.cell_key(cell, data, 1, VERSIONS),
              results.cell_key(cell, data, 0, {**VERSIONS, "numpy": "2.1"})}
    monkeypatch.setattr(results, "METHODOLOGY_VERSION", results.METHODOLOGY_VERSION + 1)
    others.add(results.cell_key(cell, data, 0, VERSIONS))
    assert len(others) == 6 and key not in others


def test_versions_names_what_runs_the_implementation():
    found = results.versions("jit")
    assert set(found) == {"python", "fastscratch", "numpy", "numba"} and all(found.values())
    assert set(results.versions("jax")) == {"python", "fastscratch", "numpy", "jax", "jaxlib"}


def test_append_read_and_resume(tmp_path):
    with results.Writer(tmp_path) as writer:
        assert writer.finished() == set()
        writer.append({"key": "a", "status": "ok", "value": float("nan")})
        writer.append({"key": "b", "status": "failed", "error": "boom"})
    with results.Writer(tmp_path) as writer:
        assert writer.finished() == {"a", "b"}
        assert writer.finished(retry_failed=True) == {"a"}
        writer.append({"key": "b", "status": "ok"})
    records = results.read(tmp_path)
    assert [r["key"] for r in records] == ["a", "b", "b"]
    assert [r["status"] for r in results.latest(records)] == ["ok", "ok"]


def test_one_writer_at_a_time(tmp_path):
    with results.Writer(tmp_path) as writer:
        writer.append({"key": "a", "status": "ok"})
        with pytest.raises(results.BusyError, match="another `fastscratch study run`"):
            results.Writer(tmp_path)
        writer.append({"key": "b", "status": "ok"})
    with results.Writer(tmp_path) as writer:  # released on close
        assert writer.finished() == {"a", "b"}


def test_a_cut_off_line_is_dropped(tmp_path):
    with results.Writer(tmp_path) as writer:
        writer.append({"key": "a", "status": "ok"})
    path = tmp_path / results.FILENAME
    with open(path, "ab") as f:
        f.write(b'{"key": "b", "sta')  # a crash in the middle of a line
    assert [r["key"] for r in results.read(tmp_path)] == ["a"]
    with results.Writer(tmp_path) as writer:
        writer.append({"key": "c", "status": "ok"})
    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["key"] for line in lines] == ["a", "c"]


def ok_record(**changes):
    """A well-formed ok line of this methodology."""
    record = {"key": "k1", "status": "ok", "methodology": results.METHODOLOGY_VERSION, **Config("jit").asdict(),
              "repeat": 0, "seconds_per_epoch": [0.5], "losses": [0.1], "accuracies": [0.9],
              "versions": dict(VERSIONS), "machine": {"hostname": "h"}}
    record.update(changes)
    return {k: v for k, v in record.items() if v is not DROP}


DROP = object()
BAD_LINES = {
    "an array": (b"[1, 2]", "a JSON list, not a record"),
    "a number": (b"3", "a JSON int, not a record"),
    "no key": (json.dumps(ok_record(key=DROP)).encode(), "no 'key' field"),
    "no status": (json.dumps(ok_record(status=DROP)).encode(), "no 'status' field"),
    "no seconds": (json.dumps(ok_record(seconds_per_epoch=DROP)).encode(), "no 'seconds_per_epoch' field"),
    "hidden an int": (json.dumps(ok_record(hidden=64)).encode(), "'hidden' is 64, not a list"),
    "seconds as text": (json.dumps(ok_record(seconds_per_epoch=["0.5"])).encode(), "'seconds_per_epoch' holds"),
    "status unknown": (json.dumps(ok_record(status="done")).encode(), "status 'done' is neither"),
    "NUL bytes": (b"\x00" * 40, "not a JSON line"),
    "not UTF-8": (b"\xff\xfe{}", "not UTF-8 text"),
    "not JSON": (b"{not json}", "not a JSON line"),
}


@pytest.mark.parametrize("problem", list(BAD_LINES))
def test_a_malformed_line_is_reported_with_its_place_and_skipped(tmp_path, problem):
    """Valid JSON that is no record, a field missing or of the wrong type, NUL bytes: skipped and described
    as PATH:LINE, the lines around it kept; its cell is not finished, so `study run` runs it again."""
    line, why = BAD_LINES[problem]
    good = json.dumps(ok_record(key="good")).encode()
    (tmp_path / results.FILENAME).write_bytes(good + b"\n" + line + b"\n" + good.replace(b"good", b"later") + b"\n")
    skipped = []
    assert [r["key"] for r in results.read(tmp_path, skipped)] == ["good", "later"]
    assert len(skipped) == 1 and skipped[0].startswith(f"{tmp_path / results.FILENAME}:2: ") and why in skipped[0]
    with results.Writer(tmp_path) as writer:
        assert writer.finished() == {"good", "later"}


def test_older_methodologies_need_only_key_and_status(tmp_path):
    old = {"key": "a", "status": "ok", "methodology": results.METHODOLOGY_VERSION - 1}
    (tmp_path / results.FILENAME).write_text(json.dumps(old) + "\n")
    skipped = []
    assert results.read(tmp_path, skipped) == [old] and skipped == []


def test_a_writer_that_wrote_nothing_gives_the_directory_back(tmp_path):
    """A study refused or stopped before its first result leaves nothing: not the file, not the directories
    the writer created; what was there before stays."""
    with results.Writer(tmp_path / "new" / "deeper" / "out"):
        assert (tmp_path / "new" / "deeper" / "out" / results.FILENAME).exists()
    assert os.listdir(tmp_path) == []
    (tmp_path / "existing").mkdir()
    with results.Writer(tmp_path / "existing"):
        pass
    assert os.listdir(tmp_path) == ["existing"] and os.listdir(tmp_path / "existing") == []
    (tmp_path / "existing" / results.FILENAME).write_bytes(b"")  # the user's own empty file is not ours to remove
    with results.Writer(tmp_path / "existing"):
        pass
    assert os.listdir(tmp_path / "existing") == [results.FILENAME]
    with results.Writer(tmp_path / "kept" / "out") as writer:
        writer.append({"key": "a", "status": "ok"})
    assert [r["key"] for r in results.read(tmp_path / "kept" / "out")] == ["a"]


def test_a_writer_whose_directory_cannot_be_made_leaves_no_parents(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NotADirectoryError):
        results.Writer(tmp_path / "a-file" / "out")
    with pytest.raises(OSError, match="File name too long"):  # after making new/: a name no file system takes
        results.Writer(tmp_path / "new" / ("x" * 300) / "out")
    assert os.listdir(tmp_path) == ["a-file"]


def test_a_writer_locking_a_file_given_back_meanwhile_opens_it_again(tmp_path, monkeypatch):
    """Run B opens results.jsonl while run A (which created it) holds the lock; A writes nothing and gives the
    file back: B must write into the file the path names, not into the removed one."""
    first = results.Writer(tmp_path)
    real_flock = results.fcntl.flock
    calls = []

    def flock(fd, operation):
        if not calls:
            first.close()  # A closes between B's open and B's lock
        calls.append(operation)
        return real_flock(fd, operation)

    monkeypatch.setattr(results.fcntl, "flock", flock)
    with results.Writer(tmp_path) as second:
        second.append({"key": "b", "status": "ok"})
    assert len(calls) == 2  # the first lock was of the removed file: opened again
    assert [r["key"] for r in results.read(tmp_path)] == ["b"]
