"""Train the members of an ensemble as one batched network on one device:
:func:`fit_stacked` (``fit_ensemble(..., stacked=True)``).

The members' weights are stacked along a new first dimension (``torch.func.stack_module_state``)
and every training step evaluates all of them in one ``torch.vmap`` call over that dimension:
one launch per layer for ``K`` members instead of ``K``. Each member keeps everything that makes
it the member :func:`flowsim.fit` would train alone with seed ``seed + k``: its initial weights,
its own random stream of batches, its own gradient clipping, Muon/AdamW update and EMA (every
one of them acts on each member's slice alone). Trained alone with the same seeds, the members
come out equal to rounding (``tests/train/test_stacked.py``), except where an objective draws
from torch's global random stream (:class:`~flowsim.train.Semigroup`'s split points: the same
law, other draws).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError
from ..maps.ensemble import stack_members, stackable
from ..maps.flowmap import FlowMap
from . import checkpoint as ckpt
from . import distributed
from .batches import BatchSampler, check_needs
from .config import RESUME_MAY_DIFFER, FitConfig
from .objectives import Objective, make_objectives
from .optim import MuonAdamW, _adamw, muon_matrices, resolve_optimizer
from .prepare import prepare
from .trainer import FitResult, _record, _schedule, bar_total
from .validation import jump_errors

__all__ = ["fit_stacked"]

_STATE = "stacked_state"  # the trainer state's "kind": refused by a single map's resume


class _Losses(torch.nn.Module):
    """Every objective's term for one member: ``functional_call`` swaps the member's weights
    into ``fm``, ``vmap`` maps it over the members."""

    def __init__(self, fm: FlowMap, objs: list[Objective], kinds: list) -> None:
        super().__init__()
        self.fm, self.objs, self.kinds = fm, objs, kinds

    def forward(self, batches: dict[str, dict[str, Tensor]], types: dict[str, type]) -> Tensor:
        built = {k: types[k](**fields) for k, fields in batches.items()}
        return torch.stack([o(self.fm, built[kind.value]) for o, kind in zip(self.objs, self.kinds)])


class _Stacked:
    """The members, their stacked weights (the members' parameters are views of them, so the
    samplers' own-jump states and validation see the current weights), optimiser and EMA."""

    def __init__(self, members: list[FlowMap], config: FitConfig, optimizer: str) -> None:
        self.members = members
        self.base = members[0]
        names = [n for n, _ in self.base.named_parameters()]
        stacked, own = stack_members(members)
        self.params = {n: stacked[n].detach().clone().requires_grad_() for n in names}
        for k, m in enumerate(members):
            for n, p in m.named_parameters():
                p.data = self.params[n].data[k]
        # each member's own normalisation (estimated from its own draws, as fit does alone)
        # stacked, the buffers equal for all (masks, frequencies) shared
        self.buffers = {"fm." + n: b for n, b in own.items()}
        self.shared = {"fm." + n: b for n, b in self.base.named_buffers() if n not in own}
        self.ema = [p.detach().clone() for p in self.params.values()]
        if resolve_optimizer(optimizer) == "adamw":
            self.opt = _adamw(list(self.params.values()), config.lr, config.weight_decay)
        else:
            ids = {id(p) for p in muon_matrices(self.base)}
            muon = [n for n, p in self.base.named_parameters() if id(p) in ids]
            self.opt = MuonAdamW([self.params[n] for n in muon],
                                 [p for n, p in self.params.items() if n not in muon],
                                 config.lr, config.weight_decay)

    def clip(self, max_norm: float) -> Tensor:
        """Clip each member's gradient to norm ``max_norm`` as ``clip_grad_norm_`` clips one
        map's; the members' norms ``(K,)`` before clipping."""
        grads = [p.grad for p in self.params.values()]
        sq = torch.stack([g.reshape(g.shape[0], -1).pow(2).sum(dim=1) for g in grads]).sum(dim=0)
        norm = sq.sqrt()
        coef = (max_norm / (norm + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.reshape(-1, *([1] * (g.ndim - 1))))
        return norm

    def swap(self, values: list[Tensor]) -> list[Tensor]:
        """Load ``values`` into the stacked weights; the weights they replace."""
        saved = [p.detach().clone() for p in self.params.values()]
        with torch.no_grad():
            for p, v in zip(self.params.values(), values):
                p.copy_(v)
        return saved


def fit_stacked(members: list[FlowMap], objectives: str | list[Objective], data: Any, config: FitConfig,
                *, validation: Any = None, checkpoint_dir: Path | None = None, resume: bool = True,
                progress: bool = True) -> list[FitResult]:
    """Train ``members`` (one architecture, one device) as one batched network; member ``k``
    with ``config.seed + k``, as :func:`flowsim.fit` would train it alone.

    Arguments
    ---------
    members:
        Flow maps of one architecture and device, with their initial weights (trained in place).
    objectives, data, config, validation:
        As for :func:`flowsim.fit`; ``config.seed`` is member 0's seed.
    checkpoint_dir:
        Directory for the run's trainer state (``trainer_state.pt``: every member's weights,
        optimiser state, EMA and random streams), written every ``checkpoint_every`` steps by
        this process; ``None``: no checkpoints.
    resume:
        Continue from ``checkpoint_dir``'s trainer state if it is a stacked run of the same
        system, config and number of members.
    progress:
        Show a progress bar.

    Returns
    -------
    list of FitResult
        One per member, each map holding its EMA weights, in eval mode, independent of the others.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.train import FitConfig
    >>> from flowsim.train.stacked import fit_stacked
    >>> sys = flowsim.get_system("lotka_volterra")
    >>> sol = flowsim.reference_solve(sys, sys.sample_initial(32, 0), torch.linspace(0, 15, 61))
    >>> fms = [flowsim.FlowMap(sys, width=16, depth=2, seed=k) for k in range(3)]
    >>> res = fit_stacked(fms, "pairs", sol, FitConfig(steps=10, batch_size=32), progress=False)
    >>> [r.steps for r in res], res[0].flowmap is fms[0]
    ([10, 10, 10], True)
    """
    t0 = time.perf_counter()
    if distributed.current().world_size > 1:
        raise ConfigError("stacked ensembles train on one device; data-parallel (torchrun) runs "
                          "train one map: drop stacked=True or --ddp")
    objs = make_objectives(objectives)
    if any(list(getattr(o, "parameters", list)()) for o in objs):
        raise ConfigError("objectives with parameters of their own (a teacher trained jointly) train "
                          "with flowsim.fit, not as a stacked ensemble: pass stacked=False")
    kinds = check_needs(objs, has_data=data is not None)
    optimizer = resolve_optimizer(config.optimizer)
    configs = [dataclasses.replace(config, seed=config.seed + k) for k in range(len(members))]
    preps = []
    for m, cfg in zip(members, configs):
        torch.manual_seed(cfg.seed)
        prep = prepare(m, data, cfg, validation)
        m.configure_for_data(max_jump=prep.max_jump, state_transform=prep.state_transform,
                             velocity_scale=prep.velocity_scale)
        preps.append(prep)
    _check_stackable(members)
    run = _Stacked(members, config, optimizer)
    samplers = [BatchSampler(m, p.train, config.batch_size, p.min_jump, p.train_max_jump,
                             diagonal_fraction=config.diagonal_fraction, log_fraction=config.log_fraction,
                             early_fraction=config.early_fraction, initial_fraction=config.initial_fraction,
                             generator=p.generator, stream=p.stream)
                for m, p in zip(members, preps)]
    records = [_record(cfg, objs, p, optimizer) for cfg, p in zip(configs, preps)]
    losses = _Losses(run.base, objs, kinds)
    histories: list[list[dict]] = [[] for _ in members]
    start = 0
    if checkpoint_dir is not None and resume and (checkpoint_dir / ckpt.TRAINER_STATE).exists():
        start = _restore(run, preps, histories, checkpoint_dir, config, records[0], len(members))
    done = _loop(run, losses, samplers, preps, histories, config, start, checkpoint_dir, records[0], progress)
    with torch.no_grad():  # the EMA weights, and each member's own storage again
        for p, e in zip(run.params.values(), run.ema):
            p.copy_(e)
    results = []
    for m, prep, rec, hist in zip(members, preps, records, histories):
        for p in m.parameters():
            p.data = p.data.clone()
        m.eval()
        metrics = jump_errors(m, prep.validation, prep.val_jumps)
        m.training_record = {**rec, "steps_done": done, "final_metrics": metrics, "stacked": len(members)}
        results.append(FitResult(flowmap=m, history=hist, metrics=metrics, steps=done,
                                 wall_time=time.perf_counter() - t0))
    return results


def _check_stackable(members: list[FlowMap]) -> None:
    """Refuse members that cannot train as one vmapped network (:func:`stackable`)."""
    for k in range(1, len(members)):
        if not stackable([members[0], members[k]]):
            raise ConfigError(f"member {k} differs from member 0 in architecture, device or dtype; "
                              "stacked training needs copies of one map (use stacked=False)")


def _draw(samplers: list[BatchSampler], objs: list[Objective], kinds: list):
    """Each member's batches from its own sampler, stacked: ``({kind: {field: (K, …)}}, types)``."""
    batches: dict[str, dict[str, Tensor]] = {}
    types: dict[str, type] = {}
    for o, kind in zip(objs, kinds):
        if kind.value in batches:
            continue
        drawn = [s.draw(kind, o) for s in samplers]
        types[kind.value] = type(drawn[0])
        batches[kind.value] = {f.name: torch.stack([getattr(b, f.name) for b in drawn])
                               for f in dataclasses.fields(drawn[0])}
    return batches, types


def _loop(run: _Stacked, losses: _Losses, samplers: list[BatchSampler], preps: list, histories: list,
          cfg: FitConfig, start: int, ckdir: Path | None, record: dict, progress: bool) -> int:
    """The steps from ``start`` (until ``cfg.steps`` or the time budget); the steps done."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=bar_total(cfg), initial=start, unit="step",
                   desc=f"fit {run.base.config.system} ({len(run.members)} stacked)")
    weights = torch.tensor([o.weight for o in losses.objs], dtype=run.base.dtype, device=run.base.device)
    every = cfg.checkpoint_every or max(cfg.steps // 10, 1)
    val_every = cfg.val_every or max(cfg.steps // 5, 1)
    buffers, shared = run.buffers, run.shared

    def one(params: dict[str, Tensor], buffers: dict[str, Tensor], batches: dict, types: dict) -> Tensor:
        full = {**{"fm." + n: v for n, v in params.items()}, **buffers, **shared}
        return torch.func.functional_call(losses, full, (batches, types))

    batched = torch.vmap(one, in_dims=(0, 0, 0, None), randomness="different")
    t_loop = time.perf_counter()
    done = start
    for step in range(start, cfg.steps):
        sched = _schedule(cfg, step, time.perf_counter() - t_loop)
        if sched is None:
            break
        scale, frac = sched
        for group in run.opt.param_groups:
            group["lr"] = cfg.lr * scale
        for s, p in zip(samplers, preps):  # the physics curriculum, as fit's
            lo, hi = p.min_jump, p.train_max_jump
            s.set_states_max_jump(lo + (hi - lo) * min(1.0, 0.1 + 0.9 * frac / 0.5))
        batches, types = _draw(samplers, losses.objs, losses.kinds)
        terms = batched(run.params, buffers, batches, types)            # (K, objectives)
        loss = terms @ weights                                    # (K,)
        run.opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        gnorm = run.clip(cfg.clip)
        run.opt.step()
        d = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(run.ema, [p.detach() for p in run.params.values()], 1 - d)
        if not torch.isfinite(loss).all():
            bad = [k for k, v in enumerate(loss.tolist()) if not math.isfinite(v)]
            raise ConfigError(f"the loss of member(s) {bad} became non-finite at step {step + 1}; "
                              "lower lr or check the data")
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps or done % val_every == 0:
            _log(run, histories, preps, done, loss, terms, gnorm, cfg.lr * scale,
                 validate=done % val_every == 0 or done == cfg.steps, names=[o.name for o in losses.objs])
        if bar is not None:
            bar.update(1)
        if ckdir is not None and (done % every == 0 or done == cfg.steps):
            _save(run, preps, histories, ckdir, cfg, record, done)
    if bar is not None:
        bar.close()
    if ckdir is not None and done < cfg.steps:
        _save(run, preps, histories, ckdir, cfg, record, done)
    return done


def _log(run: _Stacked, histories: list, preps: list, done: int, loss: Tensor, terms: Tensor,
         gnorm: Tensor, lr: float, validate: bool, names: list[str]) -> None:
    """A history row per member (validated on the EMA weights at validation steps)."""
    saved = run.swap(run.ema) if validate else None
    try:
        for k, hist in enumerate(histories):
            row: dict[str, Any] = {"step": done, "loss": float(loss[k].detach()), "lr": lr,
                                   "grad_norm": float(gnorm[k])}
            row.update({f"loss_{name}": v for name, v in zip(names, terms[k].detach().tolist())})
            if validate:
                row.update(jump_errors(run.members[k], preps[k].validation, preps[k].val_jumps))
            hist.append(row)
    finally:
        if saved is not None:
            run.swap(saved)


def _save(run: _Stacked, preps: list, histories: list, ckdir: Path, cfg: FitConfig, record: dict,
          step: int) -> None:
    """The stacked run's trainer state (weights, optimiser, EMA, every member's random stream)."""
    ckdir.mkdir(parents=True, exist_ok=True)
    ckpt.save_trainer_state(ckdir, {
        "kind": _STATE, "members": len(run.members), "step": step,
        "params": {n: p.detach().cpu() for n, p in run.params.items()},
        "optimizer": run.opt.state_dict(),
        "ema": [e.detach().cpu() for e in run.ema],
        "generators": [p.generator.get_state() for p in preps],
        "torch_rng": torch.get_rng_state(),
        "history": json.dumps(histories),
        "run": json.dumps(record, default=str),
        "config": json.dumps(cfg.to_dict()),
        "system": run.base.config.system,
    })


def _restore(run: _Stacked, preps: list, histories: list, ckdir: Path, cfg: FitConfig, record: dict,
             n_members: int) -> int:
    """Continue a stacked run from ``ckdir``; the step it had reached."""
    state = ckpt.load_trainer_state(ckdir, run.base.config.system, cfg.to_dict(), record,
                                    may_differ=RESUME_MAY_DIFFER, defaults=FitConfig.resume_defaults())
    if state.get("kind") != _STATE or state.get("members") != n_members:
        raise CheckpointError(f"{ckdir} holds another kind of training run (not a stacked ensemble of "
                              f"{n_members} members); pass resume=False or another checkpoint_dir")
    with torch.no_grad():
        for (n, p), e, saved_e in zip(run.params.items(), run.ema, state["ema"]):
            p.copy_(state["params"][n])
            e.copy_(saved_e)
    run.opt.load_state_dict(state["optimizer"])
    for p, g in zip(preps, state["generators"]):
        p.generator.set_state(g)
    torch.set_rng_state(state["torch_rng"])
    histories[:] = json.loads(state["history"])
    return int(state["step"])
