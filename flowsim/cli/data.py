"""``flowsim simulate`` and ``flowsim info``: the data commands.

``simulate`` solves an ensemble with the reference solver into a zarr store (Dask-parallel,
resumable); ``info`` summarises a store. Both raise :class:`~flowsim.errors.FlowsimError` on bad
input, which :func:`flowsim.cli.main` turns into a message and exit status 2.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import ConfigError, StoreError
from ._checks import (
    check_output,
    check_scheduler,
    check_url,
    finite_float,
    get_cli_system,
    positive_float,
    positive_int,
)

__all__ = ["add_parser", "info", "run", "simulate"]

SYSTEM_HELP = ("catalogue name (see `flowsim systems`) or the import path of your own system, "
               "mypkg.models:make_system (an ODESystem, or a function returning one); the path is "
               "recorded in the store, so later commands rebuild the system")


def add_parser(subparsers: Any) -> None:
    """Add ``simulate`` and ``info`` to an ``argparse`` subparsers object.

    Examples
    --------
    >>> import argparse
    >>> from flowsim.cli import data
    >>> parser = argparse.ArgumentParser(prog="flowsim")
    >>> data.add_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["info", "runs/fhn.zarr"])
    >>> args.command, args.store
    ('info', 'runs/fhn.zarr')
    """
    p = subparsers.add_parser(
        "simulate", help="simulate an ensemble of trajectories into a zarr store (Dask-parallel)",
        description="Solve an ensemble with the reference solver, one Dask task per chunk, into a "
                    "zarr store. Rerunning the same command resumes an interrupted run.")
    p.add_argument("system", nargs="?", default=None, help=SYSTEM_HELP)
    p.add_argument("--sbml", metavar="MODEL.xml", default=None,
                   help="simulate an SBML model instead of a named system (flowsim.from_sbml; the "
                        "model is recorded in the store)")
    p.add_argument("--timescale", type=positive_float, default=None,
                   help="with --sbml: the model's characteristic time (e.g. one period; default "
                        "estimated from its rates), recorded in the store; a map trained on the "
                        "store jumps up to it by default")
    p.add_argument("--n", type=positive_int, required=True, help="number of trajectories")
    p.add_argument("--t-end", type=finite_float, required=True, help="last output time")
    p.add_argument("--n-times", type=positive_int, required=True,
                   help="number of output times (evenly spaced from --t-start to --t-end)")
    p.add_argument("--t-start", type=finite_float, default=0.0, help="first output time")
    p.add_argument("--out", required=True, help="store path or fsspec URL, e.g. runs/fhn.zarr")
    p.add_argument("--chunk-size", type=positive_int, default=None,
                   help="trajectories per chunk/task (default: chosen from n and the workers)")
    p.add_argument("--seed", type=int, default=0, help="ensemble seed")
    p.add_argument("--params", choices=("default", "prior"), default="default",
                   help="parameters: the system's defaults, or sampled from its prior")
    p.add_argument("--method", default=None,
                   help="solver method (default: dopri5; Radau with --backend scipy)")
    p.add_argument("--backend", choices=("torchdiffeq", "scipy"), default="torchdiffeq",
                   help="reference solver library")
    p.add_argument("--rtol", type=positive_float, default=1e-8, help="relative tolerance of the solver")
    p.add_argument("--atol", type=positive_float, default=1e-10, help="absolute tolerance of the solver")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--scheduler", metavar="ADDR", default=None,
                       help="address of a running Dask scheduler, with its port, e.g. "
                            "tcp://10.0.0.1:8786 (default: a local cluster)")
    group.add_argument("--sync", action="store_true", help="run in this process, without Dask")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="local worker processes (default: one per core)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store instead of resuming")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run, data_command=simulate)

    q = subparsers.add_parser(
        "info", help="summarise a trajectory store",
        description="System, counts, failed trajectories, progress and size of a store.")
    q.add_argument("store", help="store path or fsspec URL")
    q.add_argument("--json", action="store_true", help="print the summary as JSON")
    q.set_defaults(func=run, data_command=info)


def run(args: argparse.Namespace) -> int:
    """Run the data command that parsed ``args`` (``simulate`` or ``info``)."""
    return args.data_command(args)


def simulate(args: argparse.Namespace) -> int:
    """Run ``simulate_ensemble`` from command-line arguments and print the store's summary."""
    import torch

    from ..data import format_summary, simulate_ensemble, store_summary

    if args.n_times < 2:
        raise ConfigError(f"--n-times must be at least 2 (a store of one time point holds no jump "
                          f"to train or evaluate); got {args.n_times}")
    if not args.t_end > args.t_start:
        raise ConfigError(f"--t-end ({args.t_end}) must be greater than --t-start ({args.t_start})")
    if args.scheduler and args.workers:
        raise ConfigError("give either --scheduler (an existing cluster) or --workers (a local one)")
    check_output(args.out)
    client: Any = check_scheduler(args.scheduler) or None
    if args.sync:
        client = "sync"
    system = get_cli_system(args.system, args.sbml, args.timescale)
    t = torch.linspace(args.t_start, args.t_end, args.n_times, dtype=torch.float64)
    try:
        simulate_ensemble(
            system, args.n, t, params=args.params, store=args.out, chunk_size=args.chunk_size,
            client=client, seed=args.seed, method=args.method, rtol=args.rtol, atol=args.atol,
            backend=args.backend, progress=not args.no_progress, overwrite=args.overwrite,
            n_workers=args.workers,
        )
    except StoreError as err:  # say it in the command line's words
        raise StoreError(str(err).replace("overwrite=True", "--overwrite")) from err
    print(format_summary(store_summary(args.out)))
    return 0


def info(args: argparse.Namespace) -> int:
    """Print a store's summary (``--json`` for machine-readable output)."""
    from ..data import format_summary, store_summary

    check_url(args.store, "store")
    summary = store_summary(args.store)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0
