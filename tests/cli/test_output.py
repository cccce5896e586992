"""Output whose reader is gone (a closed terminal or pipe) never fails the command."""
import io
import os

from fastscratch.cli import output


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
