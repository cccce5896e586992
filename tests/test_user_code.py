"""The drop-in run the ways people run it: a script, ``python -c``, the interactive prompt, a program read
from stdin, ``exec`` in ``__main__``'s globals, a thread, and ``-W error``.

Every warning the package points at the user's line (the tutorial-accepts ``UserWarning`` s and
``FallbackWarning``) must show there, wherever that line is, and never crash: ``warnings.warn_explicit``
given ``__main__``'s globals asked the built-in importer for the source and raised ``ImportError``.
Each way runs in a subprocess, as a user's would.
"""
import os
import re
import subprocess
import sys
import textwrap

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
