"""save() is atomic, and hostile .npz files are refused with a ValueError naming them, in bounded time and memory."""
import errno
import io
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

import fastscratch
from fastscratch import reference, serialization


def good_network(seed=0, sizes=(6, 5, 3)):
    np.random.seed(seed)
    return reference.SimpleNetwork(sizes[0], sizes[-1], list(sizes[1:-1]))


def weights(path):
    _, W, b = serialization.read(path)
    return W + b


def assert_weights(path, network):
    expected = [layer.W for layer in network.layers] + [layer.b for layer in network.layers]
    assert len(weights(path)) == len(expected)
    for saved, array in zip(weights(path), expected):
        np.testing.assert_array_equal(saved, array)


# --- save over a good checkpoint ------------------------------------------------------------------

SAVE_BIG = """
import sys
import numpy as np
from fastscratch import reference
np.random.seed(0)
network = reference.SimpleNetwork(784, 10, [4096, 4096])   # 20 million float64 parameters: 160 MB
print("built", flush=True)
network.save(sys.argv[1])
print("saved", flush=True)
"""


def test_sigkill_while_saving_over_a_checkpoint_leaves_the_old_one(tmp_path):
    path = tmp_path / "model.npz"
    old = good_network()
    old.save(path)
    caught_mid_write = 0
    for _ in range(3):   # a kill that comes after the rename proves nothing: try again
        if caught_mid_write:
            break
        child = subprocess.Popen([sys.executable, "-c", SAVE_BIG, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline() == "built\n"
            deadline = time.monotonic() + 60
            while not any(name.endswith(".tmp") for name in os.listdir(tmp_path)) and child.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.001)
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
        leftovers = [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
        if leftovers:   # killed as it wrote: the checkpoint is the old one, whole
            caught_mid_write += 1
            assert_weights(path, old)
            for name in leftovers:
                os.unlink(tmp_path / name)
        else:   # killed after the rename: the new one, whole
            assert [w.shape for w in weights(path)][0] == (784, 4096)
            old.save(path)
    assert caught_mid_write


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = good_network()
    old.save(path)

    def full_disk(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(serialization.np, "savez", full_disk)
    with pytest.raises(OSError, match="No space"):
        good_network(seed=1).save(path)
    assert os.listdir(tmp_path) == ["model.npz"]
    assert_weights(path, old)


@pytest.mark.parametrize("network_class", [reference.SimpleNetwork, fastscratch.SimpleNetwork],
                         ids=["reference", "fastscratch"])
def test_save_over_a_private_model_keeps_it_private_as_np_savez_does(network_class, tmp_path):
    np.random.seed(0)
    network = network_class(6, 3, [5])
    old_umask = os.umask(0o022)
    try:
        for name in ("model.npz", "by_numpy.npz"):
            network.save(tmp_path / name)
            os.chmod(tmp_path / name, 0o600)
        network.save(tmp_path / "model.npz")
        np.savez(tmp_path / "by_numpy.npz", W=network.layers[0].W)  # NumPy's own overwrite, in place
        network.save(tmp_path / "new.npz")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(os.stat(tmp_path / "by_numpy.npz").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "model.npz").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o644  # a new file: 0666 less the umask
    assert_weights(tmp_path / "model.npz", network)


@pytest.mark.parametrize("name, written", [("model", "model.npz"), ("model.npz", "model.npz"),
                                           ("model.bin", "model.bin.npz")])
def test_save_names_the_file_as_numpy_does(tmp_path, name, written):
    good_network().save(tmp_path / name)
    assert os.listdir(tmp_path) == [written]


# --- hostile files --------------------------------------------------------------------------------

def npy_header(shape, dtype="<f8"):
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def metadata(sizes):
    """Format 1's metadata (still read), which has fewer members to write."""
    return {"format_version": npy(np.array(1)), "layer_sizes": npy(np.array(sizes)), "dtype": npy(np.array("float64")),
            "activation": npy(np.array("sigmoid")), "loss": npy(np.array("l2"))}


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression, compresslevel=1 if compression == zipfile.ZIP_BZIP2 else None) \
            as archive:
        for name, content in members.items():
            if callable(content):   # a writer of a big member, streamed
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    content(member)
            else:
                archive.writestr(f"{name}.npy", content)


def good_members():
    network = good_network()
    members = metadata([6, 5, 3])
    for i, layer in enumerate(network.layers):
        members[f"W{i}"], members[f"b{i}"] = npy(layer.W), npy(layer.b)
    return members


def zeros(count):
    def writer(member):
        for _ in range(count):
            member.write(bytes(1 << 20))
    return writer


def bad_compression_method(path):
    write_zip(path, good_members(), zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    entry = data.rindex(b"W0.npy") - 46   # W0's central directory entry: 46 bytes, then the name
    assert data[entry:entry + 4] == b"PK\x01\x02"
    data[entry + 10:entry + 12] = (99).to_bytes(2, "little")   # compression method 99: none that exists
    path.write_bytes(bytes(data))


HOSTILE = {   # case: (writer, words of the message)
    "square 10^5 header": (lambda p: write_zip(p, {**metadata([100000, 100000]),
                                                    "W0": npy_header((100000, 100000)),
                                                    "b0": npy_header((100000,))}), "GiB"),
    "header larger than its member": (lambda p: write_zip(p, {**metadata([10000, 10000]),
                                                               "W0": npy_header((10000, 10000)),
                                                               "b0": npy_header((10000,))}), "declares"),
    "W0 header disagrees with the sizes": (lambda p: write_zip(p, {**good_members(),
                                                                    "W0": npy_header((100000, 100000))}),
                                           "shape (100000, 100000), expected (6, 5)"),
    "huge extra member": (lambda p: write_zip(p, {**good_members(), "extra": zeros(64)}, zipfile.ZIP_DEFLATED),
                          "['extra']"),
    "bomb behind a good header": (lambda p: write_zip(p, {**good_members(),
                                                           "W0": lambda m: (m.write(npy(np.zeros((6, 5)))),
                                                                            zeros(64)(m))},
                                                      zipfile.ZIP_DEFLATED), "more data"),
    "bad compression method": (bad_compression_method, "compression method"),
    "metadata of a megabyte": (lambda p: write_zip(p, {**good_members(), "activation": npy(np.array("x" * 300000))}),
                               "more than the 4096"),
    "object dtype": (lambda p: write_zip(p, {**good_members(), "dtype": npy_header((), "|O")}), "pickles"),
    "npy version 3": (lambda p: write_zip(p, {**good_members(), "W0": b"\x93NUMPY\x03\x00" + bytes(60)}),
                      "version (3, 0)"),
    "not an npy member": (lambda p: write_zip(p, {**good_members(), "b1": b"hello"}), "not an array"),
    "cut member": (lambda p: write_zip(p, {**good_members(), "W1": npy(np.zeros((5, 3)))[:-8]}), "less data"),
    "truncated zip": (lambda p: (write_zip(p, good_members()), p.write_bytes(p.read_bytes()[:-30])), "not a saved"),
    "bzip2 members": (lambda p: write_zip(p, good_members(), zipfile.ZIP_BZIP2), "method 12 (bzip2)"),
    "lzma members": (lambda p: write_zip(p, good_members(), zipfile.ZIP_LZMA), "method 14 (lzma)"),
    "bzip2 bomb behind a good header": (lambda p: write_zip(p, {**good_members(),
                                                                 "W0": lambda m: (m.write(npy(np.zeros((6, 5)))),
                                                                                  zeros(64)(m))},
                                                            zipfile.ZIP_BZIP2), "bzip2"),
    "lzma bomb behind a good header": (lambda p: write_zip(p, {**good_members(),
                                                                "W0": lambda m: (m.write(npy(np.zeros((6, 5)))),
                                                                                 zeros(64)(m))},
                                                           zipfile.ZIP_LZMA), "lzma"),
    "float32 file with float64-range weights": (
        lambda p: write_zip(p, {**good_members(), "dtype": npy(np.array("float32")),
                                "W1": npy(np.full((5, 3), 1e300))}), "non-finite weights as float32 (W1)"),
    "crc mismatch": (lambda p: (write_zip(p, good_members()),
                                p.write_bytes(p.read_bytes().replace(npy(good_network().layers[1].b),
                                                                     npy(good_network().layers[1].b + 1)))), "CRC"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_file_is_a_value_error_naming_it_and_leaves_the_network(case, tmp_path):
    path = tmp_path / "hostile.npz"
    write, words = HOSTILE[case]
    write(path)
    network = good_network(seed=7)
    before = [layer.W.copy() for layer in network.layers]
    with pytest.raises(ValueError) as info:
        network.load_weights(path)
    assert str(path) in str(info.value) and words in str(info.value)
    with pytest.raises(ValueError, match="hostile.npz"):
        reference.SimpleNetwork.load(path)
    for layer, W in zip(network.layers, before):
        np.testing.assert_array_equal(layer.W, W)


HOSTILE_CHECK = """
import sys, tracemalloc
from fastscratch import serialization
tracemalloc.start()
try:
    serialization.read(sys.argv[1])
except ValueError:
    peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(tracemalloc.get_traced_memory()[1], peak)
"""


@pytest.mark.parametrize("case", ["square 10^5 header", "huge extra member", "bomb behind a good header"])
def test_hostile_file_costs_bounded_memory(case, tmp_path):
    path = tmp_path / "hostile.npz"
    HOSTILE[case][0](path)
    assert path.stat().st_size < 2e6   # 64 MB of zeros, or 80 GB declared
    run = subprocess.run([sys.executable, "-c", HOSTILE_CHECK, str(path)], capture_output=True, text=True,
                         timeout=120)
    traced, peak = map(int, run.stdout.split())
    assert traced < 8e6 and peak < 300e6, (traced, peak)


UNDER_A_MEMORY_LIMIT = """
import resource, sys
import fastscratch
from fastscratch import reference
fastscratch.SimpleNetwork  # the drop-in, imported at its first use, and Numba with it
# Whatever the imports mapped, plus 48 MB: less than any of the bombs holds.
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (size + (48 << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
for network_class in (reference.SimpleNetwork, fastscratch.SimpleNetwork):
    try:
        network_class.load(sys.argv[1])
    except ValueError as err:
        print(err)
"""


@pytest.mark.parametrize("case", ["bzip2 bomb behind a good header", "lzma bomb behind a good header"])
def test_a_compressed_bomb_is_refused_unread_under_a_memory_limit(case, tmp_path):
    """A subprocess whose address space allows 48 MB more than its imports: reading the 64 MB member would be a
    MemoryError (or a crash); refusing the method reads none of it."""
    path = tmp_path / "hostile.npz"
    HOSTILE[case][0](path)
    run = subprocess.run([sys.executable, "-c", UNDER_A_MEMORY_LIMIT, str(path)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count(f"{path}: ") == 2 and "fastscratch reads only stored and deflated" in run.stdout


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_that_overflow_the_networks_dtype_are_refused(dtype, tmp_path):
    """float64 weights past float32's range saved by a float64 network: loading them into a float32 network
    would make them inf, so load_weights refuses, as for any non-finite weights, and changes nothing."""
    source = good_network()
    source.layers[1].b[:] = 1e300
    source.save(tmp_path / "big.npz")
    np.random.seed(1)
    network = reference.SimpleNetwork(6, 3, [5], dtype=dtype)
    before = [layer.W.copy() for layer in network.layers]
    if dtype == "float64":
        network.load_weights(tmp_path / "big.npz")
        assert (network.layers[1].b == 1e300).all()
        return
    with pytest.raises(ValueError, match=r"big.npz: layer 1 holds non-finite weights as float32 \(b1\)"):
        network.load_weights(tmp_path / "big.npz")
    for layer, W in zip(network.layers, before):
        np.testing.assert_array_equal(layer.W, W)


@pytest.mark.parametrize("order, byteorder", [("F", "<"), ("C", ">"), ("F", ">")])
def test_fortran_order_and_big_endian_weights_load(tmp_path, order, byteorder):
    network = good_network()
    members = good_members()
    members["W0"] = npy(np.asarray(network.layers[0].W.astype(f"{byteorder}f8"), order=order))
    write_zip(tmp_path / "model.npz", members)
    assert_weights(tmp_path / "model.npz", network)
