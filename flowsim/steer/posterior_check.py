"""The map check of a posterior: how far did the map's error move it?

Draws sampled through a map follow ``p_map(θ | y) ∝ L_map(θ) π(θ)``. Re-evaluating a few
hundred of them with the reference solver's likelihood ``L_ref`` gives importance weights
``w ∝ L_ref / L_map`` that turn them into draws of the solver's posterior (same prior). Two
numbers say whether the map could be trusted:

- the **shift** of each posterior mean, ``(E_w[θ] − E[θ]) / sd[θ]``, in posterior standard
  deviations (below 0.1: the map's error is small beside the posterior's own width);
- the **effective sample size of the weights**, ``1 / Σ w²`` (normalised weights), as a
  fraction of the draws: near 1 when the two likelihoods agree up to a constant; small when a
  few draws carry all the weight (the posteriors then barely overlap and the shift estimate
  itself is unreliable: re-sample through the solver or train a better map).

Examples
--------
>>> import numpy as np, pandas as pd, flowsim
>>> frame = pd.DataFrame({"subject": 1, "time": [0.5, 1.0], "observable": "q", "value": [0.88, 0.54]})
>>> obs = flowsim.steer.Observations(frame, "harmonic_oscillator", initial={1: (1.0, 0.0)})
>>> ll = flowsim.steer.LogLikelihood("harmonic_oscillator", obs, params=["omega"],
...                                  noise=flowsim.steer.Noise(sigma=0.05))  # a map in real use
>>> ds = posterior_map_check(ll, np.array([[0.9], [1.0], [1.1]]))
>>> float(ds.ess_fraction) > 0.999
True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr

from ..errors import ConfigError, ShapeError
from ..solve.options import SolverOptions
from .forward import SolverPredictor
from .likelihood import LogLikelihood

__all__ = ["posterior_map_check"]


def posterior_map_check(loglik: LogLikelihood, draws: Any, *, n: int = 300, seed: int = 0,
                        solver: SolverOptions | None = None) -> xr.Dataset:
    """Importance-reweight posterior draws taken through a map by the reference solver's likelihood.

    Arguments
    ---------
    loglik:
        The :class:`~flowsim.steer.LogLikelihood` the draws were sampled with (through a map).
    draws:
        Posterior draws ``(N, n_params)`` or ``(N, subjects, n_params)``.
    n:
        How many draws (at random, without replacement) to re-evaluate with the solver.
    seed:
        Seed of that choice.
    solver:
        The reference (torchdiffeq :class:`~flowsim.SolverOptions`; default dopri5 rtol 1e-8).

    Returns
    -------
    xarray.Dataset
        Over ``dim`` (``param`` or ``param[subject]``): ``mean_map``, ``sd_map``,
        ``mean_solver`` (re-weighted), ``sd_solver`` and ``shift_sd`` (the shift of the mean,
        in map posterior SDs);
        scalars ``max_abs_shift``, ``ess`` and ``ess_fraction`` of the weights, ``n_draws``,
        ``loglik_diff_median`` and ``loglik_diff_max`` (``|log L_ref − log L_map|``).

    Raises
    ------
    ShapeError
        ``draws`` of the wrong shape.
    ConfigError
        ``n`` < 1.

    Examples
    --------
    Draws taken through a map of Theoph subject 1 (here, a made-up cloud around its estimate)
    re-weighted by the solver's likelihood:

    >>> import numpy as np, flowsim
    >>> obs = flowsim.steer.theoph_observations().select([1])
    >>> ll = flowsim.steer.LogLikelihood("theophylline", obs, params=("ka", "ke", "V"),
    ...                                  noise=flowsim.steer.Noise(sigma=0.7))
    >>> draws = np.array([1.78, 0.054, 29.4]) * (1 + 0.02 * np.random.default_rng(0).standard_normal((40, 3)))
    >>> check = flowsim.steer.posterior_map_check(ll, draws, n=40)
    >>> sorted(check.data_vars)[:3], bool(check["ess"] > 0)
    (['ess', 'ess_fraction', 'loglik_diff_max'], True)
    """
    if not isinstance(loglik, LogLikelihood):
        raise ConfigError(f"loglik must be a flowsim.steer.LogLikelihood; got {type(loglik).__name__}")
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive int (draws to re-evaluate); got {n!r}")
    d = np.asarray(draws, dtype=np.float64)
    k, subjects = len(loglik.params), [str(s) for s in loglik.observations.subjects]
    if d.ndim == 2 and d.shape[1] == k:
        labels = list(loglik.params)
    elif d.ndim == 3 and d.shape[1:] == (len(subjects), k):
        labels = [f"{p}[{s}]" for s in subjects for p in loglik.params]
    else:
        raise ShapeError(f"draws must be (N, {k}) or (N, {len(subjects)}, {k}); got {d.shape}")
    rng = np.random.default_rng(seed)
    pick = rng.choice(d.shape[0], size=min(n, d.shape[0]), replace=False)
    sub = d[pick]
    system = loglik.system
    fixed = dict(zip(system.param_names, loglik.base_params.tolist()))
    ref = LogLikelihood(SolverPredictor(system, solver), loglik.observations, params=loglik.params,
                        noise=loglik.noise, fixed=fixed, on_outside="-inf")
    with torch.no_grad():
        theta = torch.as_tensor(sub)
        l_map = loglik(theta).numpy()
        l_ref = ref(theta).numpy()
    ok = np.isfinite(l_map) & np.isfinite(l_ref)
    lw = np.where(ok, l_ref - l_map, -np.inf)
    w = np.exp(lw - lw[ok].max()) if ok.any() else np.zeros_like(lw)
    w = w / w.sum() if w.sum() > 0 else w
    flat = sub.reshape(sub.shape[0], -1)
    mean_map, sd_map = flat.mean(0), flat.std(0, ddof=1) if flat.shape[0] > 1 else np.zeros(flat.shape[1])
    mean_ref = (w[:, None] * flat).sum(0)
    sd_ref = np.sqrt(np.maximum((w[:, None] * (flat - mean_ref) ** 2).sum(0), 0.0))
    shift = (mean_ref - mean_map) / np.where(sd_map > 0, sd_map, np.nan)
    ess = float(1.0 / np.sum(w**2)) if w.sum() > 0 else 0.0
    diff = np.abs(l_ref - l_map)[ok]
    return xr.Dataset(
        {"mean_map": ("dim", mean_map), "sd_map": ("dim", sd_map), "mean_solver": ("dim", mean_ref),
         "sd_solver": ("dim", sd_ref), "shift_sd": ("dim", shift),
         "max_abs_shift": ((), float(np.nanmax(np.abs(shift))) if np.isfinite(shift).any() else np.nan),
         "ess": ((), ess), "ess_fraction": ((), ess / len(pick)), "n_draws": ((), len(pick)),
         "loglik_diff_median": ((), float(np.median(diff)) if diff.size else np.nan),
         "loglik_diff_max": ((), float(diff.max()) if diff.size else np.nan)},
        coords={"dim": labels},
        attrs={"description": "posterior draws through the map re-weighted by the reference solver's "
                              "likelihood: shift of the means in map posterior SDs, ESS of the weights"})
