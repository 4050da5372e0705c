"""``flowsim.reference_solve``: reference trajectories with torchdiffeq, scipy or torchode."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .._utils import check_int
from ..errors import ConfigError, FailedTrajectoryWarning, SolverError
from ..systems.base import ODESystem
from ..systems.checks import call_vector_field, check_batched
from ..systems.registry import get_system
from .options import DEFAULT_ATOL, DEFAULT_RTOL, SolverOptions, solver_options
from .scipy_backend import solve_scipy
from .solution import Solution
from .torch_backend import solve_torchdiffeq
from .torchode_backend import solve_torchode
from .validate import check_initial, check_times

__all__ = ["reference_solve", "integrate", "DEFAULT_RTOL", "DEFAULT_ATOL"]


def reference_solve(
    system: ODESystem | str,
    x0: Tensor,
    t: Tensor,
    p: Tensor | Mapping[str, float] | None = None,
    solver: SolverOptions | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    chunk_size: int = 1024,
    max_failed_solves: int = 256,
    **solver_keywords: Any,
) -> Solution:
    """Solve ``dx/dt = b(t, x; p)`` for a batch of initial states.

    The solver is a :class:`~flowsim.SolverOptions` (``solver=``), passed unchanged to its
    backend; the keywords ``method=``, ``rtol=``, ``atol=``, ``backend=``, ``max_steps=``,
    ``step_size=``, ``n_steps=`` are a convenience that builds one (give one form, not both).

    Arguments
    ---------
    system:
        An :class:`~flowsim.ODESystem` or a catalogue name.
    x0:
        Initial states, ``(batch, dim)``, at ``t[0]`` (or ``t[:, 0]``).
    t:
        Output times: shared ``(time,)`` (strictly monotone) or per trajectory ``(batch, time)``
        (each strictly increasing).
    p:
        Parameters: ``None`` (the system's defaults), a dict of overrides, a ``(n_params,)``
        vector, or per-sample ``(batch, n_params)``.
    solver:
        Backend, method, tolerances and step limit. Default: torchdiffeq dopri5 at rtol 1e-8,
        atol 1e-10, or, for a system marked stiff, the implicit scipy Radau at the same
        tolerances (an explicit method would crawl or underflow through its fast transient).
    dtype:
        Floating dtype of the solve, float64 by default.
    chunk_size:
        torchdiffeq shares one adaptive step across its whole batch, so one hard sample slows
        every other: the batch is solved in chunks of this many trajectories.
    max_failed_solves:
        A failing chunk is bisected (torchode: solved again without its failed trajectories)
        to isolate its failing trajectories; after this many failed sub-solves, remaining
        failing blocks are flagged whole.
    **solver_keywords:
        The keyword form of ``solver``: fields of :class:`~flowsim.SolverOptions`
        (``method``, ``rtol``, ``atol``, ``backend``, ``max_steps``, ``step_size``, ``n_steps``).

    Returns
    -------
    Solution
        ``x`` of shape ``(batch, time, dim)``; failed trajectories are NaN and flagged in
        ``status``; ``nfe`` and ``wall_time`` report the cost.

    Raises
    ------
    ShapeError
        ``x0`` not ``(batch, dim)`` or not finite; ``p`` of the wrong shape.
    TimeGridError
        ``t`` not 1-D/2-D, not finite or not strictly monotone.
    ParameterError
        Unknown parameter names or values outside their domain.
    SolverError
        Unknown backend or method, bad tolerances, or both ``solver`` and its keywords;
        ``chunk_size`` or ``max_failed_solves`` not a positive (non-negative) integer.
    VectorFieldError
        The system's vector field raises, or returns the wrong shape or dtype (checked on the
        first rows before the solve; the user's error chained), or mixes the samples of a batch.

    Warns
    -----
    FailedTrajectoryWarning
        Some trajectories failed: which rows (the first five of each status code) and why.
        Only a user's call warns; flowsim's own (ensembles, training data) keep the codes.

    Examples
    --------
    >>> import torch, flowsim
    >>> sys = flowsim.get_system("fitzhugh_nagumo")
    >>> x0 = sys.sample_initial(100, generator=0)
    >>> sol = flowsim.reference_solve(sys, x0, torch.linspace(0, 40, 81))
    >>> sol.x.shape
    torch.Size([100, 81, 2])
    >>> opts = flowsim.SolverOptions(method="bosh3", rtol=1e-6, atol=1e-8)
    >>> flowsim.reference_solve(sys, x0, torch.linspace(0, 40, 81), solver=opts).method
    'bosh3'
    """
    t_start = time.perf_counter()
    system = get_system(system) if isinstance(system, str) else system
    if not isinstance(system, ODESystem):
        raise ConfigError(
            f"system must be an ODESystem or a catalogue name, got {type(system).__name__}; "
            "wrap a plain function with flowsim.systems.from_callable"
        )
    opts = solver_options(solver, solver_keywords, system)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise SolverError(f"dtype must be a floating torch dtype, got {dtype}")
    x0 = check_initial(system, x0, dtype)
    batch = x0.shape[0]
    t = check_times(t, batch, dtype, x0.device)
    p_t = system.params_tensor(p, batch, dtype=dtype, device=x0.device)
    if system.stiff and opts.backend != "scipy" and not opts.is_fixed_step:
        warnings.warn(
            f"{system.name} is stiff: explicit {opts.method} may hit max_steps or underflow; "
            "SolverOptions.reference(system) (scipy Radau) is the reliable reference",
            stacklevel=2,
        )
    _probe(system, x0, t, p_t)
    sol = integrate(system, x0, t, p_t, opts, chunk_size=chunk_size, max_failed_solves=max_failed_solves)
    sol.wall_time = time.perf_counter() - t_start
    if not bool(sol.ok.all()) and not _called_from_flowsim():
        warnings.warn(_failures(system.name, sol.status), FailedTrajectoryWarning, stacklevel=2)
    return sol


def _probe(system: ODESystem, x0: Tensor, t: Tensor, p: Tensor) -> None:
    """One checked call of the vector field on the first rows before the solve, and the first
    row alone again: a user's function that raises, returns the wrong shape or dtype, or mixes
    the samples of a batch fails here with a VectorFieldError, not deep inside the solver."""
    k = min(x0.shape[0], 3)
    t0 = t[0] if t.ndim == 1 else t[:k, 0]
    with torch.no_grad():
        out = call_vector_field(system, t0, x0[:k], p[:k])
        if k > 1:
            check_batched(system, t0, x0[:k], p[:k], out, rows=1)


def _called_from_flowsim() -> bool:
    """Whether reference_solve's caller is flowsim itself (an ensemble chunk, training data,
    an analysis): those record the status codes, so only a user's own call warns."""
    import sys

    caller = sys._getframe(2).f_globals.get("__name__", "")
    return caller == "flowsim" or caller.startswith("flowsim.")


