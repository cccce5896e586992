"""`fastscratch train` says among its own lines that kernels compile (and nothing of it under --quiet)."""
import argparse
import io

import numba
from rich.console import Console

from fastscratch import kernel_cache
from fastscratch.cli.train import _compile_notice


def probe():
    def add_one(x):
        return x + 1.0
    add_one.__module__ = "fastscratch.probe"
    return numba.njit(add_one)


def told(backend, quiet, monkeypatch):
    monkeypatch.setattr(kernel_cache._notice, "silenced", False)
    monkeypatch.setattr(kernel_cache._notice, "said", False)
    out = io.StringIO()
    console = Console(file=out, quiet=quiet, highlight=False, markup=False)
    with _compile_notice(argparse.Namespace(backend=backend, quiet=quiet), console):
        probe()(1.0)
    return out.getvalue()


def test_the_run_says_it_compiles_among_its_lines(monkeypatch, capsys):
    printed = " ".join(told("jit", False, monkeypatch).split())  # the console wraps it to its width
    assert printed.startswith("fastscratch: compiling kernels for this CPU (")
    assert printed.endswith("not cached: each new process compiles them again")
    assert capsys.readouterr().err == ""


def test_quiet_says_nothing(monkeypatch, capsys):
    assert told("jit", True, monkeypatch) == ""
    assert capsys.readouterr().err == ""
