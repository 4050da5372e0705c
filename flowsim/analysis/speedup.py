"""Reading a work-precision Dataset: speed-up at matched error and break-even trajectories."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ConfigError

__all__ = ["MAX_MATCHED_ERROR", "MatchedSpeedup", "break_even_trajectories", "speedup_at_matched_error"]


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
    #: the matched setting is the cheapest of every setting of the solver swept: a looser, cheaper
    #: one (not swept) might match too, so the speed-up is an upper bound
    solver_loosest: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (NaN stays NaN; write JSON with ``allow_nan`` or map it to null)."""
        return {**asdict(self), "summary": self.summary()}

    def summary(self) -> str:
        """One sentence in plain words: how much faster (or slower) at what error, or why unmatched.

        Never prints a speed-up of "0.0x": a map slower than the solver is said to be slower,
        by how much.

        Examples
        --------
        >>> from flowsim.analysis import MatchedSpeedup
        >>> r = MatchedSpeedup("dopri5", "relative_error", 1e-3, 1.0, 0.01, True, "tolerance", 1e-4,
        ...                    8e-4, 0.002, 0.2, float("inf"), "")
        >>> r.summary().split(" the flow map ")[1]
        'is 5.0x slower than dopri5 (tolerance=0.0001, its error 8.0e-04)'
        """
        if not self.matched:
            return f"no speed-up over {self.solver} is claimed: {self.note}"
        jumps = f"{self.flowmap_n_jumps:g} jump" + ("" if self.flowmap_n_jumps == 1 else "s")
        where = (f"at matched median {self.metric.replace('_', ' ')} {self.flowmap_error:.1e} ({jumps}) "
                 f"the flow map is")
        how = (f"{self.solver} ({self.solver_setting_name}={self.solver_setting_value:g}, its error "
               f"{self.solver_error:.1e})")
        bound = ""
        if self.solver_loosest:
            bound = (f"; that is the loosest {self.solver} setting swept and already more accurate, "
                     "so a looser one might match at less cost: read the speed-up as an upper bound")
        if self.speedup >= 1:
            return f"{where} {self.speedup:.1f}x faster than {how}{bound}"
        return f"{where} {1 / self.speedup:.1f}x slower than {how}{bound}"


#: A median error above this is not "matched": a map that wrong is not usable as a surrogate.
MAX_MATCHED_ERROR = 0.1


