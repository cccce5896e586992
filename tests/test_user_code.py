"""The drop-in run the ways people run it: a script, ``python -c``, the interactive prompt, a program read
from stdin, ``exec`` in ``__main__``'s globals, a thread, ``-W error`` and a Jupyter kernel.

Every warning the package points at the user's line (the tutorial-accepts ``UserWarning`` s and
``FallbackWarning``) must show there, wherever that line is, and never crash: ``warnings.warn_explicit``
given ``__main__``'s globals asked the built-in importer for the source and raised ``ImportError``.
Each way runs in a subprocess (or a real kernel), as a user's would.
"""
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: The program, one statement a line (the interactive prompt reads it line by line), and the warning each
#: line must give, as a pattern of ``category: text``.
PROGRAM = [
    ("import numpy as np", None),
    ("import fastscratch", None),
    ("rng = np.random.default_rng(0)", None),
    ("X, Y = rng.random((40, 6)), np.eye(3)[rng.integers(0, 3, 40)]", None),
    ("np.random.seed(1)", None),
    ("net = fastscratch.SimpleNetwork(6, 3, [5])", None),
    ("print('trained', len(net.train(X, Y, batch_size=10, num_epochs=1, learning_rate=0, verbose=False)[0]))",
     r"UserWarning: learning_rate is 0: the weights will not change"),
    ("print('no epoch', net.train(X, Y, batch_size=10, num_epochs=-1, verbose=False))",
     r"UserWarning: num_epochs is -1: no epoch runs"),
    ("print('no validation', net.train(X, Y, X, batch_size=10, num_epochs=1, verbose=False)[1])",
     r"UserWarning: X_val was given without y_val"),
    ("print('class of NaN', net.predict(np.full(6, np.nan)))",
     r"UserWarning: x contains non-finite values \(NaN or inf\), first at index \(0,\)"),
    ("net.backward(net.derivated_loss_function(net.forward(X), Y))", None),
    ("net.optimize(-0.5)", r"UserWarning: epsilon is -0\.5: each step goes up the gradient"),
    ("net.layers[0].activation_function = lambda z: np.maximum(z, 0)", None),
    ("print('custom activation', net.forward(X[:2]).shape)",
     r"FallbackWarning: network activation_function '(work\.<locals>\.)?<lambda>' is not one of fastscratch's "
     r"built-ins"),
]
PRINTED = ["trained 1", "no epoch ([], [])", "no validation []", "class of NaN 0", "custom activation (2, 3)"]


def source():
    return "\n".join(line for line, _ in PROGRAM) + "\n"


def python(cwd, *args, stdin=None):
    """Run this interpreter as a user would, in a folder of their own, with Python's default warning filters."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    return subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=240,
                          env=env, cwd=cwd)


def assert_warned_at_each_line(result, filename, first_line=1, one_line_each=False):
    """Each warning shown once, pointing at its line of the program (``one_line_each``: every statement is
    line 1, as at the prompt); no traceback; what the program prints."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "ImportError" not in result.stderr, result.stderr
    for number, (_, warning) in enumerate(PROGRAM):
        if warning is None:
            continue
        line = 1 if one_line_each else first_line + number
        where = re.escape(f"{filename}:{line}: ")
        assert len(re.findall(where + warning, result.stderr)) == 1, (warning, result.stderr)
    for printed in PRINTED:
        assert printed in result.stdout.splitlines() or f">>> {printed}" in result.stdout, (printed, result.stdout)


def test_a_script(tmp_path):
    script = tmp_path / "tutorial_script.py"
    script.write_text(source())
    assert_warned_at_each_line(python(tmp_path, str(script)), str(script))


def test_python_dash_c(tmp_path):
    assert_warned_at_each_line(python(tmp_path, "-c", source()), "<string>")


def test_the_interactive_prompt(tmp_path):
    """``python -i`` with the program typed at its prompt: each statement is line 1 of ``<stdin>``."""
    result = python(tmp_path, "-i", stdin=source())
    assert_warned_at_each_line(result, "<stdin>", one_line_each=True)


def test_a_program_read_from_stdin(tmp_path):
    assert_warned_at_each_line(python(tmp_path, stdin=source()), "<stdin>")


def test_exec_in_the_globals_of_main(tmp_path):
    script = tmp_path / "runs_exec.py"
    script.write_text(f"exec({source()!r}, globals())\n")
    assert_warned_at_each_line(python(tmp_path, str(script)), "<string>")


def test_a_thread(tmp_path):
    """The program in a thread's function, started from ``python -c``: warnings point at its lines, and
    nothing escapes to the thread's excepthook."""
    program = ("import threading\n\n\ndef work():\n" + textwrap.indent(source(), "    ")
               + "\n\nthread = threading.Thread(target=work)\nthread.start()\nthread.join()\n")
    result = python(tmp_path, "-c", program)
    assert "Exception in thread" not in result.stderr
    assert_warned_at_each_line(result, "<string>", first_line=5)


def test_warnings_as_errors_raise_the_warning_the_user_asked_for(tmp_path):
    """``-W error``: each call raises its warning as the exception, not an ImportError."""
    lines = []
    for line, warning in PROGRAM:
        if warning is None:
            lines.append(line)
        else:
            lines += ["try:", f"    {line}", "except Warning as caught:",
                      "    print('raised', type(caught).__name__ + ':', caught)"]
    result = python(tmp_path, "-W", "error", "-c", "\n".join(lines))
    assert result.returncode == 0, result.stderr
    raised = [line for line in result.stdout.splitlines() if line.startswith("raised ")]
    assert len(raised) == sum(warning is not None for _, warning in PROGRAM), result.stdout
    for printed, (_, warning) in zip(raised, [entry for entry in PROGRAM if entry[1] is not None]):
        assert re.match("raised " + warning, printed), (printed, warning)


