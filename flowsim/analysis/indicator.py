"""A reference-free error indicator: one jump against two half jumps (semigroup consistency)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from scipy.stats import spearmanr
from torch import Tensor

from ..errors import ConfigError, ShapeError, TimeGridError
from ..maps import FlowMapLike, check_flowmap_like
from ..metrics import METRICS, normalised_error, relative_error
from ._maps import as_states, evaluate, params_for, result_attrs, warn_outside_range
from ._reference import load_reference, make_generator
from .jumps import resolve_jumps

__all__ = ["consistency_indicator", "indicator_quality"]

_INDICATOR = (
    "consistency indicator: disagreement between one jump X(s, t, x) and two half jumps "
    "X(u, t, X(s, u, x)), u = (s + t) / 2, measured with the stated metric against the one-jump result"
)
_SPREAD = (
    "ensemble spread: root mean square over the members of each member's distance from the "
    "ensemble's jump, measured with the stated metric"
)
INDICATORS = ("consistency", "spread")


def consistency_indicator(
    flowmap: FlowMapLike,
    x: Tensor,
    s: Tensor | float,
    t: Tensor | float,
    p: Any = None,
    *,
    u: Tensor | float | None = None,
    metric: str = "relative_error",
    sigma: Tensor | Sequence[float] | None = None,
) -> Tensor:
    """Per-sample disagreement between ``X(s, t, x)`` and ``X(u, t, X(s, u, x))``.

    An exact flow map satisfies the semigroup property, so the two agree; a learned one
    disagrees more where it errs more. This needs no reference solve: three map evaluations
    per sample tell which jumps not to trust. :func:`indicator_quality` measures how well it
    ranks the true errors of a given map.

    Arguments
    ---------
    flowmap:
        Any :class:`flowsim.FlowMapLike` (see :mod:`flowsim.analysis` for what is called).
    x:
        States ``(batch, dim)`` (any float dtype; cast to the map's).
    s, t:
        Start and end times, scalars or ``(batch,)``, ``t > s``.
    p:
        Parameters: ``None`` (defaults), a dict, ``(n_params,)`` or ``(batch, n_params)``.
    u:
        Intermediate times (default: the midpoint), strictly between ``s`` and ``t``.
    metric:
        ``"relative_error"`` (``‖X₁ − X₂‖ / ‖X₁‖``) or ``"normalised_error"``
        (``‖(X₁ − X₂)/σ‖/√dim``, needs ``sigma``).
    sigma:
        Per-state scale ``(dim,)`` for the normalised metric (e.g. the reference data's std).

    Returns
    -------
    Tensor
        ``(batch,)`` float64 indicator values.

    Raises
    ------
    ShapeError
        Bad shapes or non-finite values.
    TimeGridError
        ``t <= s``, ``u`` not strictly between them, or jumps beyond the map's ``max_jump``.
    ConfigError
        Unknown metric, or ``"normalised_error"`` without ``sigma``.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.analysis import ExactFlowMap, consistency_indicator
    >>> sho = flowsim.get_system("harmonic_oscillator")
    >>> ind = consistency_indicator(ExactFlowMap(sho), sho.sample_initial(4, 0), 0.0, 1.0)
    >>> bool(ind.max() < 1e-12)
    True
    """
    system = check_flowmap_like(flowmap)
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {list(METRICS)}; got {metric!r}")
    if metric == "normalised_error" and sigma is None:
        raise ConfigError("metric='normalised_error' needs sigma=… (per-state std of your data)")
    x = as_states(system, x, "x")
    n = x.shape[0]
    s_, t_ = _times(s, n, "s"), _times(t, n, "t")
    if not bool((t_ > s_).all()):
        raise TimeGridError("consistency_indicator needs t > s for every sample")
    longest, mj = float((t_ - s_).max()), float(flowmap.max_jump)
    if longest > mj * (1 + 1e-9):
        raise TimeGridError(f"jumps up to {longest:.4g} exceed the map's trained range max_jump={mj:.4g}")
    u_ = 0.5 * (s_ + t_) if u is None else _times(u, n, "u")
    if not bool(((u_ > s_) & (u_ < t_)).all()):
        raise TimeGridError("u must lie strictly between s and t for every sample")
    pp = params_for(system, p, n)
    return _indicator(flowmap, x, s_, u_, t_, pp, metric, sigma)


def indicator_quality(
    flowmap: FlowMapLike,
    reference: Any,
    jumps: Sequence[float] | None = None,
    *,
    n_jumps: int = 8,
    n_starts: int | None = 8,
    metric: str = "relative_error",
    generator: torch.Generator | int | None = 0,
    indicator: str = "consistency",
) -> xr.Dataset:
    """How well an error indicator ranks the true single-jump error (Spearman).

    Jumps are drawn as in :func:`error_vs_jump` (stored start state, stored end state); for
    each, the true error against the reference and the indicator (midpoint split) are
    computed with the same metric. A rank correlation near 1 means the indicator tells which
    jumps not to trust; near 0, it does not.

    Arguments
    ---------
    flowmap:
        Any :class:`flowsim.FlowMapLike` (see :mod:`flowsim.analysis` for what is called).
    reference:
        Held-out reference trajectories (:class:`flowsim.Solution` or store Dataset).
    jumps, n_jumps, n_starts, generator:
        Jump sizes and start times, as for :func:`error_vs_jump`.
    metric:
        ``"relative_error"`` or ``"normalised_error"`` (σ from the reference data).
    indicator:
        ``"consistency"`` (:func:`consistency_indicator`: one jump against two half jumps; any
        map) or ``"spread"`` (a :class:`flowsim.FlowMapEnsemble`'s members' disagreement, the
        root mean square of each member's distance from the ensemble's jump in ``metric``;
        see :meth:`flowsim.FlowMapEnsemble.jump_with_spread`).

    Returns
    -------
    xarray.Dataset
        Per sample: ``indicator(sample)``, ``error(sample)``, ``jump(sample)``; scalars
        ``spearman`` and ``spearman_pvalue`` (all jumps pooled); ``spearman_by_jump(jump_size)``.

    Raises
    ------
    CheckpointError, ShapeError, TimeGridError, ConfigError
        As for :func:`error_vs_jump`, an unknown metric or indicator, or ``"spread"`` for a
        map that is not an ensemble.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.analysis import ExactFlowMap, indicator_quality
    >>> sho = flowsim.get_system("harmonic_oscillator")
    >>> ref = flowsim.reference_solve(sho, sho.sample_initial(8, 0), torch.linspace(0, 6, 31))
    >>> fm = ExactFlowMap(sho, perturbation=lambda s, t, x, p: 1e-3 * ((t - s) ** 2)[:, None] * x)
    >>> bool(indicator_quality(fm, ref, n_jumps=4).spearman > 0.5)
    True
    """
    system = check_flowmap_like(flowmap)
    if metric not in METRICS:
        raise ConfigError(f"metric must be one of {list(METRICS)}; got {metric!r}")
    if indicator not in INDICATORS:
        raise ConfigError(f"indicator must be one of {list(INDICATORS)}; got {indicator!r}")
    if indicator == "spread" and not hasattr(flowmap, "members"):
        raise ConfigError("indicator='spread' needs a flowsim.FlowMapEnsemble (members to "
                          "disagree); use indicator='consistency' for a single map")
    ref = load_reference(reference, system)
    warn_outside_range(flowmap, ref.p)
    sizes, explicit = resolve_jumps(flowmap, ref, jumps, n_jumps, "indicator_quality")
    gen = make_generator(generator)
    ind, err, size_of = [], [], []
    used: list[float] = []
    for size in sizes:
        traj, i, j = ref.pairs(size, n_starts, gen)
        if traj.numel() == 0:
            if explicit:
                raise TimeGridError(f"indicator_quality: no pair of stored times is {size:.4g} apart")
            continue
        x, s, t, p = ref.x[traj, i], ref.t[traj, i], ref.t[traj, j], ref.p[traj]
        one = evaluate(flowmap, x, s, t, p)
        target = ref.x[traj, j]
        if metric == "relative_error":
            e = relative_error(one, target)
        else:
            e = normalised_error(one, target, ref.sigma)
        if indicator == "spread":
            ind.append(_spread(flowmap, x, s, t, p, metric, ref.sigma, one))
        else:
            ind.append(_indicator(flowmap, x, s, 0.5 * (s + t), t, p, metric, ref.sigma, one=one))
        err.append(e)
        size_of.append(torch.full_like(e, size))
        used.append(size)
    if not ind:
        raise TimeGridError("indicator_quality: no jump size matched a pair of stored reference times")
    ind_all, err_all, size_all = torch.cat(ind), torch.cat(err), torch.cat(size_of)
    rho, pval = _spearman(ind_all, err_all)
    by_jump = [_spearman(a, b)[0] for a, b in zip(ind, err)]
    ds = xr.Dataset(coords={"sample": np.arange(ind_all.numel()), "jump_size": np.asarray(used)})
    what = _SPREAD if indicator == "spread" else _INDICATOR
    ds["indicator"] = ("sample", ind_all.numpy(), {"description": what, "metric": metric})
    ds["error"] = ("sample", err_all.numpy(), {"description": f"true single-jump {METRICS[metric]}",
                                               "metric": metric})
    ds["jump"] = ("sample", size_all.numpy(), {"units": system.time_units or "time units"})
    ds["spearman"] = ((), rho, {"description": "Spearman rank correlation of indicator and true error"})
    ds["spearman_pvalue"] = ((), pval)
    ds["spearman_by_jump"] = ("jump_size", np.asarray(by_jump))
    ds.attrs.update(result_attrs("indicator_quality", system, flowmap, metric=metric, indicator=what,
                                 sigma=ref.sigma.tolist(), n_reference_trajectories=ref.n))
    return ds


def _indicator(
    flowmap: FlowMapLike, x: Tensor, s: Tensor, u: Tensor, t: Tensor, p: Tensor, metric: str,
    sigma: Any, one: Tensor | None = None,
) -> Tensor:
    one = evaluate(flowmap, x, s, t, p) if one is None else one
    half = evaluate(flowmap, evaluate(flowmap, x, s, u, p), u, t, p)
    if metric == "relative_error":
        return relative_error(half, one)
    return normalised_error(half, one, sigma)


def _spread(flowmap: FlowMapLike, x: Tensor, s: Tensor, t: Tensor, p: Tensor, metric: str, sigma: Any,
            one: Tensor) -> Tensor:
    """RMS over an ensemble's members of each member's distance from the ensemble's jump."""
    dist = []
    for member in flowmap.members:
        out = evaluate(member, x, s, t, p)
        dist.append(relative_error(out, one) if metric == "relative_error"
                    else normalised_error(out, one, sigma))
    return torch.stack(dist).pow(2).mean(dim=0).sqrt()


def _times(v: Any, n: int, name: str) -> Tensor:
    out = torch.as_tensor(v, dtype=torch.float64).detach().cpu()
    if out.ndim == 0:
        out = out.expand(n)
    if out.shape != (n,) or not bool(torch.isfinite(out).all()):
        raise ShapeError(f"{name} must be a finite scalar or ({n},) tensor; got shape {tuple(out.shape)}")
    return out


def _spearman(a: Tensor, b: Tensor) -> tuple[float, float]:
    a_, b_ = a.numpy(), b.numpy()
    keep = np.isfinite(a_) & np.isfinite(b_)
    if keep.sum() < 3:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: the correlation is undefined (NaN)
        res = spearmanr(a_[keep], b_[keep])
    return float(res.statistic), float(res.pvalue)
