"""The top-level ``flowsim`` parser and the entry point :func:`main`.

:func:`build_parser` adds the commands of every command-group module (in the order of
``flowsim --help``); :func:`main` parses, runs the command and turns a
:class:`~flowsim.errors.FlowsimError` into one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from ..errors import FlowsimError
from . import data, evaluate, quickstart, systems, train

__all__ = ["build_parser", "main"]

#: The command-group modules, in the order their commands appear in ``flowsim --help``.
COMMAND_GROUPS = (systems, data, train, evaluate, quickstart)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``flowsim`` command.

    Examples
    --------
    >>> from flowsim.cli import build_parser
    >>> args = build_parser().parse_args(["systems", "-v"])
    >>> args.command, args.verbose
    ('systems', True)
    """
    parser = argparse.ArgumentParser(
        prog="flowsim",
        description="Neural flow maps: fast, differentiable surrogates for ODE solvers.",
    )
    parser.add_argument("--version", action="version", version=f"flowsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowsim`` command; returns the exit status.

    Arguments
    ---------
    argv:
        The arguments after ``flowsim`` (default: ``sys.argv[1:]``).

    Returns
    -------
    0 on success, 2 on a :class:`~flowsim.errors.FlowsimError` (its message printed on stderr as
    ``flowsim: error: …``), 130 when interrupted.

    Examples
    --------
    >>> from flowsim.cli import main
    >>> main(["info", "no/such/store.zarr"])  # prints "flowsim: error: no store …" on stderr
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except FlowsimError as err:
        print(f"flowsim: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("flowsim: interrupted", file=sys.stderr)
        return 130
