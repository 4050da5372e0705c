"""``flowsim train``: train a flow map (physics from ``--system``, data from ``--store``).

With ``--members N`` (N ≥ 2) it trains an ensemble of maps side by side in worker processes
(:func:`flowsim.train.fit_ensemble`); otherwise one map (:func:`flowsim.train.fit`).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..errors import ConfigError
from ..train.config import RECIPE_128x6
from ..train.optim import OPTIMIZERS

__all__ = ["DEFAULTS", "add_parser", "run"]

#: The training defaults of `flowsim train`: the measured recipe for the 128×6 network it builds
#: (FitConfig's single source of defaults, shared with `flowsim quickstart`).
DEFAULTS = RECIPE_128x6


def add_parser(subparsers: Any) -> None:
    """Add ``train`` to an ``argparse`` subparsers object.

    Examples
    --------
    >>> import argparse
    >>> from flowsim.cli import train
    >>> parser = argparse.ArgumentParser(prog="flowsim")
    >>> train.add_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["train", "--system", "lotka_volterra", "--out", "runs/lv"])
    >>> args.steps, args.batch_size, args.lr
    (6000, 512, 0.005)
    """
    p = subparsers.add_parser("train", help="train a flow map (physics from --system, data from --store)")
    p.add_argument("--system", help="catalogue name (physics objectives need the vector field)")
    p.add_argument("--store", help="trajectory store written by `flowsim simulate`")
    p.add_argument("--objective", help="pairs | physics | both | lsd | pairs+semigroup | …")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps)
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--lr", type=float, default=DEFAULTS.lr)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--tangent", action="store_true", help="build the vector field into the map")
    p.add_argument("--max-jump", type=float, help="longest jump to train (default: timescale)")
    p.add_argument("--jump-margin", type=float, default=DEFAULTS.jump_margin,
                   help="train gaps up to max-jump × (1 + this) where the data reach")
    p.add_argument("--minutes", type=float, default=None,
                   help="wall-clock training budget (per member with --members); --steps becomes "
                        "an upper bound")
    p.add_argument("--optimizer", default=DEFAULTS.optimizer, choices=list(OPTIMIZERS),
                   help="muon: Muon on the weight matrices but the head's, AdamW on the rest; "
                        "auto (default): muon where torch has it (>= 2.9)")
    p.add_argument("--members", type=int, default=1,
                   help="train an ensemble of this many maps, side by side in worker processes, "
                        "and average them (flowsim.fit_ensemble); default 1: one map")
    p.add_argument("--workers", type=int, default=None,
                   help="with --members: processes at once (default: min(members, CPU count))")
    p.add_argument("--device", default=None)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--out", required=True, help="checkpoint directory")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train a flow map on a system (physics) and/or a store (data); print the validation metrics."""
    from ..maps import FlowMap
    from ..systems import get_system
    from ..train import fit, fit_ensemble

    if not args.system and not args.store:
        raise ConfigError("give --system NAME (physics objectives) and/or --store STORE (data)")
    data = None
    if args.store:
        from ..data import open_store, store_system

        data = open_store(args.store)
        system = store_system(data)
        if args.system and get_system(args.system).name != system.name:
            raise ConfigError(f"--system {args.system} does not match the store's {system.name}")
    else:
        system = get_system(args.system)
    objective = args.objective or ("pairs" if data is not None else "physics")
    fm = FlowMap(system, width=args.width, depth=args.depth, tangent=args.tangent)
    config = dataclasses.replace(
        DEFAULTS, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        max_jump=args.max_jump, jump_margin=args.jump_margin, optimizer=args.optimizer,
        time_budget=None if args.minutes is None else 60 * args.minutes)
    kw: dict[str, Any] = dict(config=config, device=args.device, checkpoint_dir=args.out,
                              progress=not args.no_progress, resume=not args.restart)
    if args.members == 1:
        if args.workers is not None:
            raise ConfigError("--workers is for ensembles; give --members 2 or more with it")
        res = fit(fm, objective, data, **kw)
    elif args.members > 1:
        # workers open the store themselves rather than receive its arrays
        res = fit_ensemble(fm, objective, args.store or data, members=args.members,
                           workers=args.workers, **kw)
    else:
        raise ConfigError(f"--members must be 1 (one map) or more (an ensemble); got {args.members}")
    print(f"saved {args.out}; validation: "
          + ", ".join(f"{k}={v:.2e}" for k, v in res.metrics.items()))
    return 0
