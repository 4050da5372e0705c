"""The ``flowsim`` command line: ``flowsim systems``, … (``flowsim --help``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__
from .errors import ConfigError, FlowsimError
from .train.optim import OPTIMIZERS

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


def cmd_train(args: argparse.Namespace) -> int:
    """Train a flow map on a system (physics) and/or a store (data)."""
    from .maps.flowmap import FlowMap
    from .systems.registry import get_system
    from .train.trainer import fit

    if not args.system and not args.store:
        raise ConfigError("give --system NAME (physics objectives) and/or --store STORE (data)")
    data = None
    if args.store:
        from .data import open_store, store_system

        data = open_store(args.store)
        system = store_system(data)
        if args.system and get_system(args.system).name != system.name:
            raise ConfigError(f"--system {args.system} does not match the store's {system.name}")
    else:
        system = get_system(args.system)
    objective = args.objective or ("pairs" if data is not None else "physics")
    fm = FlowMap(system, width=args.width, depth=args.depth, tangent=args.tangent)
    kw = dict(steps=args.steps, batch_size=args.batch_size, lr=args.lr, device=args.device,
              checkpoint_dir=args.out, seed=args.seed, progress=not args.no_progress,
              max_jump=args.max_jump, resume=not args.restart, jump_margin=args.jump_margin,
              optimizer=args.optimizer,
              time_budget=None if args.minutes is None else 60 * args.minutes)
    if args.members == 1:
        if args.workers is not None:
            raise ConfigError("--workers is for ensembles; give --members 2 or more with it")
        res = fit(fm, objective, data, **kw)
    elif args.members > 1:
        from .train.ensemble import fit_ensemble

        # workers open the store themselves rather than receive its arrays
        res = fit_ensemble(fm, objective, args.store or data, members=args.members,
                           workers=args.workers, **kw)
    else:
        raise ConfigError(f"--members must be 1 (one map) or more (an ensemble); got {args.members}")
    print(f"saved {args.out}; validation: "
          + ", ".join(f"{k}={v:.2e}" for k, v in res.metrics.items()))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Write the evaluation report of a checkpoint."""
    from .report import evaluate

    evaluate(args.checkpoint, args.out, store=args.store, n_eval=args.n_eval, params=args.params,
             progress=not args.no_progress)
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Simulate, train, evaluate: the main job end to end."""
    from .report import quickstart

    quickstart(args.system, args.out, size="small" if args.small else "default", steps=args.steps,
               n=args.n, params=args.params, device=args.device, seed=args.seed,
               client=args.scheduler or "sync", progress=not args.no_progress)
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

    from .data.cli import add_commands

    add_commands(sub)

    p = sub.add_parser("train", help="train a flow map (physics from --system, data from --store)")
    p.add_argument("--system", help="catalogue name (physics objectives need the vector field)")
    p.add_argument("--store", help="trajectory store written by `flowsim simulate`")
    p.add_argument("--objective", help="pairs | physics | both | lsd | pairs+semigroup | …")
    p.add_argument("--steps", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--tangent", action="store_true", help="build the vector field into the map")
    p.add_argument("--max-jump", type=float, help="longest jump to train (default: timescale)")
    p.add_argument("--jump-margin", type=float, default=0.1,
                   help="train gaps up to max-jump × (1 + this) where the data reach (default 0.1)")
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-clock training budget (per member with --members); --steps becomes "
                        "an upper bound")
    p.add_argument("--optimizer", default="auto", choices=list(OPTIMIZERS),
                   help="muon: Muon on the weight matrices but the head's, AdamW on the rest; "
                        "auto (default): muon where torch has it (>= 2.9)")
    p.add_argument("--members", type=int, default=1,
                   help="train an ensemble of this many maps, side by side in worker processes, "
                        "and average them (flowsim.fit_ensemble); default 1: one map")
    p.add_argument("--workers", type=int, default=None,
                   help="with --members: processes at once (default: min(members, CPU count))")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint directory")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy and speed report of a trained checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="report folder (default: CHECKPOINT/report)")
    p.add_argument("--store", default=None, help="evaluate on this store's test split")
    p.add_argument("--n-eval", type=int, default=2000)
    p.add_argument("--params", choices=["prior", "default"], default="prior")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("quickstart", help="simulate, train and evaluate on a default system")
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
    p.set_defaults(func=cmd_quickstart)
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
