"""The fit a pharmacometrician would write: per subject, ``scipy.optimize.least_squares`` over
``scipy.integrate.solve_ivp`` — the independent reference :func:`flowsim.steer.calibrate` is
compared with (tests, benchmark, tutorial 7)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

from ..errors import ConfigError
from .observations import Observations
from .ranges import _split, resolve_bounds

__all__ = ["scipy_fit"]


def scipy_fit(observations: Observations, params: Sequence[str] | None = None, *,
              start: Mapping[str, float] | None = None,
              bounds: Mapping[str, tuple[float, float]] | None = None, method: str = "LSODA",
              rtol: float = 1e-8, atol: float = 1e-10, tol: float = 1e-10) -> xr.Dataset:
    """Per-subject least squares (additive Gaussian noise) with ``solve_ivp`` inside.

    Each subject is fitted on its own by ``least_squares`` (trust-region reflective, in log
    coordinates for positive parameters, finite-difference Jacobian) from ``start`` (default
    the system's defaults), inside ``bounds`` (default the system's prior), to ``ftol = xtol =
    gtol = tol`` (scipy's default 1e-8 stopped subject 9 of Theoph, whose ka is poorly
    determined, 2.5 % short of the optimum). The vector field is
    the system's, called through numpy; fixed parameters stay at the system's defaults.

    Returns an xarray Dataset with ``estimate (subject, param)``, ``cost (subject)`` (half the
    residual sum of squares), ``nfev (subject)``, ``success (subject)`` and the wall time in
    ``attrs["seconds"]``.

    Arguments
    ---------
    observations:
        The :class:`~flowsim.steer.Observations`.
    params:
        Names fitted (parameters, ``"x0.<state>"``); default: every parameter.
    start, bounds:
        Start values and ``(low, high)`` by name.
    method, rtol, atol:
        The ``solve_ivp`` method and tolerances.
    tol:
        ``least_squares``'s ``ftol``, ``xtol`` and ``gtol``.

    Examples
    --------
    >>> import flowsim
    >>> fit = flowsim.steer.scipy_fit(flowsim.steer.theoph_observations().select([1]), ("ka", "ke", "V"))
    >>> [round(v, 2) for v in fit["estimate"].values[0].tolist()]
    [1.78, 0.05, 29.39]
    """
    system = observations.system
    params = tuple(system.param_names if params is None else params)
    cols = _split(system, params)
    lo, hi = resolve_bounds(system, params, bounds)
    base = system.defaults
    x_start = np.array([float((start or {}).get(n, base.get(n, 0.5 * (a + b))))
                        for n, a, b in zip(params, lo.tolist(), hi.tolist())])
    if not np.all((x_start >= lo.numpy()) & (x_start <= hi.numpy())):
        raise ConfigError(f"start {dict(zip(params, x_start.tolist()))} lies outside the bounds")
    log = (lo > 0).numpy()
    to_x = lambda z: np.where(log, np.exp(z), z)  # noqa: E731
    z0, zlo, zhi = (np.where(log, np.log(v), v) for v in (x_start, lo.numpy(), hi.numpy()))
    pad = observations.padded()
    out, costs, nfev, ok = [], [], [], []
    t_start = time.perf_counter()
    for i in range(len(observations.subjects)):
        times = np.unique(pad.times[i].numpy())
        vals, mask = pad.values[i].numpy()[: len(times)], pad.mask[i].numpy()[: len(times)]
        res = least_squares(_residuals, z0, bounds=(zlo, zhi), method="trf", x_scale="jac",
                            ftol=tol, xtol=tol, gtol=tol, diff_step=1e-6,
                            args=(observations, cols, to_x, pad, i, times, vals, mask, (method, rtol, atol)))
        out.append(to_x(res.x))
        costs.append(res.cost)
        nfev.append(res.nfev)
        ok.append(bool(res.success))
    seconds = time.perf_counter() - t_start
    return xr.Dataset(
        {"estimate": (("subject", "param"), np.array(out)), "cost": ("subject", np.array(costs)),
         "nfev": ("subject", np.array(nfev)), "success": ("subject", np.array(ok))},
        coords={"subject": list(observations.subjects), "param": list(params)},
        attrs={"seconds": seconds, "method": method, "rtol": rtol, "atol": atol, "tol": tol,
               "optimizer": "scipy.optimize.least_squares (trf, log coordinates, 2-point Jacobian)"})


def _residuals(z: np.ndarray, obs: Observations, cols: Any, to_x: Any, pad: Any, i: int,
               times: np.ndarray, vals: np.ndarray, mask: np.ndarray, solver: tuple) -> np.ndarray:
    system = obs.system
    theta = to_x(z)
    p = torch.tensor([system.defaults[n] for n in system.param_names], dtype=torch.float64)
    x0 = pad.x0[i].clone()
    for v, (kind, j) in zip(theta, cols):
        if kind == "p":
            p[j] = float(v)
        else:
            x0[j] = float(v)
    pt = p[None]

    def f(t: float, x: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(np.asarray(x, dtype=np.float64))[None]
        return system.vector_field(torch.tensor(t, dtype=torch.float64), xt, pt)[0].numpy()

    t0 = float(pad.t0[i])
    method, rtol, atol = solver
    sol = solve_ivp(f, (t0, float(times[-1])), x0.numpy(), method=method, t_eval=times, rtol=rtol, atol=atol)
    if not sol.success or sol.y.shape[1] != len(times):
        return np.full(int(mask.sum()), 1e6)
    x = torch.from_numpy(sol.y.T.copy())[None]                     # (1, T, dim)
    y = obs.observe(x, p[None]).detach().numpy()[0]                # (T, K)
    return (y - vals)[mask]
