"""Private: timed runs of the flow map and of each solver on one batch of states.

Each runner returns a :class:`Run` with the final states, which of them succeeded, the wall
time for the whole batch (scaled up when only a subset was timed) and the evaluations per
trajectory. All runs use ``torch.no_grad``; the caller warms each method up once before timing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torchdiffeq
from torch import Tensor

from ..solve.reference import reference_solve
from ..systems.base import ODESystem
from ._maps import map_device

__all__ = [
    "Run", "run_flowmap", "run_scipy", "run_torchdiffeq", "run_torchode", "timed", "torchode_available",
]


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


def run_torchdiffeq(
    system: ODESystem, x0: Tensor, p: Tensor, t0: float, t1: float, method: str, *,
    tol: float | None = None, n_steps: int | None = None, max_steps: int, dtype: torch.dtype, repeats: int,
    device: torch.device | str = "cpu",
) -> Run:
    """torchdiffeq ``odeint`` on the whole batch: adaptive (``tol`` = rtol = atol) or ``rk4``
    with ``n_steps`` equal steps."""
    m, dim = x0.shape
    y0, pp = x0.to(dtype=dtype, device=device), p.to(dtype=dtype, device=device)
    grid = torch.tensor([t0, t1], dtype=dtype, device=y0.device)
    count = [0]

    def f(t: Tensor, y: Tensor) -> Tensor:
        count[0] += 1
        return system.vector_field(t, y, pp)

    if n_steps is not None:
        fixed = torch.linspace(t0, t1, int(n_steps) + 1, dtype=dtype, device=y0.device)
        kwargs: dict[str, Any] = {"options": {"grid_constructor": lambda *_: fixed}}
    else:
        kwargs = {"rtol": float(tol), "atol": float(tol), "options": {"max_num_steps": int(max_steps)}}

    def once() -> tuple[Tensor | None, int]:
        count[0] = 0
        try:
            with torch.no_grad():
                y = torchdiffeq.odeint(f, y0, grid, method=method, **kwargs)[-1]
            _sync(y)
        except (AssertionError, RuntimeError):  # step underflow, max_num_steps
            return None, count[0]
        return y, count[0]

    (y, nfe), wall = timed(once, repeats)
    x, ok = _final(y, m, dim)
    return Run(x=x, ok=ok, wall_time=wall, nfe=float(nfe), n_timed=m)


def run_scipy(
    system: ODESystem, x0: Tensor, p: Tensor, t0: float, t1: float, method: str, *,
    tol: float, max_steps: int, batch: int, repeats: int,
) -> Run:
    """scipy ``solve_ivp`` one trajectory at a time on the states given (a subset); the wall
    time is scaled to ``batch`` states."""
    m = x0.shape[0]
    grid = torch.tensor([t0, t1], dtype=torch.float64)

    def once() -> tuple[Any]:
        return (reference_solve(system, x0, grid, p, backend="scipy", method=method, rtol=tol, atol=tol,
                                max_steps=max_steps),)

    (sol,), wall = timed(once, repeats)
    x, ok = _final(sol.x[:, -1], m, x0.shape[1])
    ok = ok & sol.ok.cpu()
    return Run(x=x, ok=ok, wall_time=wall * batch / m, nfe=float(sol.nfe.double().mean()), n_timed=m)


def torchode_available() -> bool:
    """Whether ``import torchode`` works."""
    try:
        import torchode  # noqa: F401
    except Exception:  # missing, or broken optional dependencies
        return False
    return True


def run_torchode(
    system: ODESystem, x0: Tensor, p: Tensor, t0: float, t1: float, *,
    tol: float, max_steps: int, dtype: torch.dtype, repeats: int, device: torch.device | str = "cpu",
) -> Run:
    """torchode dopri5 (per-sample step control, integral controller, rtol = atol = ``tol``)."""
    import torchode as to

    m, dim = x0.shape
    y0, pp = x0.to(dtype=dtype, device=device), p.to(dtype=dtype, device=device)
    t_eval = torch.tensor([t0, t1], dtype=dtype, device=y0.device).expand(m, 2)
    term = to.ODETerm(lambda t, y: system.vector_field(t, y, pp))
    ctrl = to.IntegralController(atol=float(tol), rtol=float(tol), term=term)

    def once() -> tuple[Any]:
        with torch.no_grad():
            sol = to.solve_ivp(term, y0, t_eval, method="dopri5", controller=ctrl, max_steps=int(max_steps))
            _sync(sol.ys)
        return (sol,)

    (sol,), wall = timed(once, repeats)
    x, ok = _final(sol.ys[:, -1], m, dim)
    status = torch.as_tensor(sol.status).cpu().reshape(-1)
    # torchode stops the whole batch as soon as one sample fails, leaving the others unfinished
    # (with status 0 and uninitialised outputs): then no sample of the run counts as solved.
    ok = ok & (status == 0) if bool((status == 0).all()) else torch.zeros_like(ok)
    nfe = sol.stats.get("n_f_evals")
    nfe_mean = float(torch.as_tensor(nfe).double().mean()) if nfe is not None else float("nan")
    return Run(x=x, ok=ok, wall_time=wall, nfe=nfe_mean, n_timed=m)
