"""``flowsim systems``: the catalogue of ODE systems as a table (``-v``: descriptions, sources)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``systems`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser("systems", help="list the catalogue of ODE systems")
    p.add_argument("-v", "--verbose", action="store_true", help="descriptions and citations")
    p.add_argument("--sbml", metavar="MODEL.xml", default=None,
                   help="describe an SBML model instead: its states, parameters, units and any "
                        "constructs flowsim does not support")
    p.set_defaults(func=run)


def _fmt_params(system) -> str:
    return ", ".join(f"{q.name}={q.default:g}" for q in system.parameters)


def run(args: argparse.Namespace) -> int:
    """Print the catalogue as a table (with ``args.verbose``: descriptions and citations)."""
    from ..systems import get_system, list_systems

    if getattr(args, "sbml", None):
        from .sbml import describe_sbml

        return describe_sbml(args.sbml)
    if args.verbose:
        for name in list_systems():
            s = get_system(name)
            print(f"{name}: {s.description}\n    states: {', '.join(s.state_names)}; "
                  f"timescale {s.timescale:g} {s.time_units}\n    {s.citation}")
        return 0
    rows = []
    for name in list_systems():
        s = get_system(name)
        rows.append((name, str(s.dim), _fmt_params(s), "yes" if s.stiff else "no",
                     ", ".join(s.invariant_names) or "-"))
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
