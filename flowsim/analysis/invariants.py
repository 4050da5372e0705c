"""Drift of conserved quantities (energy, mass, …) along composed flow-map jumps."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from ..errors import ConfigError
from ..maps import FlowMapLike
from ..metrics import check_quantiles, summarise_errors
from ..systems.base import ODESystem
from ._maps import (
    as_states,
    check_horizon,
    check_step_counts,
    compose,
    match_system,
    params_for,
    result_attrs,
    time_units,
    warn_outside_range,
)

__all__ = ["invariant_drift"]

_REL = "relative drift |I(X_k) − I(x_0)| / |I(x_0)| of the conserved quantity after k jumps"
_ABS = "absolute drift |I(X_k) − I(x_0)| of the conserved quantity after k jumps"


def invariant_drift(
    flowmap: FlowMapLike,
    system: ODESystem | str | None,
    x0: Tensor,
    p: Any = None,
    horizon: float | None = None,
    n_steps: Sequence[int] | None = None,
    *,
    t0: float = 0.0,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
) -> xr.Dataset:
    """Drift of each conserved quantity over ``[t0, t0 + horizon]`` covered by N equal jumps.

    Reports the drift after the last jump against the jump size ``horizon/N`` (and N), and
    the drift after each jump k = 1…N (how it accumulates with the number of jumps). The
    invariant at the start is taken at ``x0`` as the map sees it (cast to its dtype), so
    only the map's drift is measured.

    Arguments
    ---------
    flowmap:
        Any :class:`flowsim.FlowMapLike` (see :mod:`flowsim.analysis` for what is called).
    system:
        The system (must be the map's; ``None`` takes the map's); it must define ``invariants``.
    x0:
        Initial states ``(batch, dim)``.
    p:
        Parameters: ``None`` (defaults), a dict, ``(n_params,)`` or ``(batch, n_params)``.
    horizon:
        Time covered (default: the system's timescale).
    n_steps:
        Jump counts N (default ``N0·(1, 2, 4, …, 32)`` with ``horizon/N0 ≤ max_jump``);
        explicit counts whose jumps exceed the map's ``max_jump`` are refused.
    t0:
        Start time.
    quantiles:
        Quantile levels of the final drift.

    Returns
    -------
    xarray.Dataset
        Coordinates ``invariant``, ``n_steps``, ``jump(n_steps)``, ``step`` (0…max N),
        ``quantile``; variables ``final_relative_drift(invariant, n_steps)`` (median),
        ``final_relative_drift_quantiles(invariant, n_steps, quantile)``,
        ``final_absolute_drift(invariant, n_steps)`` (median) and
        ``relative_drift(invariant, n_steps, step)`` (median after each jump; NaN past N).

    Raises
    ------
    ConfigError
        The system conserves nothing (no ``invariant_names``); bad counts or quantiles.
    CheckpointError
        ``system`` is not the map's.
    TimeGridError
        Non-positive horizon; jumps beyond the map's ``max_jump``.
    ShapeError
        Bad ``x0``.

    Examples
    --------
    >>> import flowsim
    >>> from flowsim.analysis import ExactFlowMap, invariant_drift
    >>> sho = flowsim.get_system("harmonic_oscillator")
    >>> ds = invariant_drift(ExactFlowMap(sho), sho, sho.sample_initial(8, 0), n_steps=(1, 4))
    >>> bool(ds.final_relative_drift.max() < 1e-10)
    True
    """
    system = match_system(flowmap, system)
    if not system.invariant_names:
        raise ConfigError(f"{system.name} defines no conserved quantities (invariant_names is empty)")
    q = check_quantiles(quantiles)
    x0 = as_states(system, x0)
    n = x0.shape[0]
    pp = params_for(system, p, n)
    warn_outside_range(flowmap, pp)
    h = check_horizon(system.timescale if horizon is None else horizon)
    counts = check_step_counts(n_steps, h, flowmap, "invariant_drift")
    names = list(system.invariant_names)
    x_start = x0.to(flowmap.dtype).to(torch.float64)
    inv0 = system.invariants(x_start, pp)
    s = torch.full((n,), float(t0), dtype=torch.float64)
    t = s + h
    n_max = max(counts)
    shape = (len(names), len(counts))
    final_rel, final_abs = np.full(shape, np.nan), np.full(shape, np.nan)
    final_q = np.full(shape + (len(q),), np.nan)
    along = np.full(shape + (n_max + 1,), np.nan)
    for c, N in enumerate(counts):
        states = compose(flowmap, x0, s, t, N, pp, keep=True)  # (n, N + 1, dim)
        inv = system.invariants(states, pp)
        for i, name in enumerate(names):
            ref = inv0[name][:, None]
            absd = (inv[name] - ref).abs()
            reld = absd / ref.abs().clamp_min(torch.finfo(torch.float64).tiny)
            final_rel[i, c], final_q[i, c] = summarise_errors(reld[:, -1], q)
            final_abs[i, c] = summarise_errors(absd[:, -1], ())[0]
            along[i, c, : N + 1] = [summarise_errors(reld[:, k], ())[0] for k in range(N + 1)]

    ds = xr.Dataset(coords={
        "invariant": ("invariant", names),
        "n_steps": ("n_steps", np.asarray(counts), {"long_name": "number of composed jumps N"}),
        "step": ("step", np.arange(n_max + 1), {"long_name": "jumps taken k"}),
        "quantile": ("quantile", np.asarray(q)),
    })
    ds.coords["jump"] = ("n_steps", h / np.asarray(counts, dtype=np.float64),
                         {"units": time_units(system), "long_name": "jump size horizon / N"})
    rel_attrs = {"description": _REL, "units": "1"}
    ds["final_relative_drift"] = (("invariant", "n_steps"), final_rel, rel_attrs)
    ds["final_relative_drift_quantiles"] = (("invariant", "n_steps", "quantile"), final_q, rel_attrs)
    ds["final_absolute_drift"] = (("invariant", "n_steps"), final_abs, {"description": _ABS})
    ds["relative_drift"] = (("invariant", "n_steps", "step"), along, rel_attrs)
    ds.attrs.update(result_attrs(
        "invariant_drift", system, flowmap, horizon=h, t0=float(t0), n_states=n,
        drift_relative=_REL, drift_absolute=_ABS,
    ))
    return ds
