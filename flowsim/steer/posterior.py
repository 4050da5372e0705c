"""Bayesian posteriors through a flow map, checked by the solver: :func:`sample_posterior`.

The sampler is emcee's affine-invariant ensemble (Goodman & Weare's stretch move) with
``vectorize=True``: every step hands the whole walker ensemble to the log-posterior at once,
which is one batched map call (``walkers × subjects`` forward problems, one jump from the dose
time to every observation time). The prior is uniform over the system's parameter priors
(intersected with the map's trained range, so the sampler never asks the map to extrapolate);
the likelihood is :class:`~flowsim.steer.LogLikelihood`. Diagnostics (R-hat, bulk and tail
ESS) come from arviz, the draws are returned as :class:`arviz.InferenceData`, and the map check
(:func:`~flowsim.steer.posterior_map_check`) re-weights a few hundred draws by the reference
solver's likelihood to say how far the map moved the posterior.

Examples
--------
>>> import pandas as pd, torch, flowsim
>>> from flowsim.testing import ExactFlowMap
>>> frame = pd.DataFrame({"subject": 1, "time": [0.5, 1.0, 1.5, 2.0], "observable": "q",
...                       "value": [0.88, 0.54, 0.07, -0.42]})
>>> obs = flowsim.steer.Observations(frame, "harmonic_oscillator", initial={1: (1.0, 0.0)})
>>> post = flowsim.steer.sample_posterior(ExactFlowMap("harmonic_oscillator"), obs, params=["omega"],
...                                       noise=flowsim.steer.Noise(sigma=0.05), walkers=16, steps=1000,
...                                       check_draws=50)
>>> abs(float(post.summary["mean"].sel(param="omega")) - 1.0) < 0.05
True
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._utils import with_keywords
from ..errors import ConfigError, ParameterError
from ..solve.options import SolverOptions
from .forward import predictor
from .likelihood import LogLikelihood
from .noise import Noise
from .observations import Observations
from .posterior_check import posterior_map_check
from .ranges import resolve_bounds, trained_range

#: Above this R-hat (over the walkers) :func:`sample_posterior` warns that the chains have not mixed.
RHAT_WARN = 1.1

__all__ = ["PosteriorConfig", "PosteriorResult", "sample_posterior"]


#: The fewest draws per walker a posterior keeps (R-hat and ESS need a few).
MIN_DRAWS = 4


@dataclass(frozen=True)
class PosteriorConfig:
    """How :func:`sample_posterior` samples.

    Attributes
    ----------
    walkers:
        emcee walkers (at least twice the number of sampled dimensions).
    steps:
        Steps per walker, burn-in included.
    burn:
        Steps discarded at the start (default: half of ``steps``).
    thin:
        Keep every ``thin``-th step after the burn-in.
    seed:
        Seed of the start points and of emcee's moves.
    check_draws:
        Draws re-evaluated with the reference solver in the map check (0: no check).
    solver:
        The reference solver of the check (torchdiffeq; default dopri5, rtol 1e-8).
    init_draws:
        Start points: the best ``walkers`` of this many draws from the prior (default ``16 ×
        walkers``), so the ensemble starts spread over the high-likelihood region.

    Examples
    --------
    >>> PosteriorConfig(walkers=16, steps=100).burn_steps
    50
    """

    walkers: int = 32
    steps: int = 2000
    burn: int | None = None
    thin: int = 1
    seed: int = 0
    check_draws: int = 300
    solver: SolverOptions | None = None
    init_draws: int | None = None

    def __post_init__(self) -> None:
        for name in ("walkers", "steps", "thin"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"PosteriorConfig.{name} must be a positive int; got {v!r} (a sampler "
                                  "needs at least one step and one walker)")
        for name in ("burn", "check_draws", "init_draws"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
                raise ConfigError(f"PosteriorConfig.{name} must be a non-negative int; got {v!r}")
        if self.burn_steps >= self.steps:
            raise ConfigError(f"PosteriorConfig.burn ({self.burn_steps}) must be less than steps "
                              f"({self.steps})")
        kept = -(-(self.steps - self.burn_steps) // self.thin)
        if kept < MIN_DRAWS:
            raise ConfigError(f"PosteriorConfig keeps {kept} draw(s) per walker ((steps {self.steps} - "
                              f"burn {self.burn_steps}) / thin {self.thin}); at least {MIN_DRAWS} are "
                              "needed to judge the chains: raise steps or lower thin")

    @property
    def burn_steps(self) -> int:
        """The burn-in actually used."""
        return self.steps // 2 if self.burn is None else self.burn


@dataclass
class PosteriorResult:
    """What :func:`sample_posterior` returns.

    Attributes
    ----------
    idata:
        :class:`arviz.InferenceData`: ``posterior`` (chain = walker, draw; per-subject
        parameters over ``subject``), ``sample_stats.lp`` (log posterior).
    summary:
        xarray Dataset over ``param`` (and ``subject``): ``mean``, ``sd``, ``q2.5``,
        ``q97.5``, ``r_hat``, ``ess_bulk``, ``ess_tail``.
    check:
        The map check (:func:`~flowsim.steer.posterior_map_check`), or ``None``.
    info:
        Sampler facts: acceptance fraction, autocorrelation times, wall time, model kind.

    Examples
    --------
    See :func:`sample_posterior`; with ``post`` its result, ``post.summary["mean"]`` are the
    posterior means, ``post.check["max_abs_shift"]`` how far the solver check moved them (in
    posterior SDs) and ``post.draws()`` the kept draws:

    >>> from flowsim.steer import PosteriorResult
    >>> sorted(f.name for f in __import__("dataclasses").fields(PosteriorResult))
    ['check', 'idata', 'info', 'summary']
    """

    idata: Any
    summary: xr.Dataset
    check: xr.Dataset | None
    info: dict[str, Any]

    def draws(self) -> np.ndarray:
        """All kept draws, ``(n, n_dims)`` in the order of the sampled columns."""
        return self.info["flat_draws"]


def _log_prior_box(model: Any, params: Sequence[str], bounds: Mapping[str, Any] | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The uniform prior's box: ``bounds`` where given, else the system's prior intersected with
    the map's trained range (the prior alone for the solver)."""
    lo, hi = resolve_bounds(model, list(params), bounds)
    plo, phi = trained_range(predictor(model).system, list(params))  # the system's prior
    given = set(bounds or {})
    for j, name in enumerate(params):
        if name in given:
            continue
        lo[j], hi[j] = max(float(lo[j]), float(plo[j])), min(float(hi[j]), float(phi[j]))
        if not lo[j] < hi[j]:
            raise ParameterError(f"{name}: the map's trained range and the system's prior "
                                 f"[{float(plo[j]):.4g}, {float(phi[j]):.4g}] do not overlap; give "
                                 f"bounds={{{name!r}: (low, high)}} inside the trained range")
    return lo.numpy(), hi.numpy()


