"""Batched torchdiffeq solves with failure isolation by bisection."""

from __future__ import annotations

import torch
import torchdiffeq
from torch import Tensor

from ..errors import FlowsimError
from ..systems.base import ODESystem
from ..systems.checks import vector_field_failed
from .options import TORCHDIFFEQ_ADAPTIVE, SolverOptions
from .status import Status

__all__ = ["odeint_options", "solve_torchdiffeq"]


class _Failure(Exception):
    def __init__(self, code: Status, message: str, nfe: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.nfe = nfe


class _Counter:
    """Wraps the vector field ``b(t0 + t, y; p)`` (``t0``: per-trajectory start times, or
    ``None``); counts evaluations and (with ``check_finite``) remembers whether it saw non-finite
    values — a host sync per evaluation, which timings switch off. An exception of the vector
    field becomes a VectorFieldError naming the system (a ``try`` costs nothing when nothing
    is raised)."""

    def __init__(self, system: ODESystem, p: Tensor, t0: Tensor | None = None,
                 check_finite: bool = True) -> None:
        self.system, self.p, self.t0 = system, p, t0
        self.nfe = 0
        self.nonfinite = False
        self.check_finite = check_finite

    def __call__(self, t: Tensor, y: Tensor) -> Tensor:
        self.nfe += 1
        tt = t if self.t0 is None else self.t0 + t
        try:
            out = self.system.vector_field(tt, y, self.p)
        except FlowsimError:
            raise
        except Exception as err:
            raise vector_field_failed(self.system, err, tt, y, self.p, " during the solve") from err
        if self.check_finite and not self.nonfinite and not torch.isfinite(out).all():
            self.nonfinite = True
        return out


def odeint_options(options: SolverOptions) -> dict:
    """The ``rtol``, ``atol``, ``method`` and ``options`` keywords of ``torchdiffeq.odeint``."""
    opts: dict = {}
    if options.method in TORCHDIFFEQ_ADAPTIVE:
        opts["max_num_steps"] = int(options.max_steps)
    elif options.step_size is not None:
        opts["step_size"] = float(options.step_size)
    else:  # n_steps equal steps over the whole grid
        n = int(options.n_steps)

        def grid(func: object, y0: Tensor, t: Tensor) -> Tensor:
            return torch.linspace(float(t[0]), float(t[-1]), n + 1, dtype=t.dtype, device=t.device)

        opts["grid_constructor"] = grid
    return {"method": options.method, "rtol": options.rtol, "atol": options.atol, "options": opts}


def _classify(err: BaseException, counter: _Counter) -> Status:
    msg = str(err)
    if counter.nonfinite or "non-finite" in msg:
        return Status.NONFINITE
    if "max_num_steps" in msg:
        return Status.MAX_STEPS
    if "underflow" in msg:
        return Status.STEP_UNDERFLOW
    return Status.SOLVER_ERROR


def _odeint_block(
    system: ODESystem,
    x0: Tensor,
    p: Tensor,
    t: Tensor,
    kwargs: dict,
    check_finite: bool,
) -> tuple[Tensor, int]:
    """Solve one block; returns ``(x (batch, time, dim), nfe)`` or raises :class:`_Failure`."""
    if t.ndim == 1:
        counter = _Counter(system, p, None, check_finite)
        grid = t
    else:  # per-trajectory grids: shift each to start at 0 and solve on the union of offsets
        t0 = t[:, 0]
        offsets = t - t0[:, None]
        grid, inverse = torch.unique(offsets, sorted=True, return_inverse=True)
        counter = _Counter(system, p, t0, check_finite)
    if grid.numel() == 1:
        x = x0[:, None, :].expand(-1, t.shape[-1], -1).clone()
        return x, 0
    try:
        y = torchdiffeq.odeint(counter, x0, grid, **kwargs)
    except AssertionError as err:
        raise _Failure(_classify(err, counter), str(err), counter.nfe) from None
    except FlowsimError:
        raise
    except RuntimeError as err:
        if "max" in str(err).lower() or "iterations" in str(err):
            raise _Failure(Status.MAX_STEPS, str(err), counter.nfe) from None
        raise
    y = y.transpose(0, 1)  # (batch, grid, dim)
    if check_finite and not torch.isfinite(y).all():
        raise _Failure(Status.NONFINITE, "non-finite values in the solution", counter.nfe)
    if t.ndim == 2:
        y = torch.gather(y, 1, inverse[:, :, None].expand(-1, -1, y.shape[-1]))
    return y, counter.nfe


def solve_torchdiffeq(
    system: ODESystem,
    x0: Tensor,
    p: Tensor,
    t: Tensor,
    options: SolverOptions,
    *,
    chunk_size: int,
    max_failed_solves: int,
    check_finite: bool = True,
) -> tuple[Tensor, Tensor, Tensor, dict]:
    """Solve in chunks; a failing chunk is bisected until the failing trajectories are isolated.

    Without ``check_finite`` evaluations are only counted, and a solve that finishes with
    non-finite rows flags those rows instead of failing. Returns ``(x, status, nfe, stats)``.
    """
    kwargs = odeint_options(options)
    n, dim = x0.shape
    n_times = t.shape[-1]
    x = torch.full((n, n_times, dim), float("nan"), dtype=x0.dtype, device=x0.device)
    status = torch.zeros(n, dtype=torch.int8, device=x0.device)
    nfe = torch.zeros(n, dtype=torch.int64, device=x0.device)
    stats = {"nfe_total": 0, "solves": 0, "failed_solves": 0}

    stack = [torch.arange(start, min(start + chunk_size, n), device=x0.device)
             for start in range(0, n, chunk_size)][::-1]
    while stack:
        idx = stack.pop()
        ti = t if t.ndim == 1 else t[idx]
        stats["solves"] += 1
        try:
            y, used = _odeint_block(system, x0[idx], p[idx], ti, kwargs, check_finite)
        except _Failure as fail:
            stats["failed_solves"] += 1
            stats["nfe_total"] += fail.nfe
            if idx.numel() == 1 or stats["failed_solves"] > max_failed_solves:
                status[idx] = int(fail.code)
                continue
            half = idx.numel() // 2
            stack.extend([idx[half:], idx[:half]])
            continue
        if not check_finite:  # flag non-finite rows one by one instead of bisecting
            bad = ~torch.isfinite(y).flatten(1).all(dim=1)
            y = torch.where(bad[:, None, None], torch.nan, y)
            status[idx] = torch.where(bad, int(Status.NONFINITE), 0).to(status.dtype)
        x[idx] = y
        nfe[idx] = used
        stats["nfe_total"] += used
    return x, status, nfe, stats
