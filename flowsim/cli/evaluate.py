"""``flowsim evaluate``: the accuracy and speed report of a trained checkpoint."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``evaluate`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser("evaluate", help="accuracy and speed report of a trained checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="report folder (default: CHECKPOINT/report)")
    p.add_argument("--store", default=None, help="evaluate on this store's test split")
    p.add_argument("--n-eval", type=int, default=2000)
    p.add_argument("--params", choices=["prior", "default"], default="prior")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the evaluation report of a checkpoint (:func:`flowsim.report.evaluate`)."""
    from ..report import evaluate

    evaluate(args.checkpoint, args.out, store=args.store, n_eval=args.n_eval, params=args.params,
             progress=not args.no_progress)
    return 0