NOTEBOOK = Path(__file__).parent / "notebooks" / "tutorial.ipynb"

#: What the book's notebook printed for these cells (the same draws of np.random with seed 42).
BOOK = {
    "perceptron": ["Perceptron's random weights = [-0.25091976  0.90142861  0.46398788] , and random bias = "
                   "[0.19731697]",
                   "Input vector : [[0.15601864 0.15599452 0.05808361]]",
                   "Perceptron's output value given `x` : 1"],
    "layer": ["Input vector #1: [[-0.72101228 -0.4157107 ]]",
              "Input vector #2: [[-0.26727631 -0.08786003]]",
              "Layer's output value given `x1` : [[0.         0.4593046  1.61941647]]",
              "Layer's output value given `x2` : [[0.         0.73048436 1.05288999]]",
              "Layer's output value given `[x1, x2]` :",
              "[[0.         0.4593046  1.61941647]",
              " [0.         0.73048436 1.05288999]]"],
}


def streams(cell, name):
    """The text a cell wrote to ``name`` (stdout or stderr)."""
    return "".join(output["text"] for output in cell.outputs
                   if output["output_type"] == "stream" and output["name"] == name)


def cell_with(nb, text):
    cells = [cell for cell in nb.cells if cell.cell_type == "code" and text in cell.source]
    assert len(cells) == 1, text
    return cells[0]


def test_the_tutorials_notebook_in_a_jupyter_kernel(tmp_path, monkeypatch):
    """The tutorial's cells with our classes, run by nbclient in a real IPython kernel (over local IPC
    sockets, no network): what they print is the book's, the warnings show in the cells that caused them,
    the drop-in's training prints and returns the reference's, a saved network loads, a re-run __init__
    builds anew; the kernel is gone afterwards. The MNIST cells run where FASTSCRATCH_MNIST_DIR is set."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    psutil = pytest.importorskip("psutil")
    from traitlets.config import Config

    for variable, folder in (("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        monkeypatch.setenv(variable, str(tmp_path / folder))
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    with_mnist = bool(os.environ.get("FASTSCRATCH_MNIST_DIR"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells = [cell for cell in nb.cells if with_mnist or "mnist" not in cell.metadata.get("tags", [])]
    children = {child.pid for child in psutil.Process().children(recursive=True)}
    ipc = Config({"KernelManager": {"transport": "ipc", "ip": str(tmp_path / "kernel")}})
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, config=ipc,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # starts the kernel, and shuts it down (the client owns it)
    assert client.km is None
    assert {child.pid for child in psutil.Process().children(recursive=True)} <= children, "a kernel was left"

    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o["output_type"] == "error"], cell.source
    assert streams(cell_with(nb, "perceptron = Neuron"), "stdout").splitlines() == BOOK["perceptron"]
    layer = cell_with(nb, "layer = FullyConnectedLayer")
    assert streams(layer, "stdout").splitlines() == BOOK["layer"]
    assert re.search(r"\.py:4: FallbackWarning: layer activation_function '<lambda>' is not one of fastscratch's "
                     r"built-ins", streams(layer, "stderr")), streams(layer, "stderr")
    toy = cell_with(nb, "learning_rate=0")
    assert re.search(r"\.py:3: UserWarning: learning_rate is 0: the weights will not change", streams(toy, "stderr"))
    assert streams(toy, "stdout").splitlines()[-1] == "Weights unchanged: True"
    rerun = cell_with(nb, "toy.__init__")
    assert streams(rerun, "stdout").splitlines() == ["SimpleNetwork(2-5-4-3, dtype=float64)", "(2, 3)"]
    if not with_mnist:
        return

    assert streams(cell_with(nb, "prepare(*load_mnist"), "stdout") == "Normalized pixel values between 0.0 and 1.0\n"
    assert re.fullmatch(r"Untrained : training loss = \d\.\d{6} \| val accuracy = \d+\.\d\d%\n",
                        streams(cell_with(nb, "loss_untrained ="), "stdout"))
    printed = [streams(cell_with(nb, call), "stdout").splitlines()
               for call in ("mnist_classifier.train(", "reference_classifier.train(")]
    for lines in printed:  # epochs 0 and 2 of 3: every second one and the last
        assert [line[:10] for line in lines[:2]] == ["Epoch    0", "Epoch    2"] and len(lines) == 4, lines
    assert printed[0][:2] == printed[1][:2]  # the log lines, to their last digit
    losses, reference_losses = (json.loads(lines[2].split(" = ")[1]) for lines in printed)
    assert losses == pytest.approx(reference_losses, rel=1e-9)
    assert printed[0][3] == printed[1][3]  # accuracies
    saved = streams(cell_with(nb, "SimpleNetwork.load("), "stdout").splitlines()
    assert re.fullmatch(r"Predicted class: \d; Correct class: \d", saved[0])
    assert saved[1] == "Loaded predicts as saved: True"
    assert float(saved[2].split(" = ")[1]) == json.loads(printed[0][3].split(" = ")[1])[-1]
