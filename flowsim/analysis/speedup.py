"""Reading a work-precision Dataset: speed-up at matched error and break-even trajectories."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ConfigError

__all__ = ["MatchedSpeedup", "break_even_trajectories", "speedup_at_matched_error"]


@dataclass(frozen=True)
class MatchedSpeedup:
    """The flow map's best error and what the cheapest equally accurate solver setting costs.

    ``matched`` is False when no setting of the solver's sweep reached the flow map's error;
    then ``solver_*`` fields are NaN / None and ``speedup`` is NaN — never extrapolated.
    ``speedup`` > 1 means the flow map is faster. Times are for the whole batch (seconds).

    Examples
    --------
    See :func:`speedup_at_matched_error`, which returns one:

    >>> from flowsim.analysis import MatchedSpeedup
    >>> sorted(MatchedSpeedup.__dataclass_fields__)[:3]
    ['break_even_trajectories', 'flowmap_error', 'flowmap_n_jumps']
    """

    solver: str
    metric: str
    flowmap_error: float
    flowmap_n_jumps: float
    flowmap_wall_time: float
    matched: bool
    solver_setting_name: str | None
    solver_setting_value: float
    solver_error: float
    solver_wall_time: float
    speedup: float
    break_even_trajectories: float
    note: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (NaN stays NaN; write JSON with ``allow_nan`` or map it to null)."""
        return asdict(self)


def speedup_at_matched_error(
    ds: xr.Dataset, solver: str = "dopri5", *, metric: str = "relative_error", at: str = "best_error"
) -> MatchedSpeedup:
    """Speed-up of the flow map over ``solver`` at matched median error.

    With ``at="best_error"`` (default) takes the flow-map setting with the lowest median error,
    then the cheapest (lowest wall time) setting of ``solver`` whose median error is at least as
    low, and reports the ratio of their wall times. With ``at="best_speedup"`` does the same
    for every flow-map setting (jump count) and reports the one with the largest speed-up: the
    jump count a user who wants the solver's accuracy at the least cost would choose. With
    ``attrs["training_time"]`` set, also the break-even number of trajectories
    (:func:`break_even_trajectories`).

    Arguments
    ---------
    ds:
        A Dataset from :func:`work_precision` (or one with the same layout: dimension
        ``setting``, coordinates ``method``, ``setting_name``, ``setting_value``, variables
        ``wall_time`` and ``median_<metric>``; optional ``attrs["n_states"]``, ``attrs["training_time"]``).
    solver:
        The ``method`` to compare with (``"dopri5"``, ``"torchode"``, ``"scipy_lsoda"``, …).
    metric:
        ``"relative_error"`` or ``"normalised_error"``.
    at:
        ``"best_error"`` or ``"best_speedup"`` (see above).

    Returns
    -------
    MatchedSpeedup
        With ``matched=False`` and NaN speed-up when no setting of the sweep is as accurate.

    Raises
    ------
    ConfigError
        Unknown metric or ``at``, a Dataset without the expected layout, or ``solver``/flow-map
        rows missing.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset(
    ...     {"wall_time": ("setting", [0.01, 0.5, 2.0]),
    ...      "median_relative_error": ("setting", [1e-4, 1e-3, 1e-5])},
    ...     coords={"method": ("setting", ["flowmap", "dopri5", "dopri5"]),
    ...             "setting_name": ("setting", ["n_jumps", "tolerance", "tolerance"]),
    ...             "setting_value": ("setting", [1.0, 1e-3, 1e-6])})
    >>> r = speedup_at_matched_error(ds)
    >>> r.solver_setting_value, r.speedup
    (1e-06, 200.0)
    """
    if metric not in ("relative_error", "normalised_error"):
        raise ConfigError(f"metric must be 'relative_error' or 'normalised_error'; got {metric!r}")
    if at not in ("best_error", "best_speedup"):
        raise ConfigError(f"at must be 'best_error' or 'best_speedup'; got {at!r}")
    var = f"median_{metric}"
    needed = ["method", "setting_value", "wall_time", var]
    missing = [k for k in needed if k not in ds.variables]
    if missing:
        raise ConfigError(f"ds lacks {missing}; pass the Dataset returned by work_precision")
    method = np.asarray(ds["method"].values).astype(str)
    err = np.asarray(ds[var].values, dtype=np.float64)
    wall = np.asarray(ds["wall_time"].values, dtype=np.float64)
    value = np.asarray(ds["setting_value"].values, dtype=np.float64)
    names = (np.asarray(ds["setting_name"].values).astype(str) if "setting_name" in ds.variables
             else np.full(method.shape, "setting"))
    fm = np.flatnonzero(method == "flowmap")
    sv = np.flatnonzero(method == solver)
    if fm.size == 0:
        raise ConfigError("ds has no 'flowmap' rows")
    if sv.size == 0:
        have = sorted(set(method.tolist()) - {"flowmap"})
        raise ConfigError(f"ds has no rows for solver {solver!r}; it has {have}")
    training = float(ds.attrs.get("training_time", math.nan))
    n_states = float(ds.attrs.get("n_states", math.nan))
    nan = math.nan
    fm_ok = fm[np.isfinite(err[fm])]
    if fm_ok.size == 0:
        return MatchedSpeedup(solver, metric, nan, nan, nan, False, None, nan, nan, nan, nan, nan,
                              "the flow map has no finite error in ds")
    best = fm_ok[np.argmin(err[fm_ok])]
    if at == "best_speedup":  # the flow-map setting whose matched speed-up is largest
        def matched_speedup(i: int) -> float:
            ok = sv[np.isfinite(err[sv]) & (err[sv] <= err[i])]
            return float(wall[ok].min() / wall[i]) if ok.size and wall[i] > 0 else -math.inf

        gains = [matched_speedup(int(i)) for i in fm_ok]
        if max(gains) > -math.inf:
            best = fm_ok[int(np.argmax(gains))]
    fm_err, fm_time = float(err[best]), float(wall[best])
    good = sv[np.isfinite(err[sv]) & (err[sv] <= fm_err)]
    if good.size == 0:
        finite = sv[np.isfinite(err[sv])]
        best_solver = f"{float(err[finite].min()):.3g}" if finite.size else "no finite error"
        return MatchedSpeedup(
            solver, metric, fm_err, float(value[best]), fm_time, False, None, nan, nan, nan, nan, nan,
            f"no {solver} setting in the sweep reached the flow map's median {metric} {fm_err:.3g} "
            f"(its most accurate: {best_solver}); extend the sweep to tighter settings",
        )
    pick = good[np.argmin(wall[good])]
    s_time = float(wall[pick])
    speed = s_time / fm_time if fm_time > 0 else math.inf
    be = nan
    if math.isfinite(training) and math.isfinite(n_states) and n_states > 0:
        be = break_even_trajectories(training, fm_time / n_states, s_time / n_states)
    return MatchedSpeedup(
        solver, metric, fm_err, float(value[best]), fm_time, True, str(names[pick]), float(value[pick]),
        float(err[pick]), s_time, speed, be,
        f"cheapest {solver} setting with median {metric} <= the flow map's "
        f"{'best' if at == 'best_error' else f'at {value[best]:g} jumps'} ({fm_err:.3g})",
    )


