"""``flowsim.reference_solve``: reference trajectories with torchdiffeq or scipy."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, SolverError
from ..systems.base import ODESystem
from ..systems.registry import get_system
from .scipy_backend import SCIPY_METHODS, solve_scipy
from .solution import Solution
from .torch_backend import ADAPTIVE_METHODS, FIXED_METHODS, solve_torchdiffeq
from .validate import check_initial, check_times

__all__ = ["reference_solve", "DEFAULT_RTOL", "DEFAULT_ATOL"]

DEFAULT_RTOL = 1e-8
DEFAULT_ATOL = 1e-10
BACKENDS = ("torchdiffeq", "scipy")


def reference_solve(
    system: ODESystem | str,
    x0: Tensor,
    t: Tensor,
    p: Tensor | Mapping[str, float] | None = None,
    *,
    method: str | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
    backend: str = "torchdiffeq",
    dtype: torch.dtype = torch.float64,
    chunk_size: int = 1024,
    max_steps: int = 100_000,
    step_size: float | None = None,
    max_failed_solves: int = 256,
) -> Solution:
    """Solve ``dx/dt = b(t, x; p)`` for a batch of initial states.

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
    method:
        torchdiffeq: ``dopri5`` (default), ``dopri8``, ``bosh3``, ``fehlberg2``,
        ``adaptive_heun``, or fixed-step ``rk4``, ``euler``, ``midpoint``, … (with
        ``step_size``). scipy: ``Radau`` (default), ``BDF``, ``LSODA``, ``DOP853``, ``RK45``, ``RK23``.
    rtol, atol:
        Tolerances of the adaptive methods.
    backend:
        ``"torchdiffeq"`` (batched) or ``"scipy"`` (``solve_ivp`` per trajectory; for stiff
        systems and validation).
    dtype:
        Floating dtype of the solve, float64 by default.
    chunk_size:
        torchdiffeq shares one adaptive step across its whole batch, so one hard sample slows
        every other: the batch is solved in chunks of this many trajectories.
    max_steps:
        Step limit per (chunk) solve; trajectories exceeding it get ``Status.MAX_STEPS``.
    step_size:
        Step for fixed-step methods.
    max_failed_solves:
        A failing chunk is bisected to isolate its failing trajectories; after this many
        failed sub-solves, remaining failing blocks are flagged whole.

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
        Unknown backend or method, or bad tolerances.

    Examples
    --------
    >>> import torch, flowsim
    >>> sys = flowsim.get_system("fitzhugh_nagumo")
    >>> x0 = sys.sample_initial(100, generator=0)
    >>> sol = flowsim.reference_solve(sys, x0, torch.linspace(0, 40, 81))
    >>> sol.x.shape
    torch.Size([100, 81, 2])
    """
    t_start = time.perf_counter()
    system = get_system(system) if isinstance(system, str) else system
    if not isinstance(system, ODESystem):
        raise ConfigError(
            f"system must be an ODESystem or a catalogue name, got {type(system).__name__}; "
            "wrap a plain function with flowsim.systems.from_callable"
        )
    if backend not in BACKENDS:
        raise SolverError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if not (isinstance(rtol, (int, float)) and isinstance(atol, (int, float))
            and rtol > 0 and atol > 0):
        raise SolverError(f"rtol and atol must be positive numbers; got rtol={rtol}, atol={atol}")
    if int(chunk_size) < 1 or int(max_steps) < 1:
        raise SolverError("chunk_size and max_steps must be positive integers")
    if not dtype.is_floating_point:
        raise SolverError(f"dtype must be a floating dtype, got {dtype}")

    x0 = check_initial(system, x0, dtype)
    batch = x0.shape[0]
    t = check_times(t, batch, dtype, x0.device)
    p_t = system.params_tensor(p, batch, dtype=dtype, device=x0.device)

    if backend == "torchdiffeq":
        method = method or "dopri5"
        options: dict[str, Any] = {}
        if method in ADAPTIVE_METHODS:
            options["max_num_steps"] = int(max_steps)
        elif method in FIXED_METHODS:
            if step_size is None:
                raise SolverError(
                    f"fixed-step method {method!r} needs step_size=…; or use an adaptive "
                    f"method {ADAPTIVE_METHODS}"
                )
            options["step_size"] = float(step_size)
        else:
            raise SolverError(
                f"unknown torchdiffeq method {method!r}; choose one of "
                f"{ADAPTIVE_METHODS + FIXED_METHODS}, or backend='scipy' with {SCIPY_METHODS}"
            )
        if system.stiff and method in ADAPTIVE_METHODS:
            warnings.warn(
                f"{system.name} is stiff: explicit {method} may hit max_steps or underflow; "
                "backend='scipy', method='Radau' is the reliable reference",
                stacklevel=2,
            )
        with torch.no_grad():
            x, status, nfe, stats = solve_torchdiffeq(
                system, x0, p_t, t, method=method, rtol=float(rtol), atol=float(atol),
                options=options, chunk_size=int(chunk_size),
                max_failed_solves=int(max_failed_solves),
            )
    else:
        method = method or "Radau"
        if method not in SCIPY_METHODS:
            raise SolverError(f"unknown scipy method {method!r}; choose one of {SCIPY_METHODS}")
        x, status, nfe, stats = solve_scipy(
            system, x0, p_t, t, method=method, rtol=float(rtol), atol=float(atol),
            max_steps=int(max_steps),
        )
    return Solution(
        t=t, x=x, p=p_t, status=status, nfe=nfe, wall_time=time.perf_counter() - t_start,
        system=system.name, method=method, backend=backend, rtol=float(rtol), atol=float(atol),
        stats=stats,
    )
