"""``flowsim train``: train a flow map (physics from ``--system``, data from ``--store``).

With ``--members N`` (N ≥ 2) it trains an ensemble of maps side by side in worker processes
(:func:`flowsim.train.fit_ensemble`); otherwise one map (:func:`flowsim.train.fit`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from ..errors import ConfigError
from ..maps.networks import BACKBONES
from ..train.config import RECIPE_128x6
from ..train.optim import OPTIMIZERS
from ._checks import (
    check_device,
    check_output,
    check_url,
    fraction,
    get_cli_system,
    positive_float,
    positive_int,
)

__all__ = ["DEFAULTS", "BUDGET_STEPS", "add_parser", "fit_config", "run"]

#: The training defaults of `flowsim train`: the measured recipe for the 128×6 network it builds
#: (FitConfig's single source of defaults, shared with `flowsim quickstart`).
DEFAULTS = RECIPE_128x6

#: The step bound of a run with ``--minutes`` and no ``--steps``: so large that the budget, not
#: the step count, ends the run (and the learning-rate schedule follows the budget).
BUDGET_STEPS = 10**9


class _Given(argparse.Action):
    """Store the value and note that it was given (``steps_given``)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


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
    p = subparsers.add_parser("train", help="train a flow map (physics from --system, data from --store)",
                              description="Train a flow map on a system's vector field (--system) "
                                          "and/or on stored trajectories (--store); the checkpoint "
                                          "goes to --out, and rerunning resumes it.")
    p.add_argument("--system", help="catalogue name (physics objectives need the vector field) or "
                                    "the import path of your own system, mypkg.models:make_system "
                                    "(default with --store: the store's system)")
    p.add_argument("--sbml", metavar="MODEL.xml", default=None,
                   help="train on an SBML model (flowsim.from_sbml) instead of --system")
    p.add_argument("--timescale", type=positive_float, default=None,
                   help="with --sbml: the model's characteristic time (default estimated); a store "
                        "simulated with --sbml --timescale records its own")
    p.add_argument("--store", help="trajectory store written by `flowsim simulate`")
    p.add_argument("--objective", help="pairs | physics | both | lsd | pairs+semigroup | … "
                                       "(default: pairs with --store, physics without)")
    p.add_argument("--steps", type=positive_int, default=DEFAULTS.steps, action=_Given,
                   help="training steps; with --minutes and no --steps, the budget alone ends the run")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULTS.batch_size,
                   help="samples per step")
    p.add_argument("--lr", type=positive_float, default=DEFAULTS.lr, help="peak learning rate")
    p.add_argument("--width", type=positive_int, default=128, help="hidden units per layer")
    p.add_argument("--depth", type=positive_int, default=6, help="hidden layers")
    p.add_argument("--backbone", default=BACKBONES[0], choices=list(BACKBONES),
                   help="resnet: residual blocks of two layers (the default, measured better); "
                        "mlp: a plain perceptron")
    p.add_argument("--tangent", action="store_true",
                   help="build the vector field into the map (implies --no-decay)")
    p.add_argument("--no-decay", action="store_true",
                   help="the plain map x + h·w, without the start state's learned decay")
    p.add_argument("--relax", default="auto", choices=["auto", "on", "off"],
                   help="let the fading start relax towards a learned state (auto, the default: "
                        "on for systems marked stiff, whose fast states it lands directly)")
    p.add_argument("--max-jump", type=positive_float,
                   help="longest jump to train (default: the system's timescale)")
    p.add_argument("--jump-margin", type=float, default=DEFAULTS.jump_margin,
                   help="train gaps up to max-jump × (1 + this) where the data reach")
    p.add_argument("--early-fraction", type=fraction, default=DEFAULTS.early_fraction,
                   help="share of pair starts drawn log-uniformly in time from the initial states")
    p.add_argument("--initial-fraction", type=fraction, default=DEFAULTS.initial_fraction,
                   help="further share of pair starts exactly at the initial states (0.5 for a stiff "
                        "system whose first stored step lies past its fast transient; 0: none)")
    p.add_argument("--minutes", type=positive_float, default=None,
                   help="wall-clock training budget (per member with --members); the learning-rate "
                        "schedule follows it; --steps, if given, becomes an upper bound")
    p.add_argument("--optimizer", default=DEFAULTS.optimizer, choices=list(OPTIMIZERS),
                   help="muon: Muon on the weight matrices but the head's, AdamW on the rest; "
                        "auto: muon where torch has it (>= 2.9)")
    p.add_argument("--members", type=positive_int, default=1,
                   help="train an ensemble of this many maps, side by side in worker processes, "
                        "and average them (flowsim.fit_ensemble); 1: one map")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="with --members: processes at once (default: min(members, CPU count))")
    p.add_argument("--stacked", action=argparse.BooleanOptionalAction, default=None,
                   help="with --members: train the members as one batched network in this process "
                        "(default: stacked on a GPU, worker processes on a CPU)")
    p.add_argument("--cuda-graph", action="store_true",
                   help="on a GPU: capture the training step in a CUDA graph (one launch per step)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda, cuda:N or mps (default: CUDA if available, else CPU)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the weights and the batches")
    p.add_argument("--out", required=True, help="checkpoint directory")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--ddp", action="store_true",
                   help="data-parallel over the processes torchrun starts (torchrun --nproc-per-node N "
                        "-m flowsim train --ddp ...); --batch-size is the global batch, split over them")
    p.set_defaults(func=run, steps_given=False)