def speedup_at_matched_error(
    ds: xr.Dataset, solver: str = "dopri5", *, metric: str = "relative_error", at: str = "best_error",
    max_error: float = MAX_MATCHED_ERROR,
) -> MatchedSpeedup:
    """Speed-up of the flow map over ``solver`` at matched median error.

    With ``at="best_error"`` (default) takes the flow-map setting with the lowest median error,
    then the cheapest (lowest wall time) setting of ``solver`` whose median error is at least as
    low, and reports the ratio of their wall times. With ``at="best_speedup"`` does the same
    for every flow-map setting (jump count) and reports the one with the largest speed-up: the
    jump count a user who wants the solver's accuracy at the least cost would choose. With
    ``at="one_jump"`` compares the map's single jump over the horizon. With
    ``attrs["training_time"]`` set, also the break-even number of trajectories
    (:func:`break_even_trajectories`).

    What "matched" means: the solver setting's median error is at most the map's, and the
    setting failed on no state (a ``n_failed`` column, where the Dataset has one: a setting that
    fails anywhere is not a match, whatever its median). A map whose median error exceeds
    ``max_error`` (10 % by default) is not matched at all: it is not usable there.

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
        ``"best_error"``, ``"best_speedup"`` or ``"one_jump"`` (see above).
    max_error:
        The largest median error of the map for which a speed-up is reported.

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
    if at not in ("best_error", "best_speedup", "one_jump"):
        raise ConfigError(f"at must be 'best_error', 'best_speedup' or 'one_jump'; got {at!r}")
    if not (isinstance(max_error, (int, float)) and max_error > 0):
        raise ConfigError(f"max_error must be a positive number; got {max_error!r}")
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
    sv_all = sv
    if "n_failed" in ds.variables:  # a setting that failed on any state is not a match (if every
        # setting failed, e.g. an explicit solver on a stiff system, nothing is matched below)
        failed = np.asarray(ds["n_failed"].values, dtype=np.float64)
        sv = sv[~(failed[sv] > 0)]
    training = float(ds.attrs.get("training_time", math.nan))
    n_states = float(ds.attrs.get("n_states", math.nan))
    nan = math.nan
    fm_ok = fm[np.isfinite(err[fm])]
    if fm_ok.size == 0:
        return MatchedSpeedup(solver, metric, nan, nan, nan, False, None, nan, nan, nan, nan, nan,
                              "the flow map has no finite error in ds")
    best = fm_ok[np.argmin(err[fm_ok])]
    if at == "one_jump":
        one = fm_ok[value[fm_ok] == 1]
        if one.size == 0:
            raise ConfigError("ds has no flow-map row at 1 jump; include 1 in n_jumps")
        best = one[0]
    if at == "best_speedup":  # the usable flow-map setting whose matched speed-up is largest
        def matched_speedup(i: int) -> float:
            ok = sv[np.isfinite(err[sv]) & (err[sv] <= err[i])]
            return float(wall[ok].min() / wall[i]) if ok.size and wall[i] > 0 else -math.inf

        usable = fm_ok[err[fm_ok] <= max_error]
        gains = [matched_speedup(int(i)) for i in usable]
        if gains and max(gains) > -math.inf:
            best = usable[int(np.argmax(gains))]
    fm_err, fm_time = float(err[best]), float(wall[best])
    if fm_err > max_error:
        return MatchedSpeedup(
            solver, metric, fm_err, float(value[best]), fm_time, False, None, nan, nan, nan, nan, nan,
            f"the flow map's median {metric.replace('_', ' ')} {fm_err:.2g} exceeds {max_error:g}: "
            "it is not usable as a surrogate here (train longer, or evaluate where it was trained)",
        )
    good = sv[np.isfinite(err[sv]) & (err[sv] <= fm_err)]
    if good.size == 0:
        finite = sv[np.isfinite(err[sv])]
        if finite.size:
            why = (f"no {solver} setting in the sweep that succeeded on every state reached the flow "
                   f"map's median {metric.replace('_', ' ')} {fm_err:.3g} (its most accurate: "
                   f"{float(err[finite].min()):.3g}): every setting that succeeded was less accurate "
                   "than the map"
                   + (f" and {sv_all.size - sv.size} setting(s) failed on some state"
                      if sv_all.size > sv.size else "")
                   + "; extend the sweep to tighter settings")
        else:
            why = (f"every {solver} setting in the sweep failed on some state (as an explicit solver "
                   "does on a stiff system): there is no setting to match the flow map against")
        return MatchedSpeedup(
            solver, metric, fm_err, float(value[best]), fm_time, False, None, nan, nan, nan, nan, nan,
            why)
    pick = good[np.argmin(wall[good])]
    s_time = float(wall[pick])
    loosest = bool(s_time <= float(np.nanmin(wall[sv_all])))
    speed = s_time / fm_time if fm_time > 0 else math.inf
    be = nan
    if math.isfinite(training) and math.isfinite(n_states) and n_states > 0:
        be = break_even_trajectories(training, fm_time / n_states, s_time / n_states)
    return MatchedSpeedup(
        solver, metric, fm_err, float(value[best]), fm_time, True, str(names[pick]), float(value[pick]),
        float(err[pick]), s_time, speed, be,
        f"cheapest {solver} setting with median {metric} <= the flow map's "
        f"{'best' if at == 'best_error' else f'at {value[best]:g} jumps'} ({fm_err:.3g}), "
        "failing on no state",
        loosest,
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
