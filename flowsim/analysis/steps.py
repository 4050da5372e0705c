"""Error versus number of composed jumps over one fixed horizon (the often U-shaped curve)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..errors import TimeGridError
from ..maps import FlowMapLike, check_flowmap_like
from ..metrics import check_quantiles, metric_attrs, normalised_error, relative_error, summarise_errors
from ._maps import (
    check_horizon,
    check_step_counts,
    compose,
    result_attrs,
    time_units,
    warn_outside_range,
)
from ._reference import SNAP_RTOL, load_reference

__all__ = ["error_vs_steps"]


def error_vs_steps(
    flowmap: FlowMapLike,
    reference: Any,
    horizon: float,
    n_steps: Sequence[int] | None = None,
    *,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
) -> xr.Dataset:
    """Error at ``t0 + horizon`` when the horizon is covered by N equal composed jumps.

    Few long jumps suffer from the map's error on long jumps, many short ones from
    accumulated per-jump error: the curve is often U-shaped, and the whole of it is reported.
    Every trajectory starts at its first stored state; the end is the stored state nearest to
    ``t0 + horizon`` (each trajectory uses its own stored time, so no interpolation enters).

    Arguments
    ---------
    flowmap:
        Any :class:`flowsim.FlowMapLike` (see :mod:`flowsim.analysis` for what is called).
    reference:
        Held-out reference trajectories (:class:`flowsim.Solution` or store Dataset); failed
        trajectories are skipped.
    horizon:
        Time covered (system time units); must be stored in the reference (within 5 %, or to
        the nearest stored time on a shared grid).
    n_steps:
        Jump counts N. Default ``N0·(1, 2, 4, 8, 16, 32)``, ``N0`` the smallest power of two
        with ``horizon/N0 ≤ max_jump``. Explicit counts whose jumps exceed ``max_jump`` are refused.
    quantiles:
        Quantile levels reported besides the median.

    Returns
    -------
    xarray.Dataset
        Coordinates ``n_steps``, ``quantile``, ``jump(n_steps)``; variables
        ``median_relative_error``, ``median_normalised_error`` (``n_steps``), their
        ``…_quantiles(n_steps, quantile)`` and ``wall_time(n_steps)`` (seconds for the batch);
        ``attrs["best_n_steps"]`` is the N with the lowest median relative error.

    Raises
    ------
    TimeGridError
        Non-positive horizon, a horizon beyond the stored span or not stored, or jumps beyond
        the map's ``max_jump``.
    CheckpointError, ShapeError
        The reference belongs to another system or has the wrong dimension.
    ConfigError
        Bad step counts or quantiles.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.analysis import ExactFlowMap, error_vs_steps
    >>> sho = flowsim.get_system("harmonic_oscillator")
    >>> ref = flowsim.reference_solve(sho, sho.sample_initial(8, 0), torch.linspace(0, 6, 61))
    >>> ds = error_vs_steps(ExactFlowMap(sho), ref, horizon=6.0, n_steps=(1, 2, 4))
    >>> bool(ds.median_relative_error.max() < 1e-6)
    True
    """
    system = check_flowmap_like(flowmap)
    q = check_quantiles(quantiles)
    h = check_horizon(horizon)
    ref = load_reference(reference, system)
    warn_outside_range(flowmap, ref.p)
    if h > ref.span * (1 + 1e-9) + (SNAP_RTOL * h if not ref.shared_grid else 0.25 * ref.min_gap):
        raise TimeGridError(
            f"error_vs_steps: horizon {h:.4g} exceeds the stored reference span {ref.span:.4g}; "
            "use a shorter horizon or a longer reference"
        )
    target = ref.t[:, :1] + h
    idx = (ref.t - target).abs().argmin(dim=1)
    got = ref.t[torch.arange(ref.n), idx] - ref.t[:, 0]
    tol = SNAP_RTOL * h if not ref.shared_grid else min(SNAP_RTOL * h, 0.5 * ref.min_gap)
    keep = ((got - h).abs() <= tol) & (idx > 0)
    if not bool(keep.any()):
        raise TimeGridError(
            f"error_vs_steps: no trajectory stores a state {h:.4g} after its start (within {SNAP_RTOL:.0%}); "
            "choose a horizon on the stored grid"
        )
    rows = keep.nonzero().flatten()
    s, t = ref.t[rows, 0], ref.t[rows, idx[rows]]
    x0, x_end, p = ref.x[rows, 0], ref.x[rows, idx[rows]], ref.p[rows]
    h_used = float((t - s).max())
    counts = check_step_counts(n_steps, h, flowmap, "error_vs_steps")

    med: dict[str, list[float]] = {"relative_error": [], "normalised_error": []}
    qs: dict[str, list[list[float]]] = {"relative_error": [], "normalised_error": []}
    wall = []
    for n in counts:
        t_start = time.perf_counter()
        pred = compose(flowmap, x0, s, t, n, p)
        wall.append(time.perf_counter() - t_start)
        for name, err in (("relative_error", relative_error(pred, x_end)),
                          ("normalised_error", normalised_error(pred, x_end, ref.sigma))):
            m, v = summarise_errors(err, q)
            med[name].append(m)
            qs[name].append(v)

    units = time_units(system)
    ds = xr.Dataset(coords={
        "n_steps": ("n_steps", np.asarray(counts), {"long_name": "number of composed jumps N"}),
        "quantile": ("quantile", np.asarray(q)),
    })
    ds.coords["jump"] = ("n_steps", h / np.asarray(counts, dtype=np.float64),
                         {"units": units, "long_name": "jump size horizon / N"})
    for name in med:
        ds[f"median_{name}"] = ("n_steps", np.asarray(med[name]), metric_attrs(name))
        ds[f"{name}_quantiles"] = (("n_steps", "quantile"), np.asarray(qs[name]), metric_attrs(name))
    ds["wall_time"] = ("n_steps", np.asarray(wall),
                       {"units": "s", "description": "flow-map time for the batch"})
    rel = np.asarray(med["relative_error"])
    best = int(np.asarray(counts)[np.argmin(np.where(np.isfinite(rel), rel, np.inf))]) if rel.size else -1
    ds.attrs.update(result_attrs(
        "error_vs_steps", system, flowmap, horizon=h, horizon_used_max=h_used, best_n_steps=best,
        sigma=ref.sigma.tolist(), n_reference_trajectories=int(rows.numel()),
        n_reference_skipped=ref.n_skipped,
    ))
    return ds
