"""Atomic writes: whole or absent, and otherwise what opening the file for writing would do (modes, links)."""
import json
import os
import stat
import subprocess
import sys

import pytest

from fastscratch import _files
from fastscratch._files import atomic_write, write_bytes, write_text


def test_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    write_text(target, "new content")
    assert target.read_text() == "new content"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_failure_keeps_old_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "model.npz"
    write_bytes(target, b"good")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write(b"half")
            raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"good"
    assert os.listdir(tmp_path) == ["model.npz"]


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_0666_less_the_umask(umask, expected, tmp_path):
    old = os.umask(umask)
    try:
        write_text(tmp_path / "f", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == expected


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("kept", [0o600, 0o640, 0o604, 0o664, 0o755], ids=oct)
def test_a_replaced_file_keeps_its_mode_from_before_its_content_is_written(kept, tmp_path):
    """As np.savez or open(path, "w") overwriting in place: a private model stays private, with the usual umask."""
    target = tmp_path / "model.npz"
    write_bytes(target, b"old")
    os.chmod(target, kept)
    old = os.umask(0o022)
    try:
        with atomic_write(target) as f:
            assert mode(f.temporary_path) == kept  # no moment where the new content is readable by more users
            f.write(b"new")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new" and mode(target) == kept
    assert os.listdir(tmp_path) == ["model.npz"]


def test_a_symbolic_link_is_written_through_to_its_target(tmp_path):
    """open() writes a link's target; the rename must not replace the link by a file."""
    (tmp_path / "models").mkdir()
    target = tmp_path / "models" / "v3.npz"
    write_bytes(target, b"old")
    os.chmod(target, 0o600)
    (tmp_path / "model.npz").symlink_to(target)
    write_bytes(tmp_path / "model.npz", b"new")
    assert (tmp_path / "model.npz").is_symlink() and os.readlink(tmp_path / "model.npz") == str(target)
    assert target.read_bytes() == b"new" and mode(target) == 0o600
    assert sorted(os.listdir(tmp_path / "models")) == ["v3.npz"]


READ_ONLY = """
import importlib.util, json, os, sys
spec = importlib.util.spec_from_file_location("_files", sys.argv[1])
files = importlib.util.module_from_spec(spec)
spec.loader.exec_module(files)
path = os.path.join(sys.argv[2], "model.npz")
files.write_bytes(path, b"mine")
os.chmod(path, 0o444)
try:
    open(path, "r+b").close()
    opened = "opened"
except PermissionError:
    opened = "refused"
try:
    files.write_bytes(path, b"overwritten")
    written = "written"
except PermissionError as err:
    written = "refused " + str(err)
with open(path, "rb") as f:
    print(json.dumps([opened, written, f.read().decode(), oct(os.stat(path).st_mode & 0o777)]))
"""


def _without_roots_overrides():
    """Root writes any file by CAP_DAC_OVERRIDE (and reads any by CAP_DAC_READ_SEARCH): drop both from the
    capabilities the child will hold, so that it meets file modes as any other user does."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_a_file_that_may_not_be_written_is_refused_as_open_refuses_it(tmp_path):
    """chmod 444 keeps open(path, "w") and np.savez off a file; a rename must not be the way around it. Where the
    suite runs as root, the child runs without root's right to write any file."""
    try:
        run = subprocess.run([sys.executable, "-c", READ_ONLY, _files.__file__, str(tmp_path)], capture_output=True,
                             text=True, timeout=120, stdin=subprocess.DEVNULL,
                             preexec_fn=_without_roots_overrides if os.geteuid() == 0 else None)
    except subprocess.SubprocessError as err:  # a container that does not let root drop capabilities
        pytest.skip(f"cannot run a child without root's file overrides: {err}")
    assert run.returncode == 0, run.stderr[-3000:]
    opened, written, content, final_mode = json.loads(run.stdout)
    assert opened == "refused"
    assert written.startswith("refused") and "model.npz" in written and "Permission denied" in written
    assert (content, final_mode) == ("mine", "0o444")
