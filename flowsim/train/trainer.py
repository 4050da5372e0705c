"""``flowsim.fit``: :func:`~flowsim.train.prepare` the data, then the loop — AdamW or Muon,
warm-up + cosine schedule, clipping, EMA, checkpoints, resume."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._utils import atomic_path
from ..errors import CheckpointError, ConfigError
from ..maps.flowmap import FlowMap
from . import checkpoint as ckpt
from . import distributed
from .batches import BatchKind, BatchSampler, check_needs
from .config import FitConfig, warn_if_tf32
from .graphed import make_graphed
from .objectives import Objective, make_objectives
from .optim import make_optimizer, resolve_optimizer
from .prepare import PreparedData, prepare
from .run_state import restore_run, save_run, swapped_ema
from .validation import jump_errors

__all__ = ["fit", "FitResult"]


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    flowmap:
        The trained map, holding the EMA weights, in eval mode.
    history:
        One dict per logged step (loss terms, learning rate, validation errors).
    metrics:
        Final validation errors (median relative and normalised, per jump size).
    checkpoint_dir:
        Where the checkpoint was written (``None`` if not checkpointing).
    steps, wall_time:
        Steps taken in total and seconds spent in this call.

    Examples
    --------
    >>> import flowsim
    >>> fm = flowsim.FlowMap(flowsim.get_system("lotka_volterra"), width=16, depth=1)
    >>> res = flowsim.fit(fm, "physics", steps=5, progress=False)  # no data: the vector field
    >>> res.steps, res.flowmap.training, res.checkpoint_dir
    (5, False, None)
    """

    flowmap: FlowMap
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint_dir: Path | None = None
    steps: int = 0
    wall_time: float = 0.0


