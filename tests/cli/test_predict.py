"""``fastscratch predict MODEL IMAGE...`` as users run it: a subprocess, real MNIST images written as files, a model
saved by the library and one written by ``fastscratch train``."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fastscratch import SimpleNetwork
from fastscratch.images import mnist_row

TIMEOUT = 300


def predict(*args, stdin=subprocess.DEVNULL, **kwargs):
    return subprocess.run([sys.executable, "-m", "fastscratch", "predict", *map(str, args)], stdin=stdin,
                          capture_output=True, timeout=TIMEOUT, **kwargs)


@pytest.fixture(scope="module")
def digit_files(mnist_raw, tmp_path_factory):
    """Test images 0-2 as files, each as its light-on-dark PNG, then dark on light as a 90x90 RGB JPEG."""
    directory = tmp_path_factory.mktemp("digits")
    paths = []
    for i, image in enumerate(mnist_raw[2][:3]):
        Image.fromarray(image).save(directory / f"mnist-{i}.png")
        Image.fromarray(255 - image).resize((90, 90)).convert("RGB").save(directory / f"paper-{i}.jpg", quality=90)
        paths += [directory / f"mnist-{i}.png", directory / f"paper-{i}.jpg"]
    return paths


def test_a_table_of_classes_and_outputs(mnist_classifier, digit_files):
    network, model = mnist_classifier
    proc = predict(model, *digit_files, text=True)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    header, *rows = proc.stdout.splitlines()
    assert header.split() == ["image", "class", "background"] + [str(i) for i in range(10)]
    assert len(rows) == len(digit_files)
    for path, row in zip(digit_files, rows):
        expected = network.forward(mnist_row(path)[None])[0]
        image, cls, background, *outputs = row.split()
        assert image == str(path) and int(cls) == network.predict(mnist_row(path))
        assert background == ("light" if path.suffix == ".jpg" else "dark")
        assert outputs == [f"{v:.3f}" for v in expected]
    assert [row.split()[1] for row in rows] == ["7", "7", "2", "2", "1", "1"]  # test images 0-2 are 7, 2, 1


def test_json_for_scripts(mnist_classifier, digit_files):
    network, model = mnist_classifier
    proc = predict(model, digit_files[0], digit_files[1], "--json", text=True)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["model"] == str(model) and [e["image"] for e in found["images"]] == list(map(str, digit_files[:2]))
    for entry, path in zip(found["images"], digit_files):
        assert entry["class"] == network.predict(mnist_row(path))
        np.testing.assert_allclose(entry["outputs"], network.forward(mnist_row(path)[None])[0], rtol=1e-12)
        assert set(entry) == {"image", "class", "outputs", "background"}


def test_a_model_written_by_fastscratch_train_and_its_run_directory(digit_files, mnist_dir, tmp_path):
    """One epoch of `fastscratch train` at lr 0.1, then predict with its run directory (or its model.npz)."""
    run = tmp_path / "run"
    trained = subprocess.run([sys.executable, "-m", "fastscratch", "train", "--epochs", "1", "--lr", "0.1", "--out",
                              str(run), "--quiet", "--data-dir", mnist_dir], capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    assert trained.returncode == 0, trained.stderr
    network = SimpleNetwork.load(run / "model.npz")
    for model in (run, run / "model.npz"):
        proc = predict(model, *digit_files, "--json", text=True)
        assert proc.returncode == 0, proc.stderr
        assert [e["class"] for e in json.loads(proc.stdout)["images"]] == [
            network.predict(mnist_row(path)) for path in digit_files]


def test_an_unreadable_image_is_named_and_the_others_are_predicted(mnist_classifier, digit_files, tmp_path):
    """Exit 1; stderr names the file and why; the table (and the JSON, with the error in place) has the rest."""
    _, model = mnist_classifier
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    proc = predict(model, digit_files[0], tmp_path / "notes.png", tmp_path / "blank.png", text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (f"fastscratch predict: error: image {tmp_path / 'notes.png'} is not an image file Pillow can read"
            in proc.stderr)
    assert f"fastscratch predict: error: image {tmp_path / 'blank.png'} is blank" in proc.stderr
    assert [row.split()[0] for row in proc.stdout.splitlines()[1:]] == [str(digit_files[0])]
    proc = predict(model, tmp_path / "notes.png", digit_files[0], "--json", text=True)
    assert proc.returncode == 1
    first, second = json.loads(proc.stdout)["images"]
    assert first["image"] == str(tmp_path / "notes.png") and "is not an image file" in first["error"]
    assert second["class"] == 7


def test_missing_paths_are_usage_errors_before_anything_is_read(mnist_classifier, digit_files, tmp_path):
    _, model = mnist_classifier
    for args, message in [
        ((model, digit_files[0], tmp_path / "a.png", tmp_path / "b.png"),
         f"argument IMAGE: no such file: {tmp_path / 'a.png'}, {tmp_path / 'b.png'}"),
        ((tmp_path / "model.npz", digit_files[0]), f"argument MODEL: no such file: {tmp_path / 'model.npz'}"),
        ((tmp_path, digit_files[0]), f"argument MODEL: the directory {tmp_path} holds no model.npz"),
        ((model, "-", "-"), "argument IMAGE: - (stdin) can be read once"),
    ]:
        proc = predict(*args, text=True)
        assert proc.returncode == 2 and proc.stdout == "" and message in proc.stderr, proc.stderr
        assert proc.stderr.startswith("usage: fastscratch predict")


def test_a_file_that_is_no_model(digit_files, tmp_path):
    proc = predict(digit_files[0], digit_files[0], text=True)
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert f"fastscratch predict: error: cannot load the model {digit_files[0]}: {digit_files[0]} is not a saved " \
           "fastscratch network" in proc.stderr
    wide = SimpleNetwork(100, 10, [8])
    wide.save(tmp_path / "wide.npz")
    proc = predict(tmp_path / "wide.npz", digit_files[0], text=True)
    assert proc.returncode == 1 and "holds a network of 100 inputs; images make rows of 784 (28x28)" in proc.stderr


def test_an_image_from_stdin(mnist_classifier, digit_files):
    network, model = mnist_classifier
    proc = predict(model, "-", "--json", stdin=open(digit_files[1], "rb"))
    assert proc.returncode == 0, proc.stderr
    (entry,) = json.loads(proc.stdout)["images"]
    assert entry["image"] == "-" and entry["class"] == network.predict(mnist_row(digit_files[1]))


def test_background_forced(mnist_classifier, digit_files):
    """--background light on a light-on-dark MNIST file: nothing dark stands out on it, said as such."""
    _, model = mnist_classifier
    proc = predict(model, digit_files[0], "--background", "light", text=True)
    assert proc.returncode == 1 and "is blank: nothing stands out from its light background" in proc.stderr
    proc = predict(model, digit_files[1], "--background", "light", "--json", text=True)
    assert proc.returncode == 0 and json.loads(proc.stdout)["images"][0]["class"] == 7


def test_help_names_the_exit_codes():
    proc = subprocess.run([sys.executable, "-m", "fastscratch", "predict", "--help"], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0
    assert "Exit codes: 0 every image predicted; 1 the model or an image could not be read" in proc.stdout
    top = subprocess.run([sys.executable, "-m", "fastscratch", "--help"], capture_output=True, text=True,
                         timeout=TIMEOUT, env={**os.environ, "COLUMNS": "200"})
    assert "predict the digit in image files with a network saved by `fastscratch train`" in top.stdout
