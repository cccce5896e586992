"""What every ``fastscratch`` subcommand shares: the program's name, exit codes, argument types, the parsers.

Each argument type raises ``ArgumentTypeError``, which argparse turns into a
usage error (exit code 2) naming the option.
"""
import argparse
import difflib
import math
import signal

PROG = "fastscratch"

EXIT_OK = 0
EXIT_FAILED = 1  # the command ran and failed: data that cannot be loaded, a run that could not be saved
EXIT_USAGE = 2  # argparse's code for a bad command line
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, what a shell reports for Ctrl-C


def exit_code_of(signum):
    """What a shell reports for a process that ``signum`` ended: 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + signum


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show defaults, except the empty ones (None, False, required options) that the help text explains."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.required:
            return action.help
        return super()._get_help_string(action)


class SubcommandParser(argparse.ArgumentParser):
    """A subcommand's parser: an unknown option is its own usage error, with the nearest known option.

    argparse leaves a subcommand's unknown arguments to the top-level parser,
    which prints the top-level usage and no hint; here ``fastscratch train
    --epoch-count 3`` prints ``train``'s usage and "did you mean --epochs?".
    """

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            known = [option for action in self._actions for option in action.option_strings]
            hints = []
            for extra in extras:
                close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1, cutoff=0.75)
                if extra.startswith("-") and close:
                    hints.append(f"{extra}: did you mean {close[0]}?")
            self.error(f"unrecognized arguments: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else ""))
        return namespace, extras


def given(parser, argv):
    """The destinations of the options that ``argv`` (already parsed by ``parser``) sets, defaults left out."""
    unset = object()
    dests = {action.dest for action in parser._actions}
    namespace = argparse.Namespace(**dict.fromkeys(dests, unset))
    parser.parse_args(argv, namespace)  # argparse gives defaults only to the attributes a namespace lacks
    return {dest for dest in dests if getattr(namespace, dest) is not unset}


# -- argument types

def integer(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def size(text):
    """An integer >= 1: a layer size, a batch size, a number of workers."""
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def count(text):
    """An integer >= 0: a number of epochs."""
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def seed(text):
    """A seed of ``np.random``: 0 to 2**32 - 1."""
    value = integer(text)
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**32 - 1, got {value}")
    return value


def learning_rate(text):
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be finite and > 0, got {text}")
    return value


def seconds(text):
    """A finite number of seconds >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be finite and >= 0, got {text}")
    return value
