"""Solves with ``scipy.integrate.solve_ivp`` (Radau, BDF, LSODA, …): one per trajectory, or the
whole batch stacked into one system with a sparse block-diagonal Jacobian (``stacked=True``)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from ..errors import FlowsimError
from ..systems.base import ODESystem
from ..systems.checks import vector_field_failed
from ..systems.numpy_rhs import NumpyVectorField
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
    # the system's own numpy forms where it has them (no torch call per evaluation)
    numpy_form, pn = isinstance(system, NumpyVectorField), p1.detach().cpu().numpy()

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
        if numpy_form:
            return guarded(lambda: system.vector_field_numpy(tt, y[None], pn)[0], tt, y)
        with torch.no_grad():
            yt = torch.from_numpy(y)[None]
            tt_ = torch.tensor(tt, dtype=torch.float64)
            return guarded(lambda: system.vector_field(tt_, yt, p1)[0].numpy(), tt, y)

    def jac(tt: float, y: np.ndarray) -> np.ndarray:
        if numpy_form:
            return guarded(lambda: system.jacobian_numpy(tt, y[None], pn)[0], tt, y)
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


def _stacked(
    system: ODESystem, x0: np.ndarray, p: Tensor, t: np.ndarray, options: SolverOptions,
) -> tuple[np.ndarray, Status, int]:
    """The whole batch as one system of ``n·dim`` states: one vector-field call per evaluation,
    and for the implicit methods a block-diagonal Jacobian: sparse (BSR) for Radau and BDF,
    LSODA's packed band form (bandwidth ``dim - 1`` on each side) for LSODA."""
    from scipy.sparse import bsr_matrix

    n, dim = x0.shape
    count = [0]
    max_nfe = 20 * options.max_steps

    def fun(tt: float, y: np.ndarray) -> np.ndarray:
        count[0] += 1
        if count[0] > max_nfe:
            raise _TooManySteps
        with torch.no_grad():
            yt = torch.from_numpy(y).view(n, dim)
            return system.vector_field(torch.tensor(tt, dtype=torch.float64), yt, p).reshape(-1).numpy()

    def one(tt: Tensor, y: Tensor, pp: Tensor) -> Tensor:
        return system.vector_field(tt, y[None], pp[None])[0]

    jac_one = torch.func.vmap(torch.func.jacrev(one, argnums=1), in_dims=(None, 0, 0))
    index, pointers = np.arange(n), np.arange(n + 1)

    def jac(tt: float, y: np.ndarray):
        blocks = jac_one(torch.tensor(tt, dtype=torch.float64), torch.from_numpy(y).view(n, dim), p)
        return bsr_matrix((blocks.detach().numpy(), index, pointers), shape=(n * dim, n * dim))

    # LSODA takes a banded Jacobian: a block-diagonal one is banded with dim - 1 diagonals on
    # each side, packed as jac_packed[uband + i - j, j] = J[i, j] (scipy.linalg.solve_banded)
    a, b = np.meshgrid(np.arange(dim), np.arange(dim), indexing="ij")
    band_rows = np.broadcast_to((dim - 1) + a - b, (n, dim, dim))  # built once, not per call
    band_cols = np.arange(n)[:, None, None] * dim + b[None]

    def jac_banded(tt: float, y: np.ndarray) -> np.ndarray:
        blocks = jac_one(torch.tensor(tt, dtype=torch.float64), torch.from_numpy(y).view(n, dim), p)
        packed = np.zeros((2 * dim - 1, n * dim))
        packed[band_rows, band_cols] = blocks.detach().numpy()
        return packed

    if options.method in ("Radau", "BDF"):
        kwargs = {"jac": jac}
    elif options.method == "LSODA":
        kwargs = {"jac": jac_banded, "lband": dim - 1, "uband": dim - 1}
    else:
        kwargs = {}
    try:
        with np.errstate(all="ignore"):
            res = solve_ivp(fun, (t[0], t[-1]), x0.reshape(-1), method=options.method, t_eval=t,
                            rtol=options.rtol, atol=options.atol, **kwargs)
    except _TooManySteps:
        return np.full((n, t.size, dim), np.nan), Status.MAX_STEPS, count[0]
    if res.status != 0 or res.y.shape[1] != t.size:
        code = Status.STEP_UNDERFLOW if "step size" in str(res.message).lower() else Status.SOLVER_ERROR
        return np.full((n, t.size, dim), np.nan), code, count[0]
    return res.y.reshape(n, dim, t.size).transpose(0, 2, 1), Status.OK, count[0]


def solve_scipy(
    system: ODESystem, x0: Tensor, p: Tensor, t: Tensor, options: SolverOptions,
) -> tuple[Tensor, Tensor, Tensor, dict]:
    """Solve in float64 with ``solve_ivp``: each trajectory separately, or (``options.stacked``)
    the batch as one stacked system on a shared time grid; analytic Jacobians (by
    ``torch.func.jacrev``) for the implicit methods. Returns ``(x, status, nfe, stats)``."""
    n, dim = x0.shape
    if options.stacked and t.ndim == 1 and t.numel() > 1:
        xs = x0.detach().cpu().to(torch.float64).numpy()
        ps = p.detach().cpu().to(torch.float64)
        y, code, count = _stacked(system, xs, ps, t.detach().cpu().to(torch.float64).numpy(), options)
        finite = np.isfinite(y).all(axis=(1, 2))
        status = np.where(finite, int(code), int(Status.NONFINITE) if code == Status.OK else int(code))
        y[~finite] = np.nan
        to = {"device": x0.device}
        stats = {"nfe_total": int(count), "solves": 1, "failed_solves": int(code != Status.OK)}
        return (torch.from_numpy(np.ascontiguousarray(y)).to(dtype=x0.dtype, **to),
                torch.from_numpy(status.astype(np.int8)).to(**to),
                torch.full((n,), int(count), dtype=torch.int64, device=x0.device), stats)
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
