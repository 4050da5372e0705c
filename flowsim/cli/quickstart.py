"""``flowsim quickstart``: simulate, train and evaluate on a default system, end to end."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``quickstart`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser("quickstart", help="simulate, train and evaluate on a default system")
    p.add_argument("--system", default="fitzhugh_nagumo")
    p.add_argument("--out", default="flowsim-quickstart")
    p.add_argument("--small", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--n", type=int, default=None, help="number of trajectories")
    p.add_argument("--params", choices=["default", "prior"], default="default")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scheduler", default=None, help="Dask scheduler address for the ensemble")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Simulate, train, evaluate: the main job end to end (:func:`flowsim.report.quickstart`)."""
    from ..report import quickstart

    quickstart(args.system, args.out, size="small" if args.small else "default", steps=args.steps,
               n=args.n, params=args.params, device=args.device, seed=args.seed,
               client=args.scheduler or "sync", progress=not args.no_progress)
    return 0
