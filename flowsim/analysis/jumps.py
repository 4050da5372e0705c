"""Accuracy versus jump size: single jumps between stored reference states."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from .._utils import check_int
from ..errors import ConfigError, TimeGridError
from ..maps import FlowMapLike, check_flowmap_like
from ..metrics import check_quantiles, metric_attrs, normalised_error, relative_error, summarise_errors
from ._maps import (
    check_jumps_trained,
    evaluate,
    result_attrs,
    time_units,
    warn_outside_range,
)
from ._reference import SNAP_RTOL, Reference, load_reference, make_generator

__all__ = ["error_vs_jump"]


def error_vs_jump(
    flowmap: FlowMapLike,
    reference: Any,
    jumps: Sequence[float] | None = None,
    *,
    n_jumps: int = 12,
    n_starts: int | None = 8,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
    per_start: bool = False,
    per_param: bool = False,
    n_bins: int = 4,
    from_start: bool = False,
    generator: torch.Generator | int | None = 0,
) -> xr.Dataset:
    """Error of single jumps ``X(t_i, t_j, x_i)`` against stored states ``x_j``, per jump size.

    Every jump starts at a stored reference state and ends at a stored later state, so the
    error is the flow map's alone (no interpolation of the reference). Failed reference
    trajectories (``status != 0``) are skipped. Both error metrics are reported. Jumps start at
    random stored times, or with ``from_start`` at each trajectory's initial state, where
    transients are (often the harder case: a map trained on long trajectories sees few of them).

    Arguments
    ---------
    flowmap:
        Any :class:`flowsim.FlowMapLike` (see :mod:`flowsim.analysis` for what is called).
    reference:
        Held-out reference trajectories: a :class:`flowsim.Solution` (shared ``(time,)`` or
        per-trajectory times) or a store Dataset ``x(trajectory, time, state)``, ``params``,
        ``status``, coordinate ``time`` (or ``t(trajectory, time)``).
    jumps:
        Jump sizes (system time units). Default: ``n_jumps`` log-spaced sizes from 1 % of the
        system's timescale (or the smallest stored gap) to the largest jump both available in
        the reference and inside the map's ``max_jump``. On a shared grid each size is snapped
        to the nearest stored gap (within 5 %); the ``jump`` coordinate holds the value used.
    n_jumps:
        Number of default jump sizes.
    n_starts:
        Random start times per trajectory and jump size (``None``: every possible start).
    quantiles:
        Quantile levels reported besides the median.
    per_start, per_param:
        Also report medians in ``n_bins`` equal-width bins of the start time, and of each
        parameter's value (marginally, one parameter at a time).
    n_bins:
        Number of bins for ``per_start`` / ``per_param``.
    from_start:
        Start every jump at the first stored state of each trajectory (``n_starts`` is then
        ignored).
    generator:
        Seed or generator for the choice of start times.

    Returns
    -------
    xarray.Dataset
        Coordinates ``jump``, ``quantile``; variables ``median_relative_error(jump)``,
        ``median_normalised_error(jump)``, ``relative_error_quantiles(jump, quantile)``,
        ``normalised_error_quantiles(jump, quantile)``, ``n_samples(jump)``; with
        ``per_start``: ``…_by_start(jump, start_bin)`` and ``start_time(start_bin)``; with
        ``per_param``: ``…_by_param(jump, param, param_bin)`` and ``param_value(param, param_bin)``.
        ``attrs`` name the system, units and the meaning of each metric.

    Raises
    ------
    CheckpointError
        The reference belongs to another system or state layout.
    ShapeError
        The reference has the wrong state dimension.
    TimeGridError
        A requested jump is longer than the map's ``max_jump`` or the stored span, shorter than
        the smallest stored gap, or matches no pair of stored times.
    ConfigError
        Bad quantiles, counts, or ``per_param`` on a system without parameters.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.analysis import ExactFlowMap, error_vs_jump
    >>> sho = flowsim.get_system("harmonic_oscillator")
    >>> ref = flowsim.reference_solve(sho, sho.sample_initial(16, 0), torch.linspace(0, 6, 61))
    >>> ds = error_vs_jump(ExactFlowMap(sho), ref, n_jumps=4)
    >>> bool(ds.median_relative_error.max() < 1e-6)
    True
    """
    system = check_flowmap_like(flowmap)
    q = check_quantiles(quantiles)
    check_int(n_jumps, "n_jumps", ConfigError)
    check_int(n_bins, "n_bins", ConfigError)
    if n_starts is not None:
        check_int(n_starts, "n_starts", ConfigError)
    if per_param and system.n_params == 0:
        raise ConfigError(f"per_param=True but {system.name} has no parameters")
    ref = load_reference(reference, system)
    warn_outside_range(flowmap, ref.p)
    sizes, explicit = resolve_jumps(flowmap, ref, jumps, n_jumps, "error_vs_jump")
    gen = make_generator(generator)

    rows: list[dict[str, Tensor]] = []
    used: list[float] = []
    for size in sizes:
        traj, i, j = ref.pairs(size, n_starts, gen, from_start=from_start)
        if traj.numel() == 0:
            if explicit:
                raise TimeGridError(
                    f"error_vs_jump: no pair of stored reference times is {size:.4g} apart (within "
                    f"{SNAP_RTOL:.0%}); choose jumps matching the stored grid"
                )
            continue
        s, t = ref.t[traj, i], ref.t[traj, j]
        pred = evaluate(flowmap, ref.x[traj, i], s, t, ref.p[traj])
        target = ref.x[traj, j]
        rows.append({"rel": relative_error(pred, target), "nrm": normalised_error(pred, target, ref.sigma),
                     "s": s, "p": ref.p[traj]})
        used.append(size)
    if not rows:
        raise TimeGridError("error_vs_jump: no jump size matched a pair of stored reference times")

    ds = xr.Dataset(coords={"jump": ("jump", np.asarray(used)), "quantile": ("quantile", np.asarray(q))})
    for key, name in (("rel", "relative_error"), ("nrm", "normalised_error")):
        summ = [summarise_errors(r[key], q) for r in rows]
        ds[f"median_{name}"] = ("jump", np.array([m for m, _ in summ]), metric_attrs(name))
        ds[f"{name}_quantiles"] = (("jump", "quantile"), np.array([v for _, v in summ]), metric_attrs(name))
    ds["n_samples"] = ("jump", np.array([r["rel"].numel() for r in rows]), {"description": "jumps evaluated"})
    if per_start:
        _add_by_start(ds, rows, ref, n_bins)
    if per_param:
        _add_by_param(ds, rows, ref, system.param_names, n_bins)
    ds["jump"].attrs.update({"units": time_units(system), "long_name": "jump size Δ = t − s"})
    ds.attrs.update(result_attrs(
        "error_vs_jump", system, flowmap, sigma=ref.sigma.tolist(), n_reference_trajectories=ref.n,
        n_reference_skipped=ref.n_skipped, n_starts=-1 if n_starts is None else int(n_starts),
        starts="initial states" if from_start else "random stored times",
    ))
    return ds


def resolve_jumps(
    flowmap: FlowMapLike, ref: Reference, jumps: Sequence[float] | None, n_jumps: int, what: str
) -> tuple[list[float], bool]:
    """Jump sizes to evaluate (snapped to the stored grid) and whether they were given."""
    hi_avail = ref.span
    if jumps is None:
        hi = min(hi_avail, float(flowmap.max_jump))
        lo = min(max(0.01 * float(flowmap.system.timescale), ref.min_gap), hi)
        grid = np.geomspace(lo, hi, int(n_jumps)) if hi > lo else np.array([hi])
        return sorted(set(ref.snap(grid.tolist(), strict=False))), False
    arr = np.asarray(jumps, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise TimeGridError(f"{what}: jumps must be positive finite numbers; got {jumps!r}")
    check_jumps_trained(flowmap, arr.tolist(), what)
    too_long = arr[arr > hi_avail * (1 + 1e-9)]
    if too_long.size:
        raise TimeGridError(
            f"{what}: jump(s) {too_long.tolist()} exceed the longest stored reference span {hi_avail:.4g}; "
            "use a longer reference or shorter jumps"
        )
    too_short = arr[arr < ref.min_gap * (1 - SNAP_RTOL)]
    if too_short.size:
        raise TimeGridError(
            f"{what}: jump(s) {too_short.tolist()} are shorter than the smallest stored gap "
            f"{ref.min_gap:.4g}; store the reference more densely"
        )
    return sorted(set(ref.snap(arr.tolist()))), True


def _edges(values: Tensor, n_bins: int) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        hi = lo + (abs(lo) if lo else 1.0) * 1e-9
    return np.linspace(lo, hi, n_bins + 1)


def _binned(rows: list[dict[str, Tensor]], key: str, values: list[Tensor], edges: np.ndarray) -> np.ndarray:
    """Median of ``rows[k][key]`` in each bin of ``values[k]``: ``(n_jumps, n_bins)``."""
    n_bins = len(edges) - 1
    out = np.full((len(rows), n_bins), np.nan)
    for k, (r, v) in enumerate(zip(rows, values)):
        idx = np.clip(np.searchsorted(edges, v.numpy(), side="right") - 1, 0, n_bins - 1)
        for b in range(n_bins):
            sel = torch.from_numpy(idx == b)
            if bool(sel.any()):
                out[k, b] = summarise_errors(r[key][sel], (0.5,))[0]
    return out


def _counts(values: list[Tensor], edges: np.ndarray) -> np.ndarray:
    n_bins = len(edges) - 1
    return np.stack([np.bincount(np.clip(np.searchsorted(edges, v.numpy(), side="right") - 1, 0, n_bins - 1),
                                 minlength=n_bins) for v in values])


def _add_by_start(ds: xr.Dataset, rows: list[dict[str, Tensor]], ref: Reference, n_bins: int) -> None:
    edges = _edges(ref.t, n_bins)
    starts = [r["s"] for r in rows]
    centre = 0.5 * (edges[:-1] + edges[1:])
    ds.coords["start_time"] = ("start_bin", centre, {"long_name": "start time s (bin centre)"})
    ds.coords["start_time_low"] = ("start_bin", edges[:-1])
    ds.coords["start_time_high"] = ("start_bin", edges[1:])
    for key, name in (("rel", "relative_error"), ("nrm", "normalised_error")):
        med = _binned(rows, key, starts, edges)
        ds[f"median_{name}_by_start"] = (("jump", "start_bin"), med, metric_attrs(name))
    ds["n_samples_by_start"] = (("jump", "start_bin"), _counts(starts, edges))


def _add_by_param(
    ds: xr.Dataset, rows: list[dict[str, Tensor]], ref: Reference, names: Sequence[str], n_bins: int
) -> None:
    rel, nrm, centres, counts = [], [], [], []
    for c in range(len(names)):
        edges = _edges(ref.p[:, c], n_bins)
        vals = [r["p"][:, c].contiguous() for r in rows]
        rel.append(_binned(rows, "rel", vals, edges))
        nrm.append(_binned(rows, "nrm", vals, edges))
        counts.append(_counts(vals, edges))
        centres.append(0.5 * (edges[:-1] + edges[1:]))
    ds.coords["param"] = ("param", list(names))
    ds.coords["param_value"] = (("param", "param_bin"), np.stack(centres),
                                {"long_name": "parameter value (bin centre)"})
    dims = ("jump", "param", "param_bin")
    ds["median_relative_error_by_param"] = (dims, np.stack(rel, axis=1), metric_attrs("relative_error"))
    ds["median_normalised_error_by_param"] = (dims, np.stack(nrm, axis=1), metric_attrs("normalised_error"))
    ds["n_samples_by_param"] = (dims, np.stack(counts, axis=1))