def fit(
    flowmap: FlowMap,
    objectives: str | list[Objective] = "pairs",
    data: Any = None,
    config: FitConfig | None = None,
    *,
    validation: Any = None,
    device: str | torch.device | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    progress: bool | Callable[[int], None] = True,
    states: Callable[[int, torch.Generator], Any] | None = None,
    **options: Any,
) -> FitResult:
    """Train a flow map: :func:`~flowsim.train.prepare` the data, then run the training loop.

    Arguments
    ---------
    flowmap:
        The :class:`~flowsim.FlowMap` to train (in place). Its jump range, normalisation and
        velocity scale are set from the data with :meth:`~flowsim.FlowMap.configure_for_data`.
    objectives:
        A preset (``"pairs"``, ``"physics"``, ``"both"``, ``"lsd"``, ``"pairs+semigroup"`` …,
        see :func:`~flowsim.train.make_objectives`) or a list of objectives.
    data:
        Reference trajectories: a store path, an xarray Dataset, a :class:`~flowsim.Solution`,
        a :class:`~flowsim.train.TrajectoryBank`, or ``None`` (physics objectives only).
    config:
        A :class:`~flowsim.train.FitConfig`: every option that determines the result (steps,
        batch size, learning rate, jump range, sampling fractions, seed, …; documented there).
        Default: ``FitConfig()``.
    validation:
        Held-out trajectories (same types as ``data``); default: a store's validation split,
        10 % of ``data`` split off by trajectory, or fresh reference solves from the prior.
    device:
        ``"cpu"``, ``"cuda"``, …; default: the map's device. On CUDA a float32 map warns if
        TF32 matrix products are enabled (:func:`~flowsim.train.warn_if_tf32`).
    checkpoint_dir:
        Directory for the checkpoint (``model.safetensors``, ``config.json``,
        ``trainer_state.pt``, ``log.csv``, ``metrics.json``); written atomically. The config is
        recorded whole.
    resume:
        Continue from ``checkpoint_dir`` if it holds a trainer state of the same config (a run
        killed and resumed ends with the same weights as an uninterrupted one).
    progress:
        Show a progress bar; or a callable, called with the number of steps done after each
        step (how :func:`~flowsim.train.fit_ensemble` shows its members' steps).
    states:
        A state source for the ``STATES`` batches of the physics and self-distillation
        objectives, for data that are samples rather than trajectories (e.g. the states ``x_s``
        of an interpolant at times ``s``, :mod:`flowsim.generative`): ``states(n, generator)``
        returns ``(s, x, p)`` (then ``t`` is drawn as usual) or ``(s, t, x, p)`` (jump times
        chosen by the source; the short-to-long curriculum then does not apply), or a
        ``flowsim.train.bank.StateBatch``. It replaces the default draw (the system's prior,
        stored states, and the map's own jumps); it must draw from ``generator`` to be
        reproducible. Default ``None``.
    **options:
        :class:`~flowsim.train.FitConfig` fields, replacing those of ``config``
        (``fit(fm, "pairs", sol, steps=500, lr=2e-3)``).

    Returns
    -------
    FitResult

    Raises
    ------
    ConfigError
        Bad or unknown options, or objectives that need data when none is given.
    CheckpointError
        A checkpoint directory that belongs to another system or configuration.

    Examples
    --------
    >>> import torch, flowsim
    >>> sys = flowsim.get_system("lotka_volterra")
    >>> sol = flowsim.reference_solve(sys, sys.sample_initial(64, 0), torch.linspace(0, 15, 61))
    >>> fm = flowsim.FlowMap(sys, width=32, depth=2)
    >>> res = flowsim.fit(fm, "pairs", sol, steps=20, batch_size=64, progress=False)
    >>> res.steps, sorted(res.metrics)[:2]
    (20, ['norm@0.25', 'norm@1.43'])
    """
    t_start = time.perf_counter()
    config = FitConfig.from_options(config, **options)
    objs = make_objectives(objectives)
    kinds = check_needs(objs, has_data=data is not None)
    if any(getattr(o, "teacher", None) == "system" or getattr(o, "source", None) == "system"
           or o.name == "eulerian" for o in objs) and not hasattr(flowmap.system, "vector_field"):
        raise ConfigError("physics objectives need the system's vector field")
    optimizer = resolve_optimizer(config.optimizer)
    fm = flowmap
    if device is not None:
        fm.to(device)
    if fm.dtype == torch.float32:
        warn_if_tf32(fm.device)
    torch.manual_seed(config.seed)
    prep = prepare(fm, data, config, validation)
    fm.configure_for_data(max_jump=prep.max_jump, state_transform=prep.state_transform,
                          velocity_scale=prep.velocity_scale)
    extra = list({id(q): q for o in objs for q in getattr(o, "parameters", list)()}.values())
    run = _Run(fm, objs, kinds, config, prep,
               make_optimizer(fm, optimizer, config.lr, config.weight_decay, extra),
               record=_record(config, objs, prep, optimizer),
               ckdir=Path(checkpoint_dir) if checkpoint_dir is not None else None, states=states, extra=extra)
    if run.ckdir is not None and resume and (run.ckdir / ckpt.TRAINER_STATE).exists():
        restore_run(run)
    steps_done = _loop(run, progress)
    return _finish(run, steps_done, t_start)


def _record(config: FitConfig, objs: list[Objective], prep: PreparedData, optimizer: str) -> dict:
    """The training record: the config's fields with the values ``prepare`` resolved (jump
    range, validation jumps, optimizer), the objectives, and the config as given."""
    return {"objectives": [o.name for o in objs], "weights": [o.weight for o in objs],
            **config.to_dict(), "max_jump": prep.max_jump, "min_jump": prep.min_jump,
            "trained_max_gap": prep.train_max_jump, "val_jumps": prep.val_jumps,
            "optimizer": optimizer, "config": config.to_dict()}


