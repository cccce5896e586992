"""Output whose reader is gone (a closed terminal or pipe), or was never there (a closed stream), never fails the
command: unit tests of the lenient streams, then real ``fastscratch train`` processes started the ways job runners
and shells start them."""
import io
import json
import os
import subprocess
import sys
import time

import pytest

import fastscratch
from fastscratch.cli import output
from fastscratch.cli.record import RUN_FILES

TIMEOUT = 600  # seconds; a hang must end


def test_a_write_to_a_closed_pipe_goes_to_devnull_from_then_on(monkeypatch):
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w", buffering=1) as stream:
        monkeypatch.setattr("sys.stderr", stream)
        lenient = output.stderr()
        assert lenient.write("line\n") == 5  # EPIPE, swallowed
        lenient.flush()
        assert os.path.samefile(f"/proc/self/fd/{stream.fileno()}", os.devnull)
        print("more", file=lenient)  # and later writes, and the final flush, succeed


def test_a_working_stream_is_written_as_it_is(monkeypatch):
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stdout", buffer)
    print("text", file=output.stdout())
    assert buffer.getvalue() == "text\n"


def test_command_streams_make_every_write_lenient_and_give_the_streams_back(monkeypatch):
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w", buffering=1) as stream:
        monkeypatch.setattr("sys.stderr", stream)
        with output.command_streams():
            print("a download's progress, a warning", file=sys.stderr)  # not through output.stderr()
        assert sys.stderr is stream


# -- real processes

def run_files(out):
    """The run directory's files, after checking that its history is final, whole JSON (no output mixed in)."""
    with open(out / "history.json", encoding="utf-8") as f:
        history = json.load(f)
    fastscratch.SimpleNetwork.load(out / "model.npz")
    return sorted(os.listdir(out)), history


def train_argv(mnist_dir, out, epochs):
    return [sys.executable, "-m", "fastscratch", "train", "--epochs", str(epochs), "--hidden", "8",
            "--data-dir", mnist_dir, "--out", str(out)]


ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1")


@pytest.mark.parametrize("closed", [">&-", "2>&-", "<&- >&- 2>&-"], ids=["stdout", "stderr", "all three"])
def test_a_command_started_with_a_stream_closed_keeps_the_run(closed, mnist_dir, tmp_path):
    """As some job runners start it (``fastscratch train >&-``): the closed stream is /dev/null; the run, its
    files and its exit code are those of any other run."""
    out = tmp_path / "run"
    # The shell closes the streams, as a job runner does; what it leaves open goes to files, read afterwards.
    with open(tmp_path / "stdout", "w") as stdout, open(tmp_path / "stderr", "w") as stderr:
        code = subprocess.run(["sh", "-c", f'exec "$@" {closed}', "sh", *train_argv(mnist_dir, out, 1)],
                              stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=ENV,
                              timeout=TIMEOUT).returncode
    errors = (tmp_path / "stderr").read_text()
    assert code == 0, errors
    assert "Traceback" not in errors and "Error" not in errors
    files, history = run_files(out)
    assert files == sorted(RUN_FILES)
    assert history["status"] == "completed" and history["completed_epochs"] == 1
    if "2>&-" not in closed:
        assert errors == ""
    if closed == "2>&-":
        assert "Run saved in" in (tmp_path / "stdout").read_text()


def test_a_reader_that_leaves_mid_run_takes_the_output_not_the_run(mnist_dir, tmp_path):
    """``fastscratch train | head -2``: every line after the reader left fails with EPIPE; the run is still
    trained to the end, saved, and its exit code is 0."""
    out = tmp_path / "run"
    with open(tmp_path / "stderr", "w") as stderr:
        process = subprocess.Popen(train_argv(mnist_dir, out, 5), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=stderr, env=dict(ENV, PYTHONUNBUFFERED="1"), text=True)
        try:
            deadline = time.monotonic() + TIMEOUT
            while not process.stdout.readline().startswith("Epoch    1:"):
                assert process.poll() is None and time.monotonic() < deadline, "the run ended before epoch 1"
            process.stdout.close()  # the reader leaves; epochs 2 to 5 and the last lines meet EPIPE
            code = process.wait(timeout=TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    errors = (tmp_path / "stderr").read_text()
    assert code == 0, errors
    assert errors == ""  # no BrokenPipeError, no "Exception ignored" at exit
    files, history = run_files(out)
    assert files == sorted(RUN_FILES)
    assert history["status"] == "completed" and history["completed_epochs"] == 5
