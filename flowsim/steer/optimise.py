"""Maximise a differentiable reward of predicted states: :func:`optimise`.

The quantities varied (parameters, initial states, piecewise-constant :class:`Control` s)
are mapped into their bounds by a sigmoid, every start of a multi-start batch climbs the
reward together with Adam through the map (one batched rollout per step), and the winner's
reward is re-evaluated with the reference solver and reported next to the map's.

Examples
--------
>>> import torch, flowsim
>>> from flowsim.steer import optimise
>>> def reward(x, v):  # bring the oscillator's position at T near 0.5
...     return -(x[:, -1, 0] - 0.5) ** 2
>>> ds = optimise("harmonic_oscillator", reward, ["x0.q"], times=torch.tensor([1.0]), starts=4,
...               steps=60, bounds={"x0.q": (-1.0, 1.0)})
>>> round(float(ds.reward_solver), 4)
-0.0
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from .._utils import with_keywords
from ..errors import ConfigError, ShapeError, TimeGridError
from ..solve.options import SolverOptions
from ._user import call_user
from .controls import Control, Variables
from .forward import SolverPredictor, predictor
from .ranges import check_range

__all__ = ["OptimiseConfig", "optimise"]

Reward = Callable[[Tensor, dict[str, Tensor]], Tensor]


@dataclass(frozen=True)
class OptimiseConfig:
    """How :func:`optimise` searches.

    Attributes
    ----------
    starts:
        Multi-start points, optimised together as one batch (drawn uniformly in the bounds).
    steps:
        Adam steps.
    lr:
        Adam's learning rate in the unconstrained (logit) coordinates.
    seed:
        Seed of the start points.
    solver:
        The reference that re-evaluates the winner (torchdiffeq; default dopri5 rtol 1e-8).
    allow_extrapolation:
        Passed to the map (:meth:`~flowsim.FlowMap.jump`): ``None`` composes over-long jumps
        with a warning, ``False`` refuses them.
    on_outside:
        Bounds outside a map's trained range: ``"raise"`` (default) or ``"warn"`` (then the
        map evaluates there, extrapolating, unless ``allow_extrapolation=False``).

    Examples
    --------
    >>> OptimiseConfig(starts=8).steps
    200
    """

    starts: int = 16
    steps: int = 200
    lr: float = 0.1
    seed: int = 0
    solver: SolverOptions | None = None
    allow_extrapolation: bool | None = None
    on_outside: str = "raise"

    def __post_init__(self) -> None:
        if self.on_outside not in ("raise", "warn"):
            raise ConfigError(f"OptimiseConfig.on_outside must be 'raise' or 'warn'; got {self.on_outside!r}")
        for name in ("starts", "steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"OptimiseConfig.{name} must be a positive int; got {v!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"OptimiseConfig.lr must be positive and finite; got {self.lr!r}")


def _check_reward(r: Any, b: int, needs_grad: bool, where: str) -> Tensor:
    if not isinstance(r, Tensor):
        raise ConfigError(f"the reward must return a torch tensor of shape ({b},) (one value per sample); "
                          f"got {type(r).__name__} {where}")
    if r.shape != (b,):
        raise ConfigError(f"the reward must return one scalar per sample, shape ({b},); got {tuple(r.shape)} "
                          f"{where} (reduce over time and state inside the reward, not over the batch)")
    if not bool(torch.isfinite(r).all()):
        raise ConfigError(f"the reward returned NaN or infinity for {int((~torch.isfinite(r)).sum())} of {b} "
                          f"samples {where}; make it finite over the bounds (e.g. clamp before log)")
    if needs_grad and not r.requires_grad:
        raise ConfigError(f"the reward has no gradient to the variables {where}: compute it with torch "
                          "operations on the states it is given (no .detach(), .item() or numpy)")
    return r


def _start_time(t0: Any) -> float:
    try:
        t0 = float(t0)
    except (TypeError, ValueError):
        raise TimeGridError(f"t0 must be a number; got {t0!r}") from None
    if not math.isfinite(t0):
        raise TimeGridError(f"t0 must be finite; got {t0}")
    return t0


def _fixed_start(pred: Any, var: Variables, x0: Any, p: Any, on_outside: str
                 ) -> tuple[Tensor | None, Tensor | None]:
    """The fixed initial state ``(dim,)`` and parameters ``(n_params,)`` (``None``: the system's),
    checked: shape, finite, and — for a map — the entries the variables do not replace inside
    its trained range (refused, or warned with ``on_outside="warn"``)."""
    system = pred.system
    x0t = None
    if x0 is not None:
        try:
            x0t = torch.as_tensor(x0, dtype=torch.float64).detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            raise ShapeError(f"x0 must be {system.dim} numbers ({list(system.state_names)}); got "
                             f"{type(x0).__name__}") from None
        if x0t.numel() != system.dim:
            raise ShapeError(f"x0 must be {system.dim} numbers ({list(system.state_names)}); got shape "
                             f"{tuple(x0t.shape)}")
        x0t = x0t.reshape(system.dim)
        if not bool(torch.isfinite(x0t).all()):
            raise ShapeError(f"x0 must be finite; got {x0t.tolist()}")
    pt0 = None if p is None else system.params_tensor(p, 1)[0].double()
    varied = {(kind, idx) for kind, _, idx, _ in var.items}
    held_x = [j for j in range(system.dim) if ("state", j) not in varied]
    held_p = [j for j in range(system.n_params)
              if ("param", j) not in varied and ("control", j) not in varied]
    xs = system.default_initial() if x0t is None else x0t
    ps = system.default_params() if pt0 is None else pt0
    if held_x:
        check_range(pred, xs[held_x][None], [f"x0.{system.state_names[j]}" for j in held_x],
                    on_outside=on_outside, what="the fixed initial state")
    if held_p:
        check_range(pred, ps[held_p][None], [system.param_names[j] for j in held_p],
                    on_outside=on_outside, what="the fixed parameters")
    return x0t, pt0


def _warn_if_the_solver_disagrees(model: float, solver: float, spread: float) -> None:
    """Warn when the winner's reward through the solver differs from the map's by more than 10 %
    of the larger of the two rewards and the rewards' spread over the starts (at the first or
    the last step: how much the reward varies over the search box)."""
    scale = max(abs(model), abs(solver), spread)
    if not abs(model - solver) <= 0.1 * scale:
        warnings.warn(f"the reference solver disagrees with the map at the optimum: reward "
                      f"{model:.4g} through the map, {solver:.4g} through the solver; the optimum "
                      "may be the map's error. Check it with optimise(system, …) or train a better "
                      "map (result.reward_solver)", UserWarning, stacklevel=3)


def _times(times: Any, t0: float) -> Tensor:
    try:
        t = torch.as_tensor(times, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise TimeGridError(f"times must be a 1-D sequence of numbers; got {type(times).__name__}") from None
    if t.numel() == 0 or not bool(torch.isfinite(t).all()) or bool((t.diff() <= 0).any()) or float(t[0]) < t0:
        raise TimeGridError(f"times must be finite, strictly increasing and at or after t0={t0:g}; "
                            f"got {t.tolist()}")
    return t


def optimise(model: Any, reward: Reward, variables: Sequence[str | Control], *, times: Any,
             bounds: Mapping[str, Sequence[float]] | None = None, x0: Any = None, p: Any = None,
             t0: float = 0.0, config: OptimiseConfig | None = None, **options: Any) -> xr.Dataset:
    """Maximise ``reward`` of the predicted states over parameters, initial states or controls.

    Arguments
    ---------
    model:
        A trained flow map (the fast path), a system or catalogue name (through the solver),
        or a :class:`~flowsim.steer.Predictor`.
    reward:
        ``reward(x, v) -> (batch,)``: ``x`` the states ``(batch, time, dim)`` at ``times``,
        ``v`` ``{variable name: (batch,) or (batch, n_intervals) tensor}``; differentiable.
    variables:
        Parameter names, initial states as ``"x0.<state>"`` and :class:`Control` s.
    times:
        Output times (1-D, increasing, at or after ``t0``).
    bounds:
        ``{name: (low, high)}``; default: a map's trained parameter range (the system's prior
        for a solver) and the initial-state box. Bounds outside the map's range are refused.
    x0, p:
        The fixed initial state ``(dim,)`` and parameters ``(n_params,)`` (default: the
        system's standard ones); variables replace their entries.
    t0:
        Start time.
    config, **options:
        An :class:`OptimiseConfig`, or its fields as keywords.

    Returns
    -------
    xarray.Dataset
        ``value(start, variable)`` and ``reward(start)`` (through the model) of every start,
        ``best(variable)`` the winner, ``reward_model`` its reward through the model,
        ``reward_solver`` through the reference solver, ``states_model`` / ``states_solver``
        ``(time, state)`` its trajectory both ways and ``history(step)`` the best reward per
        step; attrs: ``model`` (map or solver), ``winner``, ``system``.

    Raises
    ------
    ConfigError
        The reward is not ``(batch,)``, not finite or has no gradient; bad options.
    ParameterError
        Unknown variables, bad bounds, or bounds or a fixed ``x0`` / ``p`` outside the map's
        trained range.
    ShapeError
        An ``x0`` of the wrong length or not finite.
    TimeGridError
        Bad ``times``, ``t0`` or control edges.

    Warns
    -----
    UserWarning
        The winner's reward through the reference solver differs from the map's by more than
        10 % (of the larger reward, or of the rewards' spread over the random starts).

    Examples
    --------
    >>> import torch
    >>> ds = optimise("harmonic_oscillator", lambda x, v: -(x[:, -1, 1] ** 2), ["omega"],
    ...               times=torch.tensor([1.0]), starts=3, steps=5)
    >>> ds.value.dims
    ('start', 'variable')
    """
    cfg = with_keywords(OptimiseConfig, config, options, what="optimise", error=ConfigError)
    if not callable(reward):
        raise ConfigError(f"reward must be a callable reward(x, v) -> (batch,); got {type(reward).__name__}")
    allow = cfg.allow_extrapolation
    if cfg.on_outside == "warn" and allow is None:
        allow = True
    pred = predictor(model, allow_extrapolation=allow)
    system = pred.system
    var = Variables(system, variables)
    var.set_bounds(pred, bounds, on_outside=cfg.on_outside)
    t0 = _start_time(t0)
    t = _times(times, t0)
    var.check_controls(t, t0)
    x0t, pt0 = _fixed_start(pred, var, x0, p, cfg.on_outside)
    dt = pred.dtype
    lo = torch.tensor([b[0] for b in var.bounds], dtype=dt)
    hi = torch.tensor([b[1] for b in var.bounds], dtype=dt)
    g = torch.Generator().manual_seed(cfg.seed)
    u0 = torch.rand(cfg.starts, len(var.columns), generator=g, dtype=torch.float64).clamp(0.02, 0.98)
    z = torch.logit(u0).to(dt).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr)

    def evaluate(pr, zz: Tensor, dtype: torch.dtype, where: str,
                 needs_grad: bool) -> tuple[Tensor, Tensor, Tensor]:
        vals = lo.to(dtype) + (hi - lo).to(dtype) * torch.sigmoid(zz.to(dtype))
        xs = var.rollout(pr, vals, t.to(dtype), x0=x0t, p=pt0, t0=float(t0))
        out = call_user(reward, "reward(x, v)", xs, var.split(vals))
        return _check_reward(out, vals.shape[0], needs_grad, where), vals, xs

    history, spread = [], 0.0
    for step in range(cfg.steps):
        opt.zero_grad()
        r, _, _ = evaluate(pred, z, dt, f"at step {step}", True)
        if step == 0:  # the reward's range over the random starts: the scale of a disagreement
            spread = float(r.detach().max() - r.detach().min())
        (-r.sum()).backward()
        opt.step()
        history.append(float(r.detach().max()))
    with torch.no_grad():
        r, vals, xs = evaluate(pred, z, dt, "at the end", False)
    win = int(torch.argmax(r))
    ref = pred if pred.kind == "solver" else SolverPredictor(system, cfg.solver)
    with torch.no_grad():
        r_ref, _, xs_ref = evaluate(ref, z[win:win + 1].detach(), torch.float64, "with the solver", False)
    if pred.kind != "solver":
        _warn_if_the_solver_disagrees(float(r[win]), float(r_ref[0]),
                                      max(spread, float(r.max() - r.min())))
    coords = {"start": np.arange(cfg.starts), "variable": list(var.columns), "step": np.arange(cfg.steps),
              "time": t.numpy(), "state": list(system.state_names)}
    return xr.Dataset(
        {"value": (("start", "variable"), vals.double().numpy()),
         "reward": ("start", r.double().numpy()),
         "best": ("variable", vals[win].double().numpy()),
         "reward_model": ((), float(r[win])),
         "reward_solver": ((), float(r_ref[0])),
         "states_model": (("time", "state"), xs[win].double().numpy()),
         "states_solver": (("time", "state"), xs_ref[0].numpy()),
         "lower": ("variable", lo.double().numpy()), "upper": ("variable", hi.double().numpy()),
         "history": ("step", np.asarray(history))},
        coords=coords,
        attrs={"model": pred.kind, "system": system.name, "winner": win, "starts": cfg.starts,
               "steps": cfg.steps, "lr": cfg.lr, "t0": float(t0),
               "controls": str({c.param: list(c.edges) for c in var.controls})})