@dataclass
class _Run:
    """One training run's state, threaded through the loop's functions."""

    fm: FlowMap
    objs: list[Objective]
    kinds: list[BatchKind]
    config: FitConfig
    prep: PreparedData
    opt: Any
    record: dict[str, Any]
    ckdir: Path | None = None
    states: Any = None
    extra: list[Tensor] = field(default_factory=list)  # objectives' own parameters, trained alongside
    start: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    ema: list[Tensor] = field(default_factory=list)
    graphed: Any = None  # the captured step (config.cuda_graph), False where it cannot be

    def __post_init__(self) -> None:
        self.params = list(self.fm.parameters()) + self.extra  # the map's first: swapped_ema relies on it
        self.ema = [p.detach().clone() for p in self.params]
        cfg, prep = self.config, self.prep
        self.sampler = BatchSampler(self.fm, prep.train, cfg.batch_size, prep.min_jump,
                                    prep.train_max_jump, diagonal_fraction=cfg.diagonal_fraction,
                                    log_fraction=cfg.log_fraction, early_fraction=cfg.early_fraction,
                                    initial_fraction=cfg.initial_fraction,
                                    generator=prep.generator, stream=prep.stream, states=self.states)


def _loop(run: _Run, progress: bool | Callable[[int], None]) -> int:
    """Train from ``run.start`` to ``config.steps`` (or until the time budget is spent);
    return the steps done."""
    cfg = run.config
    ranks = distributed.current()
    distributed.check_batch(cfg.batch_size, ranks)
    every = cfg.checkpoint_every or max(cfg.steps // 10, 1)
    bar = None
    report = progress if callable(progress) else None
    save = run.ckdir is not None and ranks.is_main      # data-parallel: rank 0 writes
    if progress and report is None and ranks.is_main:
        from tqdm.auto import tqdm

        desc = f"fit {run.fm.config.system}"
        if cfg.time_budget is not None:
            desc += f" ({cfg.time_budget / 60:g} min)"
        bar = tqdm(total=bar_total(cfg), initial=run.start, desc=desc, unit="step")
    run.fm.train()
    t_loop = time.perf_counter()
    done = run.start
    for step in range(run.start, cfg.steps):
        sched = _schedule(cfg, step, time.perf_counter() - t_loop)
        if sched is None:  # the time budget is spent
            break
        scale, frac = sched
        loss, terms, gnorm = _step(run, step, scale, frac)
        done = step + 1
        logged = _log(run, done, loss, terms, gnorm, cfg.lr * scale)
        if bar is not None:
            if logged:
                bar.set_postfix(loss=f"{loss.item():.3g}")
            bar.update(1)
        if report is not None:
            report(done)
        if save and (done % every == 0 or done == cfg.steps):
            save_run(run, done)
    if bar is not None:
        bar.close()
    if done < cfg.steps and save:  # stopped by the time budget
        save_run(run, done)
    return done


def bar_total(cfg: FitConfig) -> int | None:
    """The step count a progress bar counts to: none where a time budget ends the run long
    before its step bound could be reached (``flowsim train --minutes`` without ``--steps``)."""
    return None if cfg.time_budget is not None and cfg.steps >= 10**7 else cfg.steps


def _schedule(cfg: FitConfig, step: int, elapsed: float) -> tuple[float, float] | None:
    """``(learning-rate factor, fraction of the run done)`` at ``step``: linear warm-up, then
    cosine decay; with a time budget, the elapsed fraction of it if further (``None`` once spent)."""
    frac = step / cfg.steps
    warm = min(1.0, (step + 1) / max(1, int(cfg.warmup * cfg.steps)))
    if cfg.time_budget is not None:
        used = elapsed / cfg.time_budget
        if used >= 1.0:
            return None
        frac = max(frac, used)
        warm = min(1.0, max(warm, used / max(cfg.warmup, 1e-9)))
    return warm * 0.5 * (1 + math.cos(math.pi * frac)), frac


def _step(run: _Run, step: int, scale: float, frac: float) -> tuple[Tensor, dict[str, Tensor], Tensor]:
    """One optimisation step (and the EMA update); ``(loss, loss terms, gradient norm)``."""
    cfg, prep, fm = run.config, run.prep, run.fm
    if not run.graphed:  # a captured step reads its learning rate from a device tensor
        for group in run.opt.param_groups:
            group["lr"] = cfg.lr * scale
    # physics terms: a curriculum from short to long jumps (their long-jump targets come
    # from the map itself, so they are only meaningful once short jumps are right)
    lo, hi = prep.min_jump, prep.train_max_jump
    run.sampler.set_states_max_jump(lo + (hi - lo) * min(1.0, 0.1 + 0.9 * frac / 0.5))
    batches: dict[BatchKind, Any] = {}
    ranks = distributed.current()  # data-parallel: this rank's slice of the global batch
    for o, kind in zip(run.objs, run.kinds):
        if kind not in batches:
            batches[kind] = distributed.shard(run.sampler.draw(kind, o), ranks)
    d = min(cfg.ema_decay, (1 + step) / (10 + step))
    if cfg.cuda_graph and run.graphed is None:
        run.graphed = make_graphed(run, batches) or False
    if run.graphed:  # one replay of the captured step
        loss, terms, gnorm = run.graphed.step(batches, cfg.lr * scale, 1 - d)
    else:
        terms = {o.name: o(fm, batches[kind]) for o, kind in zip(run.objs, run.kinds)}
        loss = sum(o.weight * terms[o.name] for o in run.objs)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients(run.params, ranks)
        gnorm = torch.nn.utils.clip_grad_norm_(fm.parameters(), cfg.clip)
        if run.extra:  # clipped on their own: their gradients' scale is not the map's
            torch.nn.utils.clip_grad_norm_(run.extra, cfg.clip)
        run.opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(run.ema, [p.detach() for p in run.params], 1 - d)
    if not torch.isfinite(loss):
        raise ConfigError(f"loss became non-finite at step {step + 1}; lower lr or check the data")
    return loss, terms, gnorm


def _log(run: _Run, done: int, loss: Tensor, terms: dict[str, Tensor], gnorm: Tensor, lr: float) -> bool:
    """Append a history row at logging and validation steps (validating the EMA weights);
    whether it did."""
    cfg = run.config
    val_every = cfg.val_every or max(cfg.steps // 5, 1)
    if done % cfg.log_every == 0 or done == cfg.steps or done % val_every == 0:
        row: dict[str, Any] = {"step": done, "loss": loss.item(), "lr": lr, "grad_norm": float(gnorm)}
        row.update({f"loss_{k}": v.item() for k, v in terms.items()})
        if done % val_every == 0 or done == cfg.steps:
            with swapped_ema(run.fm, run.ema):
                row.update(jump_errors(run.fm, run.prep.validation, run.prep.val_jumps))
        run.history.append(row)
        return True
    return False


def _finish(run: _Run, steps_done: int, t_start: float) -> FitResult:
    """Load the EMA weights, validate, record and save; the :class:`FitResult`."""
    fm = run.fm
    with torch.no_grad():
        for e, p in zip(run.ema, run.params):
            p.copy_(e)
    fm.eval()
    metrics = jump_errors(fm, run.prep.validation, run.prep.val_jumps)
    fm.training_record = {**run.record, "steps_done": steps_done, "final_metrics": metrics}
    muon = getattr(run.opt, "muon", None)
    if muon is not None:  # hardware-dependent: bfloat16 where it is native, else float32
        fm.training_record["muon_ns_dtype"] = str(muon.ns_dtype_for(fm.device)).replace("torch.", "")
    if run.ckdir is not None:
        ckpt.write_checkpoint(fm, run.ckdir, training=fm.training_record)
        with atomic_path(run.ckdir / "metrics.json", error=CheckpointError) as tmp:
            tmp.write_text(json.dumps({"config": run.record, "metrics": metrics}, indent=2))
    return FitResult(flowmap=fm, history=run.history, metrics=metrics, checkpoint_dir=run.ckdir,
                     steps=steps_done, wall_time=time.perf_counter() - t_start)
