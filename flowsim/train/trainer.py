"""``flowsim.fit``: AdamW, warm-up + cosine schedule, clipping, EMA, checkpoints, resume."""

from __future__ import annotations

import csv
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._utils import atomic_path
from ..errors import CheckpointError, ConfigError
from ..maps.flowmap import FlowMap
from ..maps.transforms import StateTransform
from ..solve.reference import reference_solve
from ..solve.solution import Solution
from . import checkpoint as ckpt
from .bank import PairBatch, StateBatch, TrajectoryBank
from .objectives import Objective, make_objectives
from .optim import make_optimizer, resolve_optimizer
from .validation import jump_errors

__all__ = ["fit", "FitResult"]

STATE_FILE = "trainer_state.pt"
#: stores whose states take more memory than this stream from disk instead of being loaded
STREAM_ABOVE_BYTES = 2 * 2**30


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
    >>> import torch, flowsim
    >>> sys = flowsim.get_system("lotka_volterra")
    >>> sol = flowsim.reference_solve(sys, sys.sample_initial(32, 0), torch.linspace(0, 15, 31))
    >>> res = flowsim.fit(flowsim.FlowMap(sys, width=16, depth=1), "pairs", sol, steps=5, progress=False)
    >>> res.steps, res.flowmap.training
    (5, False)
    """

    flowmap: FlowMap
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint_dir: Path | None = None
    steps: int = 0
    wall_time: float = 0.0


def _as_bank(data: Any) -> TrajectoryBank | None:
    if data is None or isinstance(data, TrajectoryBank):
        return data
    if isinstance(data, Solution):
        return TrajectoryBank.from_solution(data)
    if isinstance(data, (str, os.PathLike)):
        from ..data import open_store

        return TrajectoryBank.from_dataset(open_store(data))
    if hasattr(data, "data_vars"):  # an xarray Dataset
        return TrajectoryBank.from_dataset(data)
    raise ConfigError(
        f"data must be a store path, an xarray Dataset, a Solution or a TrajectoryBank; "
        f"got {type(data).__name__}"
    )


def _store_splits(ds, probe: int | None = None):
    import numpy as np

    from ..data import split_of

    codes = split_of(np.arange(ds.sizes["trajectory"]))
    train, val = np.flatnonzero(codes == 0), np.flatnonzero(codes == 1)
    if probe is not None:  # streaming: only a bounded sample is loaded into memory
        train, val = train[:probe], val[: max(probe // 2, 1)]
    if len(train) == 0 or len(val) == 0:  # tiny stores: fall back to a random split
        return ds, None
    return ds.isel(trajectory=train), ds.isel(trajectory=val)


def _default_validation(fm: FlowMap, max_jump: float, seed: int) -> TrajectoryBank:
    sys_ = fm.system
    g = torch.Generator().manual_seed(seed + 99991)
    n = 96
    x0 = sys_.sample_initial(n, g)
    p = sys_.sample_params(n, g)
    t = torch.linspace(0, 2 * max_jump, 65, dtype=torch.float64)
    kw = dict(backend="scipy", method="Radau") if sys_.stiff else {}
    sol = reference_solve(sys_, x0, t, p, rtol=1e-9, atol=1e-11, **kw)
    return TrajectoryBank.from_solution(sol)


class _Sampler:
    """Draws the batches the objectives need, from data, the system's prior and the model."""

    def __init__(self, fm: FlowMap, bank: TrajectoryBank | None, batch_size: int, min_jump: float,
                 max_jump: float, diagonal_fraction: float, generator: torch.Generator,
                 log_fraction: float = 0.2, early_fraction: float = 0.0) -> None:
        self.fm, self.bank, self.n = fm, bank, batch_size
        self.log_fraction = log_fraction
        self.early_fraction = early_fraction
        self.lo, self.hi = min_jump, max_jump
        self.diag = diagonal_fraction
        self.g = generator

    def _cast(self, *xs: Tensor) -> list[Tensor]:
        return [x.to(device=self.fm.device, dtype=self.fm.dtype) for x in xs]

    states_hi: float | None = None

    def _jumps(self, n: int) -> Tensor:
        hi = self.states_hi or self.hi
        u = torch.rand(n, generator=self.g, dtype=torch.float64)
        h = torch.exp(math.log(self.lo) + u * math.log(hi / self.lo))
        diag = torch.rand(n, generator=self.g) < self.diag
        return torch.where(diag, torch.zeros_like(h), h)

    stream = None
    _it = None

    def _next_streamed(self) -> PairBatch:
        for _ in range(2):
            if self._it is None:
                self._it = iter(self.stream)
            try:
                d = next(self._it)
                return PairBatch(*self._cast(d["s"], d["t"], d["x_s"], d["x_t"], d["p"]))
            except StopIteration:  # next epoch
                self.stream.set_epoch(self.stream.epoch + 1)
                self._it = None
        raise ConfigError("the store's training split yields no pairs; is it empty?")

    def pairs(self) -> PairBatch:
        if self.stream is not None:
            return self._next_streamed()
        b = self.bank.sample_pairs(self.n, self.g, min_gap=self.lo, max_gap=self.hi,
                                   log_fraction=self.log_fraction, early_fraction=self.early_fraction)
        return PairBatch(*self._cast(b.s, b.t, b.x_s, b.x_t, b.p))

    def short_pairs(self) -> PairBatch:
        gap = self.bank.min_step
        b = self.bank.sample_pairs(self.n, self.g, min_gap=gap, max_gap=gap)
        return PairBatch(*self._cast(b.s, b.t, b.x_s, b.x_t, b.p))

    def states(self) -> StateBatch:
        sys_ = self.fm.system
        n = self.n
        n_data = n // 2 if self.bank is not None else 0
        n_prior = n - n_data
        x = sys_.sample_initial(n_prior, self.g)
        p = sys_.sample_params(n_prior, self.g)
        s = torch.zeros(n_prior, dtype=torch.float64)
        if not sys_.autonomous:
            s = torch.rand(n_prior, generator=self.g, dtype=torch.float64) * self.hi
        if n_data:
            sd, xd, pd = self.bank.sample_states(n_data, self.g)
            s, x, p = torch.cat([s, sd]), torch.cat([x, xd]), torch.cat([p, pd])
        s, x, p = self._cast(s, x, p)
        # a quarter of the states: where the model's own jumps take them (detached)
        k = n // 4
        if k:
            with torch.no_grad():
                hop = self._cast(self._jumps(k).clamp_min(self.lo))[0]
                moved = self.fm(s[:k], s[:k] + hop, x[:k], p[:k])
            # keep only jumps that land where states live (within 6 σ of the data/prior)
            z = self.fm.state_transform.encode(moved)
            ok = torch.isfinite(moved).all(dim=1) & (z.abs() < 6).all(dim=1)
            x = torch.cat([torch.where(ok[:, None], moved, x[:k]), x[k:]])
            s = torch.cat([torch.where(ok, s[:k] + hop, s[:k]), s[k:]])
        t = s + self._cast(self._jumps(n))[0]
        return StateBatch(s=s, t=t, x=x, p=p)


