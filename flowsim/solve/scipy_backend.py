"""Per-trajectory solves with ``scipy.integrate.solve_ivp`` (Radau, BDF, LSODA, …)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from ..errors import FlowsimError
from ..systems.base import ODESystem
from ..systems.checks import vector_field_failed
from .options import SolverOptions
from .status import Status

__all__ = ["solve_scipy"]
_IMPLICIT = ("Radau", "BDF", "LSODA")


class _TooManySteps(Exception):
    pass


def _one(
    system: ODESystem, x0: np.ndarray, p: Tensor, t: np.ndarray, method: str,
    rtol: float, atol: float, max_nfe: int,
) -> tuple[np.ndarray, Status, int]:
    p1 = p[None]
    count = [0]

    def guarded(call, tt: float, y: np.ndarray) -> np.ndarray:
        try:
            return call()
        except (_TooManySteps, FlowsimError):
            raise
        except Exception as err:  # the user's vector field (or its Jacobian) raised
            raise vector_field_failed(system, err, tt, y[None], p1, f" during the solve at t={tt:g}") \
                from err

    def fun(tt: float, y: np.ndarray) -> np.ndarray:
        count[0] += 1
        if count[0] > max_nfe:
            raise _TooManySteps
        with torch.no_grad():
            yt = torch.from_numpy(y)[None]
            tt_ = torch.tensor(tt, dtype=torch.float64)
            return guarded(lambda: system.vector_field(tt_, yt, p1)[0].numpy(), tt, y)

    def jac(tt: float, y: np.ndarray) -> np.ndarray:
        tt_ = torch.tensor(tt, dtype=torch.float64)
        return guarded(lambda: torch.func.jacrev(lambda yy: system.vector_field(tt_, yy[None], p1)[0])(
            torch.from_numpy(y)).numpy(), tt, y)

    kwargs = {"jac": jac} if method in _IMPLICIT else {}
    if t.size == 1:
        return x0[None].copy(), Status.OK, 0
    try:
        with np.errstate(all="ignore"):
            res = solve_ivp(fun, (t[0], t[-1]), x0, method=method, t_eval=t, rtol=rtol,
                            atol=atol, **kwargs)
    except _TooManySteps:
        return np.full((t.size, x0.size), np.nan), Status.MAX_STEPS, count[0]
    except FlowsimError:
        raise
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as err:  # inside scipy, e.g. a
        # NaN Jacobian in Radau's LU: a failed trajectory, not a crash of the ensemble
        msg = str(err).lower()
        code = Status.NONFINITE if "nan" in msg or "inf" in msg else Status.SOLVER_ERROR
        return np.full((t.size, x0.size), np.nan), code, count[0]
    if res.status != 0 or res.y.shape[1] != t.size:
        msg = str(res.message).lower()
        code = Status.STEP_UNDERFLOW if "step size" in msg else Status.SOLVER_ERROR
        return np.full((t.size, x0.size), np.nan), code, count[0]
    y = res.y.T
    if not np.isfinite(y).all():
        return np.full_like(y, np.nan), Status.NONFINITE, count[0]
    return y, Status.OK, count[0]


def solve_scipy(
    system: ODESystem, x0: Tensor, p: Tensor, t: Tensor, options: SolverOptions,
) -> tuple[Tensor, Tensor, Tensor, dict]:
    """Solve each trajectory separately in float64 with ``solve_ivp``; analytic Jacobians
    (by ``torch.func.jacrev``) for the implicit methods. Returns ``(x, status, nfe, stats)``."""
    n, dim = x0.shape
    xs = x0.detach().cpu().to(torch.float64).numpy()
    ps = p.detach().cpu().to(torch.float64)
    ts = t.detach().cpu().to(torch.float64).numpy()
    out = np.full((n, ts.shape[-1], dim), np.nan)
    status = np.zeros(n, dtype=np.int8)
    nfe = np.zeros(n, dtype=np.int64)
    method, rtol, atol = options.method, options.rtol, options.atol
    max_nfe = 20 * options.max_steps  # implicit steps take several evaluations each
    for i in range(n):
        ti = ts if ts.ndim == 1 else ts[i]
        out[i], code, nfe[i] = _one(system, xs[i], ps[i], ti, method, rtol, atol, max_nfe)
        status[i] = int(code)
    stats = {"nfe_total": int(nfe.sum()), "solves": n, "failed_solves": int((status != 0).sum())}
    to = {"device": x0.device}
    return (torch.from_numpy(out).to(dtype=x0.dtype, **to), torch.from_numpy(status).to(**to),
            torch.from_numpy(nfe).to(**to), stats)
