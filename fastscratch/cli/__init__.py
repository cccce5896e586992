"""The ``fastscratch`` command: its top-level parser and ``main``; each subcommand is a module of this package.

``train`` (``fastscratch.cli.train``), ``predict`` (``fastscratch.cli.predict``) and ``study``
(``fastscratch.cli.study``) share the argument types, parsers and exit codes of ``options``. The study
command's module imports Dask only when a study runs, so ``fastscratch train``
never loads it.
"""
import argparse
import sys

from fastscratch.cli.options import PROG, SubcommandParser
from fastscratch.cli.output import command_streams


def main(argv=None):
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Bad options end in ``SystemExit(2)`` with an argparse message, as usual.
    Output whose reader is gone or was never there (a closed stdout or
    stderr, a pipe whose reader left) goes to ``os.devnull``; it never fails
    the command (``output.command_streams``).
    """
    with command_streams():
        parser = build_parser()
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        return args.run(args, args.parser)


def build_parser():
    import fastscratch
    from fastscratch.cli import predict, study, train

    parser = argparse.ArgumentParser(
        prog=PROG, description="The 'neural network from scratch' tutorial, compiled with Numba.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {fastscratch.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=SubcommandParser)
    train.add_parser(commands)
    predict.add_parser(commands)
    study.add_study_parser(commands)
    return parser