def _failures(name: str, status: Tensor, show: int = 5) -> str:
    """``"name: 2 of 8 trajectories failed …: NONFINITE rows [1, 5]; …"`` (first ``show`` rows)."""
    from .status import Status

    codes = status.cpu()
    parts = []
    for code in Status:
        if code == Status.OK:
            continue
        rows = (codes == int(code)).nonzero().flatten()
        if rows.numel():
            more = f" and {rows.numel() - show} more" if rows.numel() > show else ""
            parts.append(f"{code.name} rows {rows[:show].tolist()}{more}")
    n_bad = int((codes != 0).sum())
    return (f"{name}: {n_bad} of {codes.numel()} trajectories failed and are NaN in sol.x: "
            f"{'; '.join(parts)} (sol.status holds each row's flowsim.Status; NONFINITE: the "
            "vector field gave NaN/inf or the solution diverged; MAX_STEPS/STEP_UNDERFLOW: raise "
            "max_steps, or SolverOptions.reference(system) for a stiff system)")


def integrate(
    system: ODESystem,
    x0: Tensor,
    t: Tensor,
    p: Tensor,
    solver: SolverOptions,
    *,
    chunk_size: int | None = None,
    max_failed_solves: int = 256,
    check_finite: bool = True,
) -> Solution:
    """Run ``solver`` on already validated tensors: the unchecked path under :func:`reference_solve`.

    Nothing is converted or checked (as with :meth:`~flowsim.ODESystem.vector_field`): use it
    where the inputs are known to be right and the call is timed, as in
    :func:`flowsim.analysis.work_precision`.

    Arguments
    ---------
    system:
        The system.
    x0:
        Initial states ``(batch, dim)`` of the solve's dtype.
    t:
        A strictly monotone ``(time,)`` grid or increasing per-trajectory ``(batch, time)``
        grids, of ``x0``'s dtype and device.
    p:
        Parameters ``(batch, n_params)``, same dtype and device.
    solver:
        The :class:`~flowsim.SolverOptions`.
    chunk_size:
        Trajectories per batched solve (default: all at once).
    max_failed_solves:
        Failed sub-solves allowed while isolating failing trajectories (``0``: a failing
        chunk is flagged whole at once, as a single plain solve would fail).
    check_finite:
        Watch every vector-field evaluation for NaN/inf (torchdiffeq) so that divergence is
        reported as ``Status.NONFINITE``; off, only evaluations are counted (no host sync per
        evaluation: what a timing wants) and non-finite final states are still flagged.

    Returns
    -------
    Solution
        As from :func:`reference_solve`; ``wall_time`` covers this call.

    Examples
    --------
    >>> import torch, flowsim
    >>> sho = flowsim.get_system("harmonic_oscillator")
    >>> x0 = sho.sample_initial(4, generator=0).double()
    >>> t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    >>> opts = flowsim.SolverOptions(method="rk4", n_steps=10)
    >>> sol = flowsim.solve.integrate(sho, x0, t, sho.default_params(4, dtype=torch.float64), opts)
    >>> sol.stats["nfe_total"]
    40
    """
    t_start = time.perf_counter()
    if not isinstance(solver, SolverOptions):
        raise SolverError(f"solver must be a flowsim.SolverOptions; got {type(solver).__name__}")
    n = x0.shape[0]
    size = max(1, n) if chunk_size is None else chunk_size
    kw = {"chunk_size": check_int(size, "chunk_size", SolverError, integral_floats=True),
          "max_failed_solves": check_int(max_failed_solves, "max_failed_solves", SolverError, low=0,
                                                integral_floats=True)}
    with torch.no_grad():
        if solver.backend == "torchdiffeq":
            x, status, nfe, stats = solve_torchdiffeq(system, x0, p, t, solver, check_finite=check_finite,
                                                      **kw)
        elif solver.backend == "torchode":
            x, status, nfe, stats = solve_torchode(system, x0, p, t, solver, **kw)
        else:
            x, status, nfe, stats = solve_scipy(system, x0, p, t, solver)
    return Solution(
        t=t, x=x, p=p, status=status, nfe=nfe, wall_time=time.perf_counter() - t_start,
        system=system.name, method=solver.method, backend=solver.backend, rtol=solver.rtol,
        atol=solver.atol, stats=stats, solver=solver,
    )