def break_even_trajectories(
    training_time: float, t_flowmap_per_traj: float, t_solver_per_traj: float
) -> float:
    """Trajectories after which training the flow map has paid for itself.

    ``training_time / (t_solver − t_flowmap)``; ``inf`` when the flow map is not faster per
    trajectory (it never pays off).

    Arguments
    ---------
    training_time:
        Seconds spent training (and simulating its data, if you count it).
    t_flowmap_per_traj, t_solver_per_traj:
        Seconds per trajectory for the flow map and the solver at matched error.

    Returns
    -------
    float
        The break-even number of trajectories (may be ``inf``).

    Raises
    ------
    ConfigError
        Negative or non-finite inputs.

    Examples
    --------
    >>> round(break_even_trajectories(60.0, 1e-6, 1e-3))
    60060
    >>> break_even_trajectories(60.0, 1e-3, 1e-4)
    inf
    """
    vals = {"training_time": training_time, "t_flowmap_per_traj": t_flowmap_per_traj,
            "t_solver_per_traj": t_solver_per_traj}
    for name, v in vals.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a non-negative number of seconds; got {v!r}") from None
        if not (f >= 0 and math.isfinite(f)):
            raise ConfigError(f"{name} must be a non-negative finite number of seconds; got {v!r}")
    gain = float(t_solver_per_traj) - float(t_flowmap_per_traj)
    if not gain > 0:
        return math.inf
    return float(training_time) / gain
