"""The top-level ``flowsim`` parser and the entry point :func:`main`.

:func:`build_parser` adds the commands of every command-group module (in the order of
``flowsim --help``); :func:`main` parses, runs the command and turns every error into one line on
stderr: a :class:`~flowsim.errors.FlowsimError` or a bad option exits 2, any other exception 1
(naming its type, so a bug still shows as one), an interrupt 130. ``--debug`` re-raises instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from .._version import __version__
from ..errors import FlowsimError
from . import calibrate, data, evaluate, quickstart, systems, train

__all__ = ["build_parser", "main"]

#: The command-group modules, in the order their commands appear in ``flowsim --help``.
COMMAND_GROUPS = (systems, data, train, evaluate, quickstart, calibrate)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if (action.default is None or action.default is False or action.default is argparse.SUPPRESS
                or "%(default)" in (action.help or "")):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line on stderr (exit 2) and whose help shows
    defaults; its subcommands' parsers are of the same kind."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``flowsim`` command.

    Examples
    --------
    >>> from flowsim.cli import build_parser
    >>> args = build_parser().parse_args(["systems", "-v"])
    >>> args.command, args.verbose
    ('systems', True)
    """
    parser = Parser(
        prog="flowsim",
        description="Neural flow maps: fast, differentiable surrogates for ODE solvers.",
    )
    parser.add_argument("--version", action="version", version=f"flowsim {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parser(sub)
    for command in sub.choices.values():  # `flowsim COMMAND … --debug` works too
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show the full traceback of an error instead of one line")
    return parser


#: The Python API's remedies in an error message, as the options of each command that has them.
CLI_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "train": (("resume=False / another checkpoint_dir", "--restart or another --out"),
              ("resume=False", "--restart"), ("another checkpoint_dir", "another --out"),
              ("pass data=… (a store, Solution or TrajectoryBank) or use objectives='physics'",
               "pass --store STORE or use --objective physics")),
    "quickstart": (("resume=False / another checkpoint_dir", "--restart or another --out"),
                   ("resume=False", "--restart"), ("overwrite=True", "--restart"),
                   ("another checkpoint_dir", "another --out")),
    "info": (("flowsim.data.simulate_ensemble", "`flowsim simulate`"),),
}


def cli_words(message: str, command: str | None) -> str:
    """``message`` with the Python API's remedies replaced by ``command``'s options.

    Examples
    --------
    >>> cli_words("… or pass resume=False", "train")
    '… or pass --restart'
    """
    for api, cli in CLI_WORDS.get(command or "", ()):
        message = message.replace(api, cli)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowsim`` command; returns the exit status.

    Arguments
    ---------
    argv:
        The arguments after ``flowsim`` (default: ``sys.argv[1:]``).

    Returns
    -------
    0 on success; 2 on a bad option or a :class:`~flowsim.errors.FlowsimError` (its message
    printed on stderr as one line ``flowsim: error: …``); 1 on any other exception (one line
    naming its type; ``--debug`` shows the traceback); 130 when interrupted.

    Examples
    --------
    >>> from flowsim.cli import main
    >>> main(["info", "no/such/store.zarr"])  # prints "flowsim: error: no store …" on stderr
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # a bad option (one line printed), --help or --version
        return exit_.code if isinstance(exit_.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    debug = bool(getattr(args, "debug", False))
    try:
        return int(args.func(args) or 0)
    except FlowsimError as err:
        if debug:
            raise
        print(f"flowsim: error: {cli_words(_one_line(err), args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if debug:
            raise
        print("flowsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # stdout closed early (`flowsim info … | head`): not an error to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:  # noqa: BLE001 - a bug or an environment problem: one line, exit 1
        if debug:
            raise
        print(f"flowsim: error: {type(err).__name__}: {_one_line(err)} (unexpected; rerun with "
              "--debug for the traceback)", file=sys.stderr)
        return 1