def sample_posterior(model: Any, observations: Observations, *, params: Sequence[str],
                     noise: Noise | None = None, fixed: Mapping[str, float] | None = None,
                     bounds: Mapping[str, Any] | None = None, per_subject: bool = False,
                     config: PosteriorConfig | None = None, **options: Any) -> PosteriorResult:
    """Sample the posterior of ``params`` given ``observations`` with emcee, then check the map.

    Arguments
    ---------
    model:
        A trained flow map (the fast path), a system / catalogue name (torchdiffeq) or a
        :class:`~flowsim.steer.Predictor`.
    observations:
        The :class:`~flowsim.steer.Observations`.
    params:
        Sampled quantities: parameter names and initial states ``"x0.<state>"``.
    noise:
        The :class:`~flowsim.steer.Noise`; give ``sigma`` for a true likelihood (with
        ``sigma=None`` the noise level is profiled out per subject, a profile posterior).
    fixed:
        Values of the parameters not sampled (default: the system's defaults).
    bounds:
        ``{name: (low, high)}`` narrowing the uniform prior; default: the system's prior
        intersected with the map's trained range. Bounds outside the map's range are refused.
    per_subject:
        One parameter vector per subject (dimension ``subjects × params``) instead of one
        shared by all.
    config, **options:
        A :class:`PosteriorConfig` or its fields as keywords.

    Returns
    -------
    PosteriorResult

    Raises
    ------
    ConfigError
        Zero steps or walkers, too few walkers for the dimension, bad options.
    ParameterError
        Unknown names, bounds outside the map's range.

    Examples
    --------
    >>> import flowsim
    >>> try:
    ...     PosteriorConfig(steps=0)
    ... except flowsim.ConfigError as err:
    ...     print(str(err)[:44])
    PosteriorConfig.steps must be a positive int
    """
    import arviz as az
    import emcee

    cfg = with_keywords(PosteriorConfig, config, options, what="sample_posterior", error=ConfigError)
    pred = predictor(model)
    params = [params] if isinstance(params, str) else list(params)
    ll = LogLikelihood(pred, observations, params=params, noise=noise, fixed=fixed, on_outside="-inf")
    lo, hi = _log_prior_box(pred, params, bounds)
    n_sub = len(observations.subjects)
    reps = n_sub if per_subject else 1
    ndim = len(params) * reps
    if cfg.walkers < 2 * ndim:
        raise ConfigError(f"emcee needs at least 2 × {ndim} = {2 * ndim} walkers for {ndim} sampled "
                          f"dimensions; got walkers={cfg.walkers}")
    lo_f, hi_f = np.tile(lo, reps), np.tile(hi, reps)
    log_vol = float(np.sum(np.log(hi_f - lo_f)))

    def shaped(theta: np.ndarray) -> torch.Tensor:
        t = torch.as_tensor(theta, dtype=torch.float64)
        return t.reshape(t.shape[0], n_sub, len(params)) if per_subject else t

    def log_prob(theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(theta)
        inside = np.all((theta >= lo_f) & (theta <= hi_f), axis=1)
        out = np.full(theta.shape[0], -np.inf)
        if inside.any():
            with torch.no_grad():
                out[inside] = ll(shaped(theta[inside])).numpy() - log_vol
        out[~np.isfinite(out)] = -np.inf
        return out

    rng = np.random.default_rng(cfg.seed)
    n_init = cfg.init_draws or 16 * cfg.walkers
    cand = lo_f + (hi_f - lo_f) * rng.random((max(n_init, cfg.walkers), ndim))
    lp0 = log_prob(cand)
    start = cand[np.argsort(-lp0)[:cfg.walkers]]
    sampler = emcee.EnsembleSampler(cfg.walkers, ndim, log_prob, vectorize=True)
    sampler.random_state = np.random.RandomState(int(rng.integers(2**31))).get_state()
    t_start = time.perf_counter()
    sampler.run_mcmc(start, cfg.steps, progress=False)
    wall = time.perf_counter() - t_start
    chain = sampler.get_chain(discard=cfg.burn_steps, thin=cfg.thin)           # (draw, walker, ndim)
    lp = sampler.get_log_prob(discard=cfg.burn_steps, thin=cfg.thin)
    post, dims, coords = {}, {}, {}
    subjects = [str(s) for s in observations.subjects]
    for j, name in enumerate(params):
        if per_subject:
            post[name] = np.moveaxis(chain[:, :, j::len(params)], 0, 1)       # (walker, draw, subject)
            dims[name] = ["subject"]
            coords["subject"] = subjects
        else:
            post[name] = chain[:, :, j].T
    idata = az.from_dict(posterior=post, sample_stats={"lp": lp.T}, coords=coords, dims=dims)
    summary = _summary(idata, params)
    worst = float(summary["r_hat"].max())
    if worst > RHAT_WARN:  # the walkers disagree: the draws are not yet the posterior
        warnings.warn(f"the chains have not mixed: max R-hat {worst:.2f} > {RHAT_WARN} (see "
                      f"result.summary['r_hat']); run more steps or walkers before using these draws",
                      UserWarning, stacklevel=2)
    flat = chain.reshape(-1, ndim)
    try:  # emcee logs a caution on short chains (quiet=True); the numbers are reported as they are
        log = logging.getLogger("emcee")
        level, log.level = log.level, logging.ERROR
        try:
            tau = sampler.get_autocorr_time(quiet=True, discard=cfg.burn_steps)
        finally:
            log.setLevel(level)
    except Exception:  # noqa: BLE001  (emcee raises on very short chains; tau is then unknown)
        tau = np.full(ndim, np.nan)
    info = {"model": pred.kind, "walkers": cfg.walkers, "steps": cfg.steps, "burn": cfg.burn_steps,
            "thin": cfg.thin, "wall_s": wall, "acceptance": float(np.mean(sampler.acceptance_fraction)),
            "autocorr_time": [float(v) for v in np.atleast_1d(tau)], "log_prob_calls": cfg.steps + 1,
            "params": params, "per_subject": per_subject, "flat_draws": flat}
    check = None
    if cfg.check_draws and pred.kind != "solver":
        check = posterior_map_check(ll, shaped(flat).numpy(), n=cfg.check_draws, seed=cfg.seed,
                                    solver=cfg.solver)
        _warn_if_the_solver_disagrees(check)
    return PosteriorResult(idata=idata, summary=summary, check=check, info=info)


#: The solver check's limits (docs/posteriors.md): a posterior mean moved by more than this many
#: posterior standard deviations, or weights whose effective sample size is below this fraction
SHIFT_WARN, ESS_WARN = 0.5, 0.1


def _warn_if_the_solver_disagrees(check: xr.Dataset) -> None:
    shift, ess = float(check["max_abs_shift"]), float(check["ess_fraction"])
    if shift > SHIFT_WARN or not ess >= ESS_WARN:
        warnings.warn(f"the reference solver disagrees with the map's posterior: re-weighting the "
                      f"draws by the solver's likelihood moves a posterior mean by {shift:.2g} "
                      f"posterior SDs (> {SHIFT_WARN} is too far) with an effective sample size of "
                      f"{ess:.1%} of the draws (< {ESS_WARN:.0%}: the two barely overlap); do not "
                      "use the map's posterior here: sample through the solver "
                      "(sample_posterior(system, …)) or train a better map (result.check)",
                      UserWarning, stacklevel=3)


def _summary(idata: Any, params: Sequence[str]) -> xr.Dataset:
    import arviz as az

    post = idata.posterior
    stacked = post.stack(sample=("chain", "draw"))
    rhat, ess_b, ess_t = az.rhat(idata), az.ess(idata, method="bulk"), az.ess(idata, method="tail")
    out = {}
    for key, fn in (("mean", lambda v: v.mean("sample")), ("sd", lambda v: v.std("sample", ddof=1)),
                    ("q2.5", lambda v: v.quantile(0.025, "sample").drop_vars("quantile")),
                    ("q97.5", lambda v: v.quantile(0.975, "sample").drop_vars("quantile"))):
        out[key] = xr.concat([fn(stacked[n]) for n in params], dim="param")
    out["r_hat"] = xr.concat([rhat[n] for n in params], dim="param")
    out["ess_bulk"] = xr.concat([ess_b[n] for n in params], dim="param")
    out["ess_tail"] = xr.concat([ess_t[n] for n in params], dim="param")
    ds = xr.Dataset(out).assign_coords(param=list(params))
    return ds.drop_vars([c for c in ds.coords if c not in ("param", "subject")])

