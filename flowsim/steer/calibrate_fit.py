"""Fit a model's parameters to measured data, through a flow map, checked by the solver.

:func:`calibrate` finds maximum-likelihood (or MAP) estimates for every subject (or one shared
estimate) and every start point in **one batched optimisation** through the model: with a flow
map, one jump from each subject's dose time to every observation time. With a map, the answer is
always checked: the objective is re-evaluated with the reference solver at the map's optimum,
then a short polish runs with the solver; the shift the polish makes is the map's bias. Give a
system (or its name) instead of a map to calibrate through the solver alone: the baseline.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from .._utils import with_keywords
from ..errors import ConfigError, ExtrapolationWarning
from ..systems.base import ODESystem
from .calibrate_config import CalibrateConfig
from .calibrate_optim import Box, hessian_rows, minimise, row_covariance
from .forward import SolverPredictor, predictor
from .likelihood import LogLikelihood
from .observations import Observations
from .ranges import resolve_bounds

__all__ = ["calibrate", "CalibrateConfig", "Objective"]


class Objective:
    """The negative log-posterior of every row: ``(n_starts, S, n)`` per subject, or
    ``(n_starts, n)`` shared, flattened to rows; used by :func:`calibrate` (and public so a
    benchmark can time the same objective).

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.steer.calibrate_fit import Objective
    >>> obs = flowsim.steer.theoph_observations().select([1, 2])
    >>> obj = Objective("theophylline", obs, flowsim.steer.CalibrateConfig(params=("ka", "ke", "V")))
    >>> obj(torch.tensor([[1.8, 0.054, 29.4], [1.9, 0.1, 31.9]], dtype=torch.float64)).shape
    torch.Size([2])
    """

    def __init__(self, model: Any, observations: Observations, config: CalibrateConfig) -> None:
        self.config = config
        self.params = config.params or tuple(observations.system.param_names)
        self.ll = LogLikelihood(model, observations, params=self.params, noise=config.noise,
                                fixed=config.fixed, on_outside="warn")
        self.n_subjects = len(observations.subjects) if config.per_subject else 1
        unknown = sorted(set(config.prior) - set(self.params))
        if unknown:
            raise ConfigError(f"prior names {unknown}, which are not fitted; fitted: {list(self.params)}")
        idx = [self.params.index(k) for k in config.prior]
        self._prior = (idx, torch.tensor([config.prior[k] for k in config.prior], dtype=torch.float64))

    def __call__(self, theta: Tensor, rows: Tensor | None = None) -> Tensor:
        """Objective of each row of ``theta`` ``(R, n)``. Rows are ``start × subject`` (per
        subject: row ``r`` is subject ``r % S``) or starts (shared); ``rows`` gives the row
        numbers of a subset (default: ``0 … R-1``)."""
        if rows is None:
            rows = torch.arange(theta.shape[0])
        if self.config.per_subject:
            nll = -self.ll.rows(theta, rows % self.n_subjects)
        else:
            nll = -self.ll(theta)
        idx, ms = self._prior
        if idx:
            z = (theta[:, idx] - ms[:, 0].to(theta)) / ms[:, 1].to(theta)
            nll = nll + 0.5 * (z * z).sum(-1)
        return nll


def calibrate(model: Any, observations: Observations, config: CalibrateConfig | None = None,
              **options: Any) -> xr.Dataset:
    """Maximum-likelihood / MAP estimates of a model's parameters from measured data.

    Arguments
    ---------
    model:
        A trained flow map (fast; then checked and polished with the solver), a
        :class:`~flowsim.steer.Predictor`, or an ODESystem / catalogue name (through the
        differentiable torchdiffeq solver alone: the baseline).
    observations:
        :class:`~flowsim.steer.Observations` of the model's system.
    config, **options:
        A :class:`~flowsim.steer.CalibrateConfig`, or its fields as keywords (``params=``,
        ``per_subject=``, ``noise=``, ``bounds=``, ``prior=``, ``n_starts=``, …).

    Returns
    -------
    xarray.Dataset
        Over ``subject`` (``"all"`` for a shared fit) and ``param``: ``estimate`` (after the
        polish), ``std_error`` (from the inverse Hessian of the negative log-likelihood),
        ``estimate_map`` (the model's optimum, before the polish), ``shift`` and
        ``rel_shift`` (what the polish changed: the map's bias), ``loss_map`` (the model's
        objective at its optimum), ``loss_before_polish`` (the solver's objective there),
        ``loss_after_polish``, ``sigma`` (noise level per observable; pooled over the
        subjects for a shared fit), ``status``
        (``converged``, ``max_steps``, ``at_bound`` or ``failed``), ``polish_from``
        (``"map"``, or ``"candidate"`` where the guard's start won: the map's optimum was in
        the wrong basin), ``gradient_cosine`` / ``gradient_rel_error`` (the map's sensitivities
        of the predicted data to the fitted parameters, relative, against the solver's, at the
        map's optimum; NaN without a polish), ``lower`` / ``upper`` (the search box),
        ``fixed`` over ``fixed_param`` (the values of the parameters not fitted); attrs say
        the model kind, the noise, and the wall times.

    Raises
    ------
    ParameterError
        Unknown parameter names, bounds outside the map's trained range (unless
        ``on_outside="warn"``).
    ConfigError
        Bad options.

    Examples
    --------
    >>> import flowsim
    >>> obs = flowsim.steer.theoph_observations().select([1])
    >>> fit = flowsim.steer.calibrate("theophylline", obs, params=("ka", "ke", "V"), n_starts=2,
    ...                               n_candidates=8, steps=20)
    >>> [round(v, 2) for v in fit["estimate"].sel(subject="1").values.tolist()]
    [1.78, 0.05, 29.39]
    """
    cfg = with_keywords(CalibrateConfig, config, options, what="calibrate", error=ConfigError)
    if not isinstance(observations, Observations):
        raise ConfigError(f"observations must be an Observations; got {type(observations).__name__}")
    params = cfg.params or tuple(observations.system.param_names)
    if isinstance(model, (str, ODESystem)):  # the baseline: gradients by batched forward differences
        pred = SolverPredictor(model, cfg.solver, gradients="finite-difference")
    else:
        pred = predictor(model, allow_extrapolation=True if cfg.on_outside == "warn" else None)
    if pred.system.name != observations.system.name:
        raise ConfigError(f"the model is of {pred.system.name}, the observations of "
                          f"{observations.system.name}")
    lo, hi = resolve_bounds(pred, params, cfg.bounds, on_outside=cfg.on_outside)
    is_map = not isinstance(pred, SolverPredictor)
    box = Box(lo, hi)
    t_start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)  # said once by resolve_bounds
        obj = Objective(pred, observations, cfg)
        u = _starts(obj, box, cfg)
        m = minimise(lambda v, rows: obj(box.to_theta(v), rows), u, steps=cfg.steps, tol=cfg.tol)
    best, status = _best(m, obj.n_subjects, cfg.n_starts, box)
    theta_map = box.to_theta(m.u[best])
    loss_map = m.value[best]
    t_map = time.perf_counter() - t_start
    theta, final_obj, loss_before, loss_after, t_polish = theta_map, obj, loss_map, loss_map, 0.0
    polish_iterations, origin = 0, ["map"] * obj.n_subjects
    if is_map and cfg.polish:
        t0 = time.perf_counter()
        final_obj = Objective(SolverPredictor(pred.system, cfg.solver, gradients="finite-difference"),
                              observations, cfg)
        with torch.no_grad():  # the solver's objective at every start's map optimum
            every = final_obj(box.to_theta(m.u))
        loss_before = every[best]
        if cfg.polish_steps:
            theta, loss_after, status, polish_iterations, origin = _polish(final_obj, box, cfg, m.u, every)
        else:
            loss_after = loss_before
        t_polish = time.perf_counter() - t0
    grad_fidelity = _gradient_fidelity(obj, final_obj, theta_map) if final_obj is not obj else None
    _, _, hess = hessian_rows(final_obj, theta)
    cov = row_covariance(hess)
    with torch.no_grad():
        sigma = _sigma(final_obj, theta)
    return _dataset(observations, cfg, params, dict(
        estimate=theta, estimate_map=theta_map, cov=cov, loss_map=loss_map, loss_before=loss_before,
        loss_after=loss_after, sigma=sigma, status=status, lo=lo, hi=hi,
        kind="map" if is_map else pred.kind, polished=is_map and cfg.polish, t_map=t_map,
        t_polish=t_polish, iterations=m.iterations, polish_iterations=polish_iterations, origin=origin,
        grad=grad_fidelity))


def _jacobian(obj: Objective, theta: Tensor) -> Tensor:
    """``∂y/∂log θ`` of every row's predicted observables ``y``: ``(R, M, n)`` (masked samples
    only), one backward pass per observation slot."""
    ll, th = obj.ll, theta.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        if obj.config.per_subject:
            subj = torch.arange(th.shape[0]) % obj.n_subjects
            y, mask = ll._predict_rows(th, subj), ll.padded.mask[subj]
        else:
            y, mask = ll.predict(th)[0][None], ll.padded.mask[None]
        y, mask = y.reshape(th.shape[0], -1), mask.reshape(th.shape[0], -1).to(y.dtype)
        cols = [torch.autograd.grad(y[:, k].sum(), th, retain_graph=True, allow_unused=True,
                                    materialize_grads=True)[0] for k in range(y.shape[1])]
    return torch.stack(cols, 1) * mask[..., None] * theta.detach()[:, None, :]


def _gradient_fidelity(map_obj: Objective, solver_obj: Objective, theta: Tensor) -> tuple[Tensor, Tensor]:
    """Cosine and relative error of the map's sensitivities of the predicted data to the fitted
    (log) parameters against the solver's, per subject at the map's optimum."""
    a = _jacobian(map_obj, theta).flatten(1)
    b = _jacobian(solver_obj, theta).flatten(1)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)
    return cos, (a - b).norm(dim=1) / b.norm(dim=1).clamp_min(1e-300)


def _polish(obj: Objective, box: Box, cfg: CalibrateConfig, u_map: Tensor, every: Tensor) -> tuple:
    """The solver polish, per subject from the map optimum the solver likes best, just inside the
    box (at a bound there is no gradient). With ``polish_guard``, subjects whose polish did not
    converge inside the box are polished again from the random candidate the solver likes best
    (the map's optimum may lie in another basin), and the better end is kept."""
    s = obj.n_subjects
    pick = torch.where(torch.isfinite(every), every, torch.full_like(every, math.inf))
    first = pick.reshape(cfg.n_starts, s).argmin(0) * s + torch.arange(s)
    u0 = box.to_u(box.to_theta(u_map[first]), eps=1e-2)
    mp = minimise(lambda v, rows: obj(box.to_theta(v), rows), u0, steps=cfg.polish_steps, tol=cfg.tol)
    theta, value = box.to_theta(mp.u), mp.value
    status = _status(mp.converged, mp.value, theta, box)
    origin, iterations = ["map"] * s, mp.iterations
    redo = torch.tensor([st != "converged" for st in status], dtype=torch.bool)
    if cfg.polish_guard and bool(redo.any()):
        subj = redo.nonzero().squeeze(1)
        cand = box.to_u(box.to_theta(_starts(obj, box, cfg, 1)[subj]), eps=1e-2)
        mg = minimise(lambda v, rows: obj(box.to_theta(v), subj[rows]), cand, steps=cfg.polish_steps,
                      tol=cfg.tol)
        iterations += mg.iterations
        val = torch.where(torch.isfinite(mg.value), mg.value, torch.full_like(mg.value, math.inf))
        for j, i in enumerate(subj.tolist()):
            if val[j] < value[i] - 1e-3:  # better by more than numerical noise (nats)
                theta[i], value[i] = box.to_theta(mg.u[j]), mg.value[j]
                status[i] = _status(mg.converged[j:j + 1], mg.value[j:j + 1], theta[i:i + 1], box)[0]
                origin[i] = "candidate"
    return theta, value, status, iterations, origin


def _starts(obj: Objective, box: Box, cfg: CalibrateConfig, n_starts: int | None = None) -> Tensor:
    """The best ``n_starts`` of ``n_candidates`` random points per subject by ``obj``, as ``u``
    rows ordered ``start × subject``."""
    n, s = len(obj.params), obj.n_subjects
    n_starts = cfg.n_starts if n_starts is None else n_starts
    g = torch.Generator().manual_seed(cfg.seed)
    unit = torch.rand(cfg.n_candidates, s, n, generator=g, dtype=torch.float64)
    unit[0] = 0.5  # the centre of the box (in its scale) is always a candidate
    u = box.from_unit(unit)
    with torch.no_grad():
        f = obj(box.to_theta(u.reshape(-1, n))).reshape(cfg.n_candidates, s)
    f = torch.where(torch.isfinite(f), f, torch.full_like(f, math.inf))
    order = f.argsort(dim=0)[:n_starts]                                       # (n_starts, s)
    return u[order, torch.arange(s)[None, :]].reshape(-1, n)


def _best(m: Any, s: int, n_starts: int, box: Box) -> tuple[Tensor, list[str]]:
    val = torch.where(torch.isfinite(m.value), m.value, torch.full_like(m.value, math.inf))
    k = val.reshape(n_starts, s).argmin(0)
    rows = k * s + torch.arange(s)
    theta = box.to_theta(m.u[rows])
    return rows, _status(m.converged[rows], m.value[rows], theta, box)


def _status(converged: Tensor, value: Tensor, theta: Tensor, box: Box,
            status_if_not: str = "max_steps") -> list[str]:
    out = []
    at = box.at_bound(theta)
    for c, v, b in zip(converged.tolist(), value.tolist(), at.tolist()):
        out.append("failed" if not math.isfinite(v) else "at_bound" if b else
                   "converged" if c else status_if_not)
    return out


def _sigma(obj: Objective, theta: Tensor) -> Tensor:
    """The noise level per fitted row and observable ``(rows, K)``; for a shared fit the pooled
    level of all subjects, ``sqrt(Σ_s n_s σ_s² / Σ_s n_s)`` (each subject's ``σ_s`` over its
    ``n_s`` samples)."""
    ll, n = obj.ll, theta.shape[-1]
    t = theta.reshape(-1, obj.n_subjects, n) if obj.config.per_subject else theta
    pred = ll.predict(t)                                                      # (B, S, T, K)
    sig = ll.noise.sigma_hat(ll.padded.values, pred, ll.padded.mask)           # (B, S, K)
    if obj.config.per_subject:
        return sig.reshape(-1, sig.shape[-1])
    w = ll.padded.mask.to(sig.dtype).sum(-2)                                   # (S, K) samples
    return ((sig**2 * w).sum(1) / w.sum(0).clamp_min(1.0)).sqrt()


def _dataset(obs: Observations, cfg: CalibrateConfig, params: tuple[str, ...], r: dict) -> xr.Dataset:
    subjects = list(obs.subjects) if cfg.per_subject else ["all"]
    se = r["cov"].diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
    est, est_map = r["estimate"].detach(), r["estimate_map"].detach()
    shift = est - est_map
    sp = ("subject", "param")
    ds = xr.Dataset(
        {
            "estimate": (sp, est.numpy()),
            "std_error": (sp, se.numpy()),
            "estimate_map": (sp, est_map.numpy()),
            "shift": (sp, shift.numpy()),
            "rel_shift": (sp, (shift / est.abs().clamp_min(1e-300)).numpy()),
            "covariance": (("subject", "param", "param_2"), r["cov"].numpy()),
            "loss_map": ("subject", r["loss_map"].detach().numpy()),
            "loss_before_polish": ("subject", r["loss_before"].detach().numpy()),
            "loss_after_polish": ("subject", r["loss_after"].detach().numpy()),
            "sigma": (("subject", "observable"), r["sigma"].detach().numpy()),
            "status": ("subject", np.array(r["status"], dtype=object).astype(str)),
            "polish_from": ("subject", np.array(r["origin"], dtype=object).astype(str)),
            "gradient_cosine": ("subject", _or_nan(r["grad"], 0, len(subjects))),
            "gradient_rel_error": ("subject", _or_nan(r["grad"], 1, len(subjects))),
            "lower": ("param", r["lo"].numpy()),
            "upper": ("param", r["hi"].numpy()),
        },
        coords={"subject": subjects, "param": list(params), "param_2": list(params),
                "observable": list(obs.observables)},
        attrs={"system": obs.system.name, "model": r["kind"], "polished": int(bool(r["polished"])),
               "noise": cfg.noise.kind, "noise_sigma": "fitted" if cfg.noise.fitted else str(cfg.noise.sigma),
               "per_subject": int(cfg.per_subject), "n_starts": cfg.n_starts, "steps": cfg.steps,
               "iterations": r["iterations"], "polish_iterations": r["polish_iterations"],
               "seconds_fit": r["t_map"], "seconds_polish": r["t_polish"],
               "objective": "negative log-likelihood" + (" + Gaussian prior" if cfg.prior else "")},
    )
    system = obs.system
    held = [n for n in system.param_names if n not in params]
    base = {**system.defaults, **{k: float(v) for k, v in (cfg.fixed or {}).items()}}
    ds["fixed"] = xr.DataArray(np.array([base[n] for n in held], dtype=np.float64), dims="fixed_param",
                               coords={"fixed_param": held},
                               attrs={"description": "the values of the parameters not fitted"})
    ds["estimate"].attrs["description"] = "estimate after the solver polish (the model's own where none ran)"
    ds["shift"].attrs["description"] = "estimate - estimate_map: what the solver polish changed (map bias)"
    return ds


def _or_nan(pair: tuple | None, i: int, n: int) -> np.ndarray:
    return np.full(n, np.nan) if pair is None else pair[i].detach().numpy()
