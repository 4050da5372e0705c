"""Work-precision: error versus wall time and evaluations, flow map against real solvers."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from .._utils import with_keywords
from ..errors import ConfigError, SolverError
from ..solve import Solution, SolverOptions, torchode_available
from ..systems.base import ODESystem
from . import _timing as S
from ._maps import (
    as_states,
    check_horizon,
    check_step_counts,
    map_device,
    match_system,
    params_for,
    result_attrs,
    time_units,
    warn_outside_range,
)
from ._reference import final_states
from .metrics import metric_attrs, normalised_error, relative_error, summarise_errors

__all__ = ["SOLVERS", "Sweep", "work_precision"]

#: Solvers :func:`work_precision` knows; ``"torchode"`` runs only where it is installed.
SOLVERS = ("dopri5", "bosh3", "rk4", "implicit_adams", "scipy_lsoda", "scipy_radau", "scipy_bdf",
           "torchode")
#: scipy's implicit methods. By default each solves the whole batch as one stacked system with a
#: block-diagonal Jacobian (sparse for Radau/BDF, banded for LSODA), their fastest fair form where
#: the batch shares its fast scales (one solve_ivp per trajectory was 30-45x slower on 64 states);
#: Sweep(scipy_stacked=False) solves one trajectory at a time (relaxation oscillators)
_SCIPY = {"scipy_lsoda": "LSODA", "scipy_radau": "Radau", "scipy_bdf": "BDF"}


@dataclass(frozen=True)
class Sweep:
    """What :func:`work_precision` sweeps and how hard it tries: frozen and validated once.

    Attributes
    ----------
    n_jumps:
        Flow-map jump counts (default ``N0·(1, 2, 4, …, 32)`` with ``horizon/N0 ≤ max_jump``).
    tolerances:
        Adaptive solvers' sweep, each used as ``rtol = atol``.
    rk4_steps:
        Fixed-step sweep of rk4 and torchdiffeq's ``implicit_adams``: equal steps over the horizon.
    solvers:
        Any of :data:`SOLVERS` (default: all but ``implicit_adams``, torchdiffeq's implicit
        option, a fixed-step Adams–Moulton corrector solved by fixed-point iteration, for stiff
        comparisons). ``"torchode"`` (dopri5) is skipped, and listed in
        ``attrs["skipped_solvers"]``, where ``import torchode`` fails.
    scipy_stacked:
        How scipy's methods (LSODA, Radau, BDF) solve the batch. ``True`` (default): as one
        stacked system with a block-diagonal Jacobian (banded for LSODA, sparse for Radau/BDF),
        their fastest form where the batch shares its fast scales (Robertson: 30-45x faster
        than one solve per trajectory). ``False``: one ``solve_ivp`` per trajectory, the fair
        form where every trajectory has fast events of its own at its own times (a relaxation
        oscillator such as Van der Pol at μ = 1000: a stacked solve shares one step size, so it
        would step through every trajectory's jumps).
    n_scipy:
        With ``scipy_stacked=False``: solve and time the first ``n_scipy`` states one by one and
        scale the wall time up to the batch (the solves are independent, so the time is linear
        in the number of states); their errors are those of these states (``n_timed``,
        ``scaled`` in the result). Default (``None``): every state. Ignored, with a warning,
        for the stacked form, which always solves the whole batch.
    n_reference:
        Measure errors on the first ``n_reference`` states only (default all); timing always
        uses the whole batch. Useful where the tight reference is expensive (stiff systems).
    repeats:
        Timed runs per setting (the minimum is reported).
    solver_dtype:
        Dtype of the torch solvers (float64 default: tight tolerances need it).
    max_steps:
        Step limit of the adaptive solvers; a run that hits it counts as failed.
    max_seconds:
        Effort cap per solver: sweeps run from the loosest setting to the tightest, and once
        one run of a solver takes longer than this (an explicit solver on a stiff system, scipy
        on a big batch), its tighter settings are skipped and listed in
        ``attrs["truncated_sweeps"]``. ``None``: no cap.
    device:
        Device of the torch solvers (default: the flow map's, so both run on the same
        hardware); scipy always runs on the CPU.
    max_failed_solves:
        Failed sub-solves a torch solver may spend isolating the states that make it fail
        (bisection, as :func:`flowsim.reference_solve` does), so that one underflowing state
        costs that state and not the whole batch; the retries are part of the timed run, as
        they would be for a user. ``0``: a failure fails the whole batch.

    Examples
    --------
    >>> from flowsim.analysis import Sweep
    >>> Sweep(tolerances=(1e-6, 1e-3), solvers=("dopri5",)).tolerances
    (1e-06, 0.001)
    """

    n_jumps: Sequence[int] | None = None
    tolerances: Sequence[float] = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
    rk4_steps: Sequence[int] = (4, 8, 16, 32, 64, 128, 256)
    solvers: Sequence[str] = tuple(s for s in SOLVERS if s != "implicit_adams")
    scipy_stacked: bool = True
    n_scipy: int | None = None
    n_reference: int | None = None
    repeats: int = 3
    solver_dtype: torch.dtype = torch.float64
    max_steps: int = 100_000
    max_seconds: float | None = 120.0
    device: torch.device | str | None = None
    max_failed_solves: int = 64

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "tolerances", tuple(_positive(self.tolerances, "tolerances", float)))
        set_(self, "rk4_steps", tuple(_positive(self.rk4_steps, "rk4_steps", int)))
        if isinstance(self.solvers, str):
            raise ConfigError(f"solvers must be a sequence of names; got the string {self.solvers!r}")
        unknown = [s for s in self.solvers if s not in SOLVERS]
        if unknown:
            raise SolverError(f"unknown solver(s) {unknown}; choose from {SOLVERS}")
        set_(self, "solvers", tuple(self.solvers))
        if not isinstance(self.scipy_stacked, bool):
            raise ConfigError(f"scipy_stacked must be True or False; got {self.scipy_stacked!r}")
        if self.n_scipy is not None:
            k = self.n_scipy
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ConfigError(f"n_scipy must be a positive number of states or None; got {k!r}")
            if self.scipy_stacked:
                warnings.warn("Sweep(n_scipy=…) is ignored where scipy solves the batch stacked "
                              "(scipy_stacked=True, the default): pass scipy_stacked=False to solve one "
                              "trajectory at a time on n_scipy states", UserWarning, stacklevel=3)
        for name in ("repeats", "max_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer; got {v!r}")
        mf = self.max_failed_solves
        if isinstance(mf, bool) or not isinstance(mf, int) or mf < 0:
            raise ConfigError(f"max_failed_solves must be a non-negative integer; got {mf!r}")
        ms = self.max_seconds
        if ms is not None and not (isinstance(ms, (int, float)) and ms > 0):
            raise ConfigError(f"max_seconds must be a positive number of seconds or None; got {ms!r}")


def _as_sweep(sweep: Sweep | None, options: dict[str, Any]) -> Sweep:
    """``sweep`` with ``options`` (its fields as keywords) applied; unknown names refused."""
    return with_keywords(Sweep, sweep, options, what="work_precision", error=ConfigError)


def work_precision(
    flowmap: Any,
    system: ODESystem | str | None,
    x0: Tensor,
    p: Any = None,
    horizon: float | None = None,
    sweep: Sweep | None = None,
    *,
    reference: Solution | Tensor | None = None,
    training_time: float | None = None,
    t0: float = 0.0,
    **sweep_options: Any,
) -> xr.Dataset:
    """Error against cost for the flow map at N jumps and for solvers over their sweeps.

    All methods integrate the same batch of states over ``[t0, t0 + horizon]`` in this
    process, under ``torch.no_grad``, each warmed up once and timed as the minimum of
    ``repeats`` runs. Errors are those of the final state against a tight reference.

    What is swept, and how hard, is a :class:`Sweep`; its fields may also be given as keywords
    (``work_precision(fm, sys, x0, tolerances=(1e-4,), solvers=("dopri5",))``).

    Arguments
    ---------
    flowmap:
        Any :class:`flowsim.FlowMapLike`.
    system:
        The system (must be the map's; ``None`` takes the map's).
    x0:
        Initial states ``(batch, dim)``, ideally held out from training.
    p:
        Parameters: ``None`` (defaults), a dict, ``(n_params,)`` or ``(batch, n_params)``.
    horizon:
        Integration time (default: the system's timescale).
    sweep:
        The sweep (default ``Sweep()``); ``**sweep_options`` are its fields as keywords.
    reference:
        Precomputed reference: a :class:`flowsim.Solution` from ``t0`` to ``t0 + horizon`` of
        the first states of ``x0``, or their final states ``(m, dim)``. Default: torchdiffeq
        dopri5 at rtol = atol = 1e-10 in float64, or scipy Radau (same tolerances) for stiff systems.
    training_time:
        Seconds spent training the map; stored in ``attrs`` for
        :func:`speedup_at_matched_error`'s break-even count.
    t0:
        Start time.

    Returns
    -------
    xarray.Dataset
        Dimension ``setting``, with coordinates ``method``, ``setting_name`` (``n_jumps``,
        ``tolerance`` or ``n_steps``) and ``setting_value``; variables ``wall_time`` (s, whole
        batch), ``wall_time_per_trajectory``, ``nfe`` (evaluations per trajectory: network
        calls for the map, vector-field calls for solvers), ``median_relative_error``,
        ``median_normalised_error``, ``n_failed``, ``n_timed``, ``scaled``.

    Raises
    ------
    CheckpointError
        ``system`` or ``reference`` is not the map's system.
    TimeGridError
        Non-positive horizon, or a jump count giving jumps beyond the map's ``max_jump``.
    SolverError
        Unknown solver names.
    ConfigError, ShapeError
        Bad sweeps, counts or shapes.

    Examples
    --------
    >>> import flowsim
    >>> from flowsim.analysis import ExactFlowMap, work_precision
    >>> sho = flowsim.get_system("harmonic_oscillator")
    >>> ds = work_precision(ExactFlowMap(sho), sho, sho.sample_initial(8, 0), n_jumps=(1, 2),
    ...                     tolerances=(1e-4,), rk4_steps=(16,), solvers=("dopri5", "rk4"), repeats=1)
    >>> sorted(set(ds.method.values.tolist()))
    ['dopri5', 'flowmap', 'rk4']
    """
    sw = _as_sweep(sweep, sweep_options)
    n_jumps, tols, steps, solvers = sw.n_jumps, list(sw.tolerances), list(sw.rk4_steps), sw.solvers
    n_reference, repeats, solver_dtype = sw.n_reference, sw.repeats, sw.solver_dtype
    max_steps, max_seconds, device = sw.max_steps, sw.max_seconds, sw.device
    system = match_system(flowmap, system)
    x0 = as_states(system, x0)
    n, dim = x0.shape
    pp = params_for(system, p, n)
    warn_outside_range(flowmap, pp)
    h = check_horizon(system.timescale if horizon is None else horizon)
    t0 = float(t0)
    counts = check_step_counts(n_jumps, h, flowmap, "work_precision")
    if training_time is not None and not (float(training_time) >= 0 and math.isfinite(float(training_time))):
        raise ConfigError(f"training_time must be a non-negative number of seconds; got {training_time!r}")
    x_ref, ok_ref, sigma, ref_desc = final_states(system, x0, pp, t0, h, reference, n_reference)

    rows: list[dict[str, Any]] = []

    def add(method: str, setting: str, value: float, run: S.Run, scaled: bool) -> None:
        m = min(run.x.shape[0], x_ref.shape[0])
        use = ok_ref[:m]
        x, ref, ok = run.x[:m][use], x_ref[:m][use], run.ok[:m][use]
        failed = torch.tensor(math.inf, dtype=torch.float64)  # a failed run counts as infinitely wrong
        rel = torch.where(ok, relative_error(x, ref), failed)
        nrm = torch.where(ok, normalised_error(x, ref, sigma), failed)
        rows.append({
            "method": method, "setting_name": setting, "setting_value": float(value),
            "wall_time": run.wall_time, "nfe": run.nfe,
            "median_relative_error": summarise_errors(rel, ())[0],
            "median_normalised_error": summarise_errors(nrm, ())[0],
            "n_failed": int((~run.ok).sum()), "n_timed": run.n_timed, "scaled": scaled,
        })

    t1 = t0 + h
    S.run_flowmap(flowmap, x0, pp, t0, t1, counts[0], 1)  # warm-up
    for c in counts:
        add("flowmap", "n_jumps", c, S.run_flowmap(flowmap, x0, pp, t0, t1, c, repeats), False)
    dev = map_device(flowmap) if device is None else torch.device(device)
    common = {"dtype": solver_dtype, "device": dev, "max_failed_solves": sw.max_failed_solves}
    skipped: list[str] = []
    truncated: list[str] = []
    loose_first = sorted(tols, reverse=True)

    def sweep(solver: str, setting: str, values: list, run_one, scaled: bool = False) -> None:
        """Loosest to tightest; stop once a run is slower than the effort cap."""
        for i, v in enumerate(values):
            t_start = time.perf_counter()
            run = run_one(v)
            add(solver, setting, v, run, scaled)
            slow = max_seconds is not None and time.perf_counter() - t_start > max_seconds
            if slow and i + 1 < len(values):
                truncated.append(f"{solver}: stopped after {setting}={v:g} (one run took longer than "
                                 f"max_seconds={max_seconds:g} s); skipped {values[i + 1:]}")
                return

    def adaptive(backend: str, method: str) -> Any:
        return lambda tol: SolverOptions(backend=backend, method=method, rtol=tol, atol=tol,
                                         max_steps=max_steps)

    def scipy(method: str) -> Any:
        return lambda tol: SolverOptions(backend="scipy", method=method, rtol=tol, atol=tol,
                                         max_steps=max_steps, stacked=sw.scipy_stacked)

    k_scipy = n if sw.scipy_stacked or sw.n_scipy is None else min(sw.n_scipy, n)
    xs, ps = x0[:k_scipy], pp[:k_scipy]  # the states scipy solves one by one (all, when stacked)

    def fixed(method: str) -> Any:
        return lambda k: SolverOptions(method=method, n_steps=k, max_steps=max_steps)

    for solver in solvers:
        if solver == "torchode" and not torchode_available():
            skipped.append("torchode (not installed: pip install torchode)")
            continue
        if solver in _SCIPY:
            setting, values = "tolerance", loose_first
            make = scipy(_SCIPY[solver])
            if k_scipy < n:  # one solve per trajectory, on the first k_scipy states, scaled up
                S.run_solver(system, xs, ps, t0, t1, make(values[0]), repeats=1, **common)  # warm-up
                sweep(solver, setting, values, lambda v, make=make: S.run_solver(
                    system, xs, ps, t0, t1, make(v), repeats=repeats, batch=n, **common), scaled=True)
                continue
        elif solver in ("rk4", "implicit_adams"):  # torchdiffeq's fixed-step methods
            setting, values, make = "n_steps", steps, fixed(solver)
        else:  # dopri5, bosh3 (torchdiffeq) or torchode's dopri5
            setting, values = "tolerance", loose_first
            make = adaptive("torchode", "dopri5") if solver == "torchode" else adaptive("torchdiffeq", solver)
        S.run_solver(system, x0, pp, t0, t1, make(values[0]), repeats=1, **common)  # warm-up
        sweep(solver, setting, values, lambda v, make=make: S.run_solver(
            system, x0, pp, t0, t1, make(v), repeats=repeats, **common))
    return _dataset(rows, n, system, flowmap, dict(
        horizon=h, t0=t0, n_states=n, n_reference=int(x_ref.shape[0]),
        n_reference_failed=int((~ok_ref).sum()),
        reference=ref_desc, sigma=sigma.tolist(),
        scipy_note=("scipy LSODA, Radau and BDF solve the whole batch as one stacked system with a "
                    "block-diagonal Jacobian (banded for LSODA, sparse for Radau/BDF; shared steps, "
                    "error in the batch's RMS norm)" if sw.scipy_stacked else
                    f"scipy LSODA, Radau and BDF solve one trajectory at a time (exact Jacobian) on the "
                    f"first {k_scipy} states, their time scaled to all {n}"),
        tolerance_convention="rtol = atol = tolerance", solver_dtype=str(solver_dtype).replace("torch.", ""),
        timing=f"minimum of {repeats} run(s) after one warm-up per method; torch.no_grad; one process",
        failure_isolation=(f"torch solvers bisect a failing batch (at most {sw.max_failed_solves} failed "
                           "sub-solves, timed) so that only the failing states count as failed"),
        torch_threads=torch.get_num_threads(), device=str(map_device(flowmap)), solver_device=str(dev),
        skipped_solvers=skipped, truncated_sweeps=truncated,
        max_seconds=float("nan") if max_seconds is None else float(max_seconds),
        training_time=float("nan") if training_time is None else float(training_time),
    ))


def _positive(values: Sequence[Any], name: str, kind: type) -> list:
    try:
        out = sorted({kind(v) for v in values})
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a sequence of positive numbers; got {values!r}") from None
    if not out or not all(v > 0 and math.isfinite(v) for v in out):
        raise ConfigError(f"{name} must be a non-empty sequence of positive numbers; got {values!r}")
    return out


def _dataset(rows: list[dict[str, Any]], n: int, system: ODESystem, flowmap: Any, extra: dict) -> xr.Dataset:
    def col(key: str) -> np.ndarray:
        return np.array([r[key] for r in rows])

    ds = xr.Dataset(coords={
        "method": ("setting", col("method").astype(str)),
        "setting_name": ("setting", col("setting_name").astype(str)),
        "setting_value": ("setting", col("setting_value").astype(np.float64)),
    })
    units = time_units(system)
    ds["wall_time"] = ("setting", col("wall_time"), {"units": "s", "description": "wall time, whole batch"})
    ds["wall_time_per_trajectory"] = ("setting", col("wall_time") / n, {"units": "s"})
    ds["nfe"] = ("setting", col("nfe"), {"description": (
        "evaluations per trajectory: network calls for the flow map, vector-field calls for solvers "
        "(a batched call counts once for each trajectory)")})
    for name in ("relative_error", "normalised_error"):
        ds[f"median_{name}"] = ("setting", col(f"median_{name}"), metric_attrs(name))
    ds["n_failed"] = ("setting", col("n_failed"),
                      {"description": "states whose run failed (their error counts as inf)"})
    ds["n_timed"] = ("setting", col("n_timed"), {"description": "states actually run and timed"})
    ds["scaled"] = ("setting", col("scaled").astype(bool),
                    {"description": "wall time scaled up from n_timed states"})
    ds.attrs.update(result_attrs("work_precision", system, flowmap, horizon_units=units, **extra))
    return ds
