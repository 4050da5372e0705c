"""``flowsim quickstart``: simulate, train and evaluate on a default system, end to end."""

from __future__ import annotations

import argparse
from typing import Any

from ..train.config import RECIPE_128x6
from ._checks import check_device, check_output, check_scheduler, get_cli_system, positive_int

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``quickstart`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "quickstart", help="simulate, train and evaluate on a default system",
        description="Simulate an ensemble into OUT/data.zarr, train a flow map into OUT/model and "
                    "write its report to OUT/report, end to end (a few minutes on a 2-core CPU; "
                    "--small: seconds).")
    p.add_argument("--system", default="fitzhugh_nagumo",
                   help="catalogue name (see `flowsim systems`) or the import path of your own "
                        "system, mypkg.models:make_system")
    p.add_argument("--out", default="flowsim-quickstart", help="output folder")
    p.add_argument("--small", action="store_true",
                   help="a seconds-long smoke run (96 trajectories, a 32x2 network, 150 steps)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help=f"training steps (default: {RECIPE_128x6.steps}; 150 with --small)")
    p.add_argument("--n", type=positive_int, default=None,
                   help="number of trajectories (default: 2048; 96 with --small)")
    p.add_argument("--params", choices=["default", "prior"], default="default",
                   help="one parameter set (the defaults), or parameters drawn from the prior "
                        "(a parametric surrogate)")
    p.add_argument("--device", default=None,
                   help="training device: cpu, cuda, cuda:N or mps (default: CUDA if available, "
                        "else CPU)")
    p.add_argument("--seed", type=int, default=0, help="seed of the ensemble and the training")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address for the ensemble, with its port, e.g. "
                        "tcp://10.0.0.1:8786 (default: in this process)")
    p.add_argument("--restart", action="store_true",
                   help="start over in OUT: simulate the ensemble again and retrain, replacing "
                        "OUT/data.zarr and OUT/model (default: reuse them, resuming the training)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (the stages and results are still printed)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Simulate, train, evaluate: the main job end to end (:func:`flowsim.report.quickstart`)."""
    from ..report import quickstart

    device = check_device(args.device)
    check_output(args.out)
    client = check_scheduler(args.scheduler) or "sync"
    system = get_cli_system(args.system)
    quickstart(system, args.out, size="small" if args.small else "default", steps=args.steps,
               n=args.n, params=args.params, device=device, seed=args.seed,
               client=client, progress=not args.no_progress, restart=args.restart)
    return 0
