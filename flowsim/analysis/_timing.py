"""Private: timed runs of the flow map and of a solver on one batch of states.

Solvers run through the solve layer (:func:`flowsim.solve.integrate` with a
:class:`flowsim.SolverOptions`); nothing here wraps a solver library. Each runner returns a
:class:`Run` with the final states, which of them succeeded, the wall time for the whole batch
(scaled up when only a subset was timed) and the evaluations per trajectory. All runs use
``torch.no_grad``; the caller warms each method up once before timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..solve import SolverOptions, integrate
from ..systems.base import ODESystem
from ._maps import map_device

__all__ = ["Run", "run_flowmap", "run_solver", "timed"]


@dataclass
class Run:
    """Outcome of one timed setting."""

    x: Tensor  # (m, dim) float64 final states of the solved states (m = batch or the scipy subset)
    ok: Tensor  # (m,) bool
    wall_time: float  # seconds for the whole batch (scaled up from the subset when m < batch)
    nfe: float  # evaluations per trajectory
    n_timed: int  # states actually timed


#: a run slower than this many seconds is not repeated (its minimum over repeats is itself)
REPEAT_BELOW_SECONDS = 5.0


def timed(fn: Callable[[], tuple[Any, ...]], repeats: int) -> tuple[tuple[Any, ...], float]:
    """Run ``fn`` up to ``repeats`` times; the first result and the minimum wall time.

    Runs slower than :data:`REPEAT_BELOW_SECONDS` are not repeated: timer noise is negligible there."""
    best, first = float("inf"), None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        first = out if first is None else first
        if dt > REPEAT_BELOW_SECONDS:
            break
    assert first is not None
    return first, best


def _sync(x: Tensor) -> None:
    """Wait for queued GPU work, so wall times measure the computation."""
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def _final(y: Tensor | None, m: int, dim: int) -> tuple[Tensor, Tensor]:
    if y is None:
        return torch.full((m, dim), float("nan"), dtype=torch.float64), torch.zeros(m, dtype=torch.bool)
    y = y.detach().to(device="cpu", dtype=torch.float64)
    return y, torch.isfinite(y).all(dim=1)


def run_flowmap(flowmap: Any, x0: Tensor, p: Tensor, t0: float, t1: float, n: int, repeats: int) -> Run:
    """``n`` composed jumps of the flow map over ``[t0, t1]`` on the whole batch."""
    dt, dev = flowmap.dtype, map_device(flowmap)
    m = x0.shape[0]
    xs, ps = x0.to(dtype=dt, device=dev), p.to(dtype=dt, device=dev)
    grid = [torch.full((m,), t0 + (t1 - t0) * k / n, dtype=dt, device=dev) for k in range(n)]
    grid.append(torch.full((m,), t1, dtype=dt, device=dev))

    def once() -> tuple[Tensor]:
        with torch.no_grad():
            x = xs
            for k in range(n):
                x = flowmap.forward(grid[k], grid[k + 1], x, ps)
            _sync(x)
            return (x,)

    (y,), wall = timed(once, repeats)
    x, ok = _final(y, m, x0.shape[1])
    return Run(x=x, ok=ok, wall_time=wall, nfe=float(n), n_timed=m)


def run_solver(
    system: ODESystem, x0: Tensor, p: Tensor, t0: float, t1: float, solver: SolverOptions, *,
    repeats: int, dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
    batch: int | None = None, max_failed_solves: int = 0,
) -> Run:
    """``solver`` from ``t0`` to ``t1`` on the states given, as one plain solve.

    torchdiffeq and torchode solve the whole batch at once on ``device`` in ``dtype``; a failed
    solve is bisected (at most ``max_failed_solves`` failed sub-solves, all timed) until the
    failing states are isolated (``0``: it fails every state in it); evaluations are counted
    but not checked for NaN (no host sync per evaluation). scipy solves one trajectory at a
    time in float64 on the CPU; give ``batch`` when ``x0`` is a subset, and the wall time is
    scaled to ``batch`` states.
    """
    m, dim = x0.shape
    if solver.backend == "scipy":
        dtype, device = torch.float64, "cpu"
    y0, pp = x0.to(dtype=dtype, device=device), p.to(dtype=dtype, device=device)
    grid = torch.tensor([t0, t1], dtype=dtype, device=y0.device)

    def once() -> tuple[Any]:
        sol = integrate(system, y0, grid, pp, solver, max_failed_solves=max_failed_solves,
                        check_finite=False)
        _sync(sol.x)
        return (sol,)

    (sol,), wall = timed(once, repeats)
    x, ok = _final(sol.x[:, -1], m, dim)
    ok = ok & sol.ok.cpu()
    if solver.backend == "scipy":  # each trajectory its own solve: the mean of their counts
        nfe = float(sol.nfe.double().mean())
    else:  # one batched solve: its evaluations count once for each trajectory
        nfe = float(sol.stats["nfe_total"])
    scale = 1.0 if batch is None else batch / m
    return Run(x=x, ok=ok, wall_time=wall * scale, nfe=nfe, n_timed=m)
