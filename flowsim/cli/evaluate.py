"""``flowsim evaluate``: the accuracy and speed report of a trained checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ._checks import check_output, check_url, get_cli_system, positive_int

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``evaluate`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "evaluate", help="accuracy and speed report of a trained checkpoint",
        description="Write figures, report.json and report.md for a checkpoint: errors against "
                    "reference solves by jump size and by number of composed jumps, and speed "
                    "against torchdiffeq's solvers.")
    p.add_argument("checkpoint", help="checkpoint directory written by `flowsim train` or flowsim.fit")
    p.add_argument("--out", default=None, help="report folder (default: CHECKPOINT/report)")
    p.add_argument("--store", default=None,
                   help="evaluate on this store's test split (default: fresh reference solves)")
    p.add_argument("--system", default=None,
                   help="the checkpoint's system as an import path, mypkg.models:make_system, where "
                        "the checkpoint does not record one (default: the recorded system)")
    p.add_argument("--n-eval", type=positive_int, default=2000, help="number of held-out states")
    p.add_argument("--params", choices=["prior", "default"], default="prior",
                   help="held-out parameters: from the map's trained range, or the defaults")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the evaluation report of a checkpoint (:func:`flowsim.report.evaluate`)."""
    from ..report import evaluate

    checkpoint = Path(args.checkpoint)
    default_out = (checkpoint.parent if checkpoint.is_file() else checkpoint) / "report"
    check_output(args.out if args.out is not None else default_out)
    if args.store is not None:
        check_url(args.store, "--store")
    system = get_cli_system(args.system) if args.system else None
    evaluate(args.checkpoint, args.out, store=args.store, n_eval=args.n_eval, params=args.params,
             system=system, progress=not args.no_progress)
    return 0
