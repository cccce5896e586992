"""What the subcommands share: argument types, --version, a misspelled option's usage and hint, help defaults."""
import argparse

import pytest

import fastscratch
from fastscratch import cli
from fastscratch.cli import options


@pytest.mark.parametrize("parse, text, value", [
    (options.size, "1", 1), (options.count, "0", 0), (options.seed, str(2 ** 32 - 1), 2 ** 32 - 1),
    (options.learning_rate, "1e-3", 1e-3)])
def test_types_accept_their_range(parse, text, value):
    assert parse(text) == value


@pytest.mark.parametrize("parse, text", [(options.size, "0"), (options.count, "-1"), (options.seed, "-1"),
                                         (options.seed, str(2 ** 32)), (options.learning_rate, "nan"),
                                         (options.learning_rate, "0"), (options.integer, "1.5")])
def test_types_refuse_the_rest(parse, text):
    with pytest.raises(argparse.ArgumentTypeError):
        parse(text)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"fastscratch {fastscratch.__version__}\n"


@pytest.mark.parametrize("argv, usage, hint", [
    (["train", "--epocs", "3"], "usage: fastscratch train", "--epocs: did you mean --epochs?"),
    (["train", "--batchsize=30"], "usage: fastscratch train", "--batchsize=30: did you mean --batch-size?"),
    (["train", "--bogus"], "usage: fastscratch train", None),
    (["study", "report", "DIR", "--quite"], "usage: fastscratch study report", None),
])
def test_a_misspelled_option_prints_its_subcommands_usage_and_the_nearest_option(argv, usage, hint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == options.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(usage) and "unrecognized arguments" in err
    assert (hint in err) if hint else "did you mean" not in err


def test_help_shows_no_empty_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in out and "(default: False)" not in out
    assert "(default: 500)" in out and "(default: [64, 32])" in out


def test_exit_codes_of_signals_are_a_shells():
    import signal
    assert options.EXIT_INTERRUPTED == options.exit_code_of(signal.SIGINT) == 130
    assert (options.exit_code_of(signal.SIGTERM), options.exit_code_of(signal.SIGHUP)) == (143, 129)


def test_given_names_the_options_on_the_command_line_even_at_their_default_value():
    parser = cli.build_parser().parse_args(["train"]).parser
    assert options.given(parser, []) == set()
    assert options.given(parser, ["--seed", "42", "--hidden", "--no-verify", "--lr=0.5"]) == {
        "seed", "hidden", "no_verify", "lr"}