def fit(
    flowmap: FlowMap,
    objectives: str | list[Objective] = "pairs",
    data: Any = None,
    *,
    steps: int = 2000,
    batch_size: int = 1024,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    warmup: float = 0.05,
    clip: float = 1.0,
    ema_decay: float = 0.999,
    max_jump: float | None = None,
    min_jump: float | None = None,
    diagonal_fraction: float = 0.25,
    log_fraction: float = 0.2,
    early_fraction: float = 0.25,
    jump_margin: float = 0.1,
    validation: Any = None,
    val_jumps: list[float] | None = None,
    val_every: int | None = None,
    log_every: int = 50,
    device: str | torch.device | None = None,
    seed: int = 0,
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    progress: bool = True,
    stream: bool | None = None,
    time_budget: float | None = None,
    optimizer: str = "auto",
) -> FitResult:
    """Train a flow map.

    Arguments
    ---------
    flowmap:
        The :class:`~flowsim.FlowMap` to train (in place).
    objectives:
        A preset (``"pairs"``, ``"physics"``, ``"both"``, ``"lsd"``, ``"pairs+semigroup"`` …,
        see :func:`~flowsim.train.make_objectives`) or a list of objectives.
    data:
        Reference trajectories: a store path, an xarray Dataset, a :class:`~flowsim.Solution`,
        a :class:`~flowsim.train.TrajectoryBank`, or ``None`` (physics objectives only).
    steps, batch_size, lr, weight_decay:
        Optimisation: ``warmup`` (fraction of steps) then cosine decay to zero.
    optimizer:
        ``"muon"``: Muon on the backbone's weight matrices (all but the head's) and AdamW on the rest
        (:class:`~flowsim.train.optim.MuonAdamW`, needs torch ≥ 2.9); ``"adamw"``; or
        ``"auto"`` (default): Muon where torch has it, else AdamW. The name used is recorded
        in the training record. On the 2-core CPU, 10 minutes of Muon reached 1.6–2.5× lower
        single-jump error than AdamW on all five benchmark systems, in 51–63 % of the steps
        (docs/benchmarks.md).
    clip:
        Gradient-norm clipping.
    ema_decay:
        Exponential moving average of the weights; the EMA model is evaluated and saved.
    max_jump, min_jump:
        Range of jump sizes the map is for (time units). Default: the system's timescale
        (capped by the data's span) and 1/200 of it. ``max_jump`` becomes the map's
        :attr:`~flowsim.FlowMap.max_jump`, the longest jump ``odeint`` takes.
    jump_margin:
        Train gaps up to ``max_jump · (1 + jump_margin)`` where the data reach that far. A
        network is least accurate at the edge of the range it was trained on: on
        Lotka–Volterra (16,000 steps) the median error at exactly ``max_jump`` was 2.6× that at
        0.85 ``max_jump`` with no margin, and 1.3× with 10 %.
    diagonal_fraction:
        Fraction of physics samples on the diagonal ``s = t``.
    log_fraction:
        Fraction of data pairs whose gaps are log-uniform (all scales); the rest are uniform,
        which puts more weight on the long jumps that are hardest to learn.
    early_fraction:
        Fraction of data pairs whose start is drawn log-uniformly in the stored index (as many
        near each trajectory's initial state as over the rest) instead of uniformly. Jumps from
        initial states cross the transients that a uniform draw rarely starts in: on
        FitzHugh–Nagumo (16,000 steps) 0.25 lowered the error of one-timescale jumps from the
        initial states 2× (1.7e-2 → 8.3e-3) for 5 % more along the trajectories (1.9e-3 →
        2.0e-3) (``benchmarks/depth_ablation.py --early``). A streamed store follows it too
        (its gaps are all log-uniform: it does not follow ``log_fraction``).
    validation:
        Held-out trajectories (same types as ``data``); default: 10 % of ``data`` split off by
        trajectory, or fresh reference solves from the system's prior.
    val_jumps, val_every, log_every:
        Jump sizes (time units) and cadence of validation and logging.
    device:
        ``"cpu"``, ``"cuda"``, …; default: the map's device. On CUDA a float32 map warns if
        TF32 matrix products are enabled (they round to ~1e-3).
    seed:
        Seeds every random draw: same seed, same weights on CPU.
    checkpoint_dir:
        Directory for the checkpoint (``model.safetensors``, ``config.json``,
        ``trainer_state.pt``, ``log.csv``, ``metrics.json``); written atomically.
    checkpoint_every:
        Steps between checkpoints (default: steps / 10).
    resume:
        Continue from ``checkpoint_dir`` if it holds a trainer state: a run killed and resumed
        ends with the same weights as an uninterrupted one.
    progress:
        Show a progress bar.
    stream:
        For a store path: stream pairs from disk chunk by chunk with
        :class:`~flowsim.data.PairSampler` (memory bounded by a few chunks) instead of loading
        the store; default: stream when its states exceed 2 GiB. Statistics, physics states and
        validation then use a bounded sample of the store. (Resuming a streamed run restarts the
        stream, so it is not bit-identical to an uninterrupted one.)

    time_budget:
        Wall-clock seconds: stop when spent (the learning-rate schedule then follows the
        elapsed fraction of the budget, so it still decays to zero). Runs are then not
        reproducible step for step; ``steps`` becomes an upper bound.

    Returns
    -------
    FitResult

    Raises
    ------
    ConfigError
        Bad options, or objectives that need data when none is given.
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
    objs = make_objectives(objectives)
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise ConfigError(f"steps, batch_size and lr must be positive; got {steps}, {batch_size}, {lr}")
    if time_budget is not None and not time_budget > 0:
        raise ConfigError(f"time_budget must be a positive number of seconds; got {time_budget}")
    optimizer = resolve_optimizer(optimizer)
    fm = flowmap
    if device is not None:
        fm.to(device)
    if fm.dtype == torch.float32:
        _warn_if_tf32(fm.device)
    store_path = None
    if isinstance(data, (str, os.PathLike)):
        from ..data import open_store

        store_path, data = data, open_store(data)
    streaming = False
    if store_path is not None:
        streaming = bool(stream) if stream is not None else data["x"].nbytes > STREAM_ABOVE_BYTES
    if hasattr(data, "data_vars") and validation is None and "trajectory" in data.dims:
        # a store: train on its train split, validate on its validation split; its test split
        # stays unseen for `flowsim evaluate --store`
        data, validation = _store_splits(data, probe=512 if streaming else None)
    bank = _as_bank(data)
    needs = {o.needs for o in objs}
    if bank is None and needs & {"pairs", "short_pairs", "windows"}:
        raise ConfigError(
            f"objectives {[o.name for o in objs if o.needs != 'states']} need trajectory data; "
            "pass data=… (a store, Solution or TrajectoryBank) or use objectives='physics'"
        )
    if any(getattr(o, "teacher", None) == "system" or getattr(o, "source", None) == "system"
           or o.name == "eulerian" for o in objs) and not hasattr(fm.system, "vector_field"):
        raise ConfigError("physics objectives need the system's vector field")

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    val_bank = _as_bank(validation)
    if bank is not None and val_bank is None and len(bank) >= 10:
        bank, val_bank = bank.split(0.1, g)
    T = fm.config.timescale
    hi = float(max_jump) if max_jump is not None else T
    if bank is not None:
        hi = min(hi, bank.max_gap)
    lo = float(min_jump) if min_jump is not None else hi / 200
    if bank is not None:
        lo = max(lo, bank.min_step)
    if not 0 < lo < hi:
        raise ConfigError(f"need 0 < min_jump < max_jump; got {lo}, {hi}")
    if not 0 <= jump_margin <= 10:
        raise ConfigError(f"jump_margin must be in [0, 10]; got {jump_margin}")
    for name, frac in (("diagonal_fraction", diagonal_fraction), ("log_fraction", log_fraction),
                       ("early_fraction", early_fraction)):
        if not 0 <= frac <= 1:
            raise ConfigError(f"{name} must be in [0, 1]; got {frac}")
    train_hi = hi * (1 + jump_margin)
    if bank is not None:
        train_hi = max(hi, min(train_hi, bank.max_gap))
    if val_bank is None:
        val_bank = _default_validation(fm, hi, seed)
    vj = val_jumps or sorted({round(v, 12) for v in (max(lo, 0.01 * T), 0.1 * T, hi)})
    vj = [v for v in vj if v <= val_bank.max_gap]

    fm.config.max_jump = hi
    run_cfg = dict(objectives=[o.name for o in objs], weights=[o.weight for o in objs], steps=steps,
                   batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup=warmup, clip=clip,
                   ema_decay=ema_decay, max_jump=hi, min_jump=lo, diagonal_fraction=diagonal_fraction,
                   log_fraction=log_fraction, early_fraction=early_fraction, jump_margin=jump_margin,
                   trained_max_gap=train_hi,
                   seed=seed, val_jumps=vj, optimizer=optimizer)

    opt = make_optimizer(fm, optimizer, lr, weight_decay)
    ema = [p.detach().clone() for p in fm.parameters()]
    start = 0
    history: list[dict[str, Any]] = []
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    every = checkpoint_every or max(steps // 10, 1)
    if ckdir is not None and resume and (ckdir / STATE_FILE).exists():
        start, history = _restore(ckdir, fm, opt, ema, g, run_cfg)
    elif bank is not None:  # normalise with the statistics of the training data
        fm.set_state_transform(StateTransform.fit(bank.x, log=_log_mask(fm, bank)))
    if start == 0:
        fm.velocity_scale.copy_(_velocity_scale(fm, bank, seed))
    sampler = _Sampler(fm, bank, batch_size, lo, train_hi, diagonal_fraction, g, log_fraction,
                       early_fraction)
    if streaming:  # pairs stream from the store chunk by chunk; `bank` is a bounded probe of it
        from ..data import PairSampler

        sampler.stream = PairSampler(store_path, batch_size=batch_size, split="train",
                                     min_gap=lo, max_gap=train_hi, gaps="log-uniform", seed=seed,
                                     early_fraction=early_fraction, drop_last=True)
    n_warm = max(1, int(warmup * steps))
    val_every = val_every or max(steps // 5, 1)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, desc=f"fit {fm.config.system}", unit="step")
    fm.train()
    t_loop = time.perf_counter()
    steps_done = start
    for step in range(start, steps):
        frac = step / steps
        warm = min(1.0, (step + 1) / n_warm)
        if time_budget is not None:
            used = (time.perf_counter() - t_loop) / time_budget
            if used >= 1.0:
                break
            frac = max(frac, used)
            warm = min(1.0, max(warm, used / max(warmup, 1e-9)))
        scale = warm * 0.5 * (1 + math.cos(math.pi * frac))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        # physics terms: a curriculum from short to long jumps (their long-jump targets come
        # from the map itself, so they are only meaningful once short jumps are right)
        sampler.states_hi = lo + (train_hi - lo) * min(1.0, 0.1 + 0.9 * frac / 0.5)
        batches: dict[str, Any] = {}
        terms: dict[str, Tensor] = {}
        for o in objs:
            if o.needs not in batches:
                batches[o.needs] = getattr(sampler, o.needs)() if o.needs != "windows" else \
                    _windows(sampler, o)
            terms[o.name] = o(fm, batches[o.needs])
        loss = sum(o.weight * terms[o.name] for o in objs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(fm.parameters(), clip)
        opt.step()
        d = min(ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in fm.parameters()], 1 - d)
        if not torch.isfinite(loss):
            raise ConfigError(f"loss became non-finite at step {step + 1}; lower lr or check the data")
        done = step + 1
        steps_done = done
        if done % log_every == 0 or done == steps or done % val_every == 0:
            row: dict[str, Any] = {"step": done, "loss": loss.item(), "lr": lr * scale,
                                   "grad_norm": float(gnorm)}
            row.update({f"loss_{k}": v.item() for k, v in terms.items()})
            if done % val_every == 0 or done == steps:
                with _swapped(fm, ema):
                    row.update(jump_errors(fm, val_bank, vj))
            history.append(row)
            if bar is not None:
                bar.set_postfix(loss=f"{loss.item():.3g}")
        if bar is not None:
            bar.update(1)
        if ckdir is not None and (done % every == 0 or done == steps):
            _save(ckdir, fm, opt, ema, g, done, history, run_cfg)
    if bar is not None:
        bar.close()
    if steps_done < steps and ckdir is not None:  # stopped by the time budget
        _save(ckdir, fm, opt, ema, g, steps_done, history, run_cfg)
    with torch.no_grad():
        for e, p in zip(ema, fm.parameters()):
            p.copy_(e)
    fm.eval()
    metrics = jump_errors(fm, val_bank, vj)
    fm.training_record = {**run_cfg, "steps_done": steps_done, "final_metrics": metrics}
    muon = getattr(opt, "muon", None)
    if muon is not None:  # hardware-dependent: bfloat16 where it is native, else float32
        fm.training_record["muon_ns_dtype"] = str(muon.ns_dtype_for(fm.device)).replace("torch.", "")
    if ckdir is not None:
        ckpt.save(fm, ckdir, training=fm.training_record)
        with atomic_path(ckdir / "metrics.json") as tmp:
            tmp.write_text(json.dumps({"config": run_cfg, "metrics": metrics}, indent=2))
    return FitResult(flowmap=fm, history=history, metrics=metrics, checkpoint_dir=ckdir,
                     steps=steps_done, wall_time=time.perf_counter() - t_start)


def _warn_if_tf32(device: torch.device) -> bool:
    """Warn (and return True) when float32 matrix products on CUDA may run in TF32, whose
    10-bit mantissa (~1e-3) is as coarse as the accuracy a jump is trained for."""
    if device.type != "cuda":
        return False
    if torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest":
        warnings.warn(
            "TF32 matrix products are enabled (torch.backends.cuda.matmul.allow_tf32 or "
            "torch.set_float32_matmul_precision): they round to ~1e-3 and limit the accuracy of "
            "a float32 flow map; set torch.backends.cuda.matmul.allow_tf32 = False and "
            "torch.set_float32_matmul_precision('highest') for training",
            stacklevel=3,
        )
        return True
    return False


def _log_mask(fm: FlowMap, bank: TrajectoryBank) -> list[bool]:
    """Log-standardise states the map already logs, and positive states whose data span more
    than two decades (populations, concentrations)."""
    mask = fm.state_transform.log_mask.tolist()
    if fm.system.positive:
        flat = bank.x.reshape(-1, bank.x.shape[-1])
        lo, hi = flat.amin(0), flat.amax(0)
        mask = [m or bool(a > 0 and b > 100 * a) for m, a, b in zip(mask, lo.tolist(), hi.tolist())]
    return mask


@torch.no_grad()
def _velocity_scale(fm: FlowMap, bank: TrajectoryBank | None, seed: int) -> Tensor:
    """RMS rate of change of each normalised state per timescale, from the shortest stored
    steps (data) or from the vector field on prior states."""
    g = torch.Generator().manual_seed(seed + 7)
    tr, T = fm.state_transform, fm.config.timescale
    if bank is not None:
        b = bank.sample_pairs(4096, g, min_gap=bank.min_step, max_gap=bank.min_step)
        dev = fm.device
        rate = (tr.encode(b.x_t.to(dev)) - tr.encode(b.x_s.to(dev))) / ((b.t - b.s) / T).to(dev)[:, None]
    else:
        sys_ = fm.system
        x, p = sys_.sample_initial(4096, g), sys_.sample_params(4096, g)
        x, p = x.to(fm.device), p.to(fm.device)
        dx = sys_.vector_field(torch.zeros(4096, dtype=torch.float64, device=fm.device), x, p)
        if fm.has_log_states:
            dx = torch.where(tr.log_mask, dx / x, dx)
        rate = dx / tr.std.to(dx.dtype) * T
    rate = rate[torch.isfinite(rate).all(dim=1)]
    return rate.pow(2).mean(dim=0).sqrt().clamp_min(1e-3).to(torch.float64)


def _windows(sampler: _Sampler, obj: Objective):
    from .bank import WindowBatch

    w = sampler.bank.sample_windows(sampler.n, obj.length, sampler.g, obj.stride)
    return WindowBatch(*sampler._cast(w.t, w.x, w.p))


class _swapped:
    """Temporarily load EMA weights into the model."""

    def __init__(self, fm: FlowMap, ema: list[Tensor]) -> None:
        self.fm, self.ema = fm, ema

    def __enter__(self) -> None:
        self.saved = [p.detach().clone() for p in self.fm.parameters()]
        with torch.no_grad():
            for e, p in zip(self.ema, self.fm.parameters()):
                p.copy_(e)

    def __exit__(self, *exc) -> None:
        with torch.no_grad():
            for s, p in zip(self.saved, self.fm.parameters()):
                p.copy_(s)


def _save(ckdir: Path, fm: FlowMap, opt, ema, g, step, history, run_cfg) -> None:
    state = {
        "step": step,
        "model": {k: v.detach().cpu() for k, v in fm.state_dict().items()},
        "optimizer": opt.state_dict(),
        "ema": [e.detach().cpu() for e in ema],
        "generator": g.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": json.dumps(history),
        "run": json.dumps(run_cfg),
        "system": fm.config.system,
    }
    ckdir.mkdir(parents=True, exist_ok=True)
    with atomic_path(ckdir / STATE_FILE) as tmp:
        torch.save(state, tmp)
    with _swapped(fm, ema):
        ckpt.save(fm, ckdir, training={**run_cfg, "step": step})
    with atomic_path(ckdir / "log.csv") as tmp:
        keys = sorted({k for row in history for k in row}, key=lambda k: (k != "step", k))
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(history)


def _restore(ckdir: Path, fm: FlowMap, opt, ema, g, run_cfg) -> tuple[int, list]:
    try:
        state = torch.load(ckdir / STATE_FILE, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{ckdir / STATE_FILE} is corrupted ({err}); delete it to restart") from None
    if state.get("system") != fm.config.system:
        raise CheckpointError(
            f"{ckdir} holds a training run of {state.get('system')!r}, not {fm.config.system!r}; "
            "choose another checkpoint_dir or pass resume=False"
        )
    saved = json.loads(state["run"])
    saved.setdefault("optimizer", "adamw")  # checkpoints from before the option
    keys = ("objectives", "steps", "batch_size", "lr", "seed", "optimizer")
    if any(saved.get(k) != run_cfg.get(k) for k in keys):
        diff = {k: (saved.get(k), run_cfg.get(k)) for k in keys if saved.get(k) != run_cfg.get(k)}
        raise CheckpointError(
            f"{ckdir} was written by a run with other settings {diff}; resume with the same "
            "settings, or pass resume=False / another checkpoint_dir"
        )
    try:
        fm.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(f"trainer state does not fit this model: {err}") from None
    try:
        opt.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(
            f"{ckdir} holds optimiser state that does not fit this run's optimiser ({err}); it was "
            "probably written by another flowsim version: pass resume=False or another "
            "checkpoint_dir") from None
    with torch.no_grad():
        for e, s in zip(ema, state["ema"]):
            e.copy_(s)
    g.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), json.loads(state["history"])
