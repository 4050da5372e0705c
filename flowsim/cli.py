"""The ``flowsim`` command line: ``flowsim systems``, … (``flowsim --help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import __version__
from .errors import FlowsimError

__all__ = ["main"]


def _fmt_params(system) -> str:
    return ", ".join(f"{q.name}={q.default:g}" for q in system.parameters)


def cmd_systems(args: argparse.Namespace) -> int:
    """Print the catalogue as a table."""
    from .systems import get_system, list_systems

    rows = []
    for name in list_systems():
        s = get_system(name)
        rows.append((name, str(s.dim), _fmt_params(s), "yes" if s.stiff else "no",
                     ", ".join(s.invariant_names) or "-"))
    if args.verbose:
        for name in list_systems():
            s = get_system(name)
            print(f"{name}: {s.description}\n    states: {', '.join(s.state_names)}; "
                  f"timescale {s.timescale:g} {s.time_units}\n    {s.citation}")
        return 0
    header = ("name", "dim", "parameters (defaults)", "stiff", "invariants")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    widths[2] = min(widths[2], 60)
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for r in rows:
        cells = list(r)
        if len(cells[2]) > 60:
            cells[2] = cells[2][:57] + "..."
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths)))
    print(f"\n{len(rows)} systems. `flowsim systems -v` for descriptions and sources.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``flowsim`` command."""
    parser = argparse.ArgumentParser(
        prog="flowsim",
        description="Neural flow maps: fast, differentiable surrogates for ODE solvers.",
    )
    parser.add_argument("--version", action="version", version=f"flowsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("systems", help="list the catalogue of ODE systems")
    p.add_argument("-v", "--verbose", action="store_true", help="descriptions and citations")
    p.set_defaults(func=cmd_systems)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flowsim`` command; returns the exit status."""
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