def fit_config(args: argparse.Namespace):
    """The FitConfig of ``flowsim train``'s parsed arguments: the recipe (``DEFAULTS``) with the
    options given, and with ``--minutes`` and no ``--steps`` a budget that the step count does
    not cut short.

    Examples
    --------
    >>> from flowsim.cli import build_parser
    >>> from flowsim.cli.train import fit_config
    >>> args = build_parser().parse_args(["train", "--system", "sir", "--out", "m",
    ...                                   "--initial-fraction", "0.5"])
    >>> fit_config(args).initial_fraction
    0.5
    """
    steps = args.steps
    extra: dict[str, Any] = {}
    if args.minutes is not None and not getattr(args, "steps_given", True):
        steps = BUDGET_STEPS
        extra["checkpoint_every"] = 1000  # steps // 10 would never checkpoint within the budget
    return dataclasses.replace(
        DEFAULTS, steps=steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        max_jump=args.max_jump, jump_margin=args.jump_margin, optimizer=args.optimizer,
        early_fraction=args.early_fraction, initial_fraction=args.initial_fraction,
        time_budget=None if args.minutes is None else 60 * args.minutes,
        cuda_graph=bool(getattr(args, "cuda_graph", False)), **extra)


def run(args: argparse.Namespace) -> int:
    """Train a flow map on a system (physics) and/or a store (data); print the validation metrics."""
    from ..maps import FlowMap
    from ..train import fit, fit_ensemble

    if args.timescale is not None and not args.sbml:
        raise ConfigError("--timescale is for --sbml models (a store records its system's "
                          "timescale; pass --max-jump to train other jumps)")
    if not args.system and not args.store and not args.sbml:
        raise ConfigError("give --system NAME or --sbml MODEL.xml (physics objectives) and/or --store "
                          "STORE (data)")
    if args.members == 1 and (args.workers is not None or args.stacked is not None):
        raise ConfigError("--workers and --stacked are for ensembles; give --members 2 or more with them")
    if args.stacked and args.workers is not None:
        raise ConfigError("--stacked trains every member in this process; drop --workers")
    if args.ddp and args.members > 1:
        raise ConfigError("--ddp trains one map across processes; give --members 1 with it")
    device = check_device(args.device)
    check_output(args.out)
    ranks = None
    if args.ddp:
        from ..train.distributed import check_batch, init_from_env

        ranks = init_from_env(device)
        check_batch(args.batch_size, ranks)
        if device is not None and device.startswith("cuda"):  # one GPU per process
            device = f"cuda:{os.environ['LOCAL_RANK']}"
        if ranks.is_main:
            print(f"data-parallel over {ranks.world_size} processes: "
                  f"{args.batch_size // ranks.world_size} samples each per step")
    config = fit_config(args)
    data = None
    if args.store:
        from ..data import open_store, store_param_range, store_system

        check_url(args.store, "--store")
        data = open_store(args.store)
        if args.system or args.sbml:  # given explicitly: it must be the store's
            system = get_cli_system(args.system, args.sbml, args.timescale)
            if system.name != str(data.attrs.get("system")):
                raise ConfigError(f"--system {args.system or args.sbml} ({system.name}) does not match the "
                                  f"store's {data.attrs.get('system')}")
        else:
            system = store_system(data)
    else:
        system = get_cli_system(args.system, args.sbml, args.timescale)
    objective = args.objective or ("pairs" if data is not None else "physics")
    # a map trained on a store covers the parameters the store holds, not the whole prior
    # (`flowsim evaluate` then evaluates where it was trained)
    span = "prior" if data is None else store_param_range(data)
    fm = FlowMap(system, width=args.width, depth=args.depth, backbone=args.backbone,
                 tangent=args.tangent,
                 decay=False if args.no_decay else None,
                 relax={"auto": None, "on": True, "off": False}[args.relax], param_range=span)
    kw: dict[str, Any] = dict(config=config, device=device, checkpoint_dir=args.out,
                              progress=not args.no_progress, resume=not args.restart)
    if args.members == 1:
        res = fit(fm, objective, data, **kw)
    else:
        # workers open the store themselves rather than receive its arrays
        res = fit_ensemble(fm, objective, args.store or data, members=args.members,
                           workers=args.workers, stacked=args.stacked, **kw)
    if ranks is None or ranks.is_main:
        print(f"saved {args.out}; validation: "
              + ", ".join(f"{k}={v:.2e}" for k, v in res.metrics.items()))
    return 0
