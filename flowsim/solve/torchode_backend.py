"""Batched torchode solves (per-trajectory step control), with status codes (optional extra).

torchode steps every trajectory with its own step size, so one hard trajectory does not slow
the others the way torchdiffeq's shared step does. It stops the whole batch as soon as one
trajectory fails, though, leaving the others unfinished: failed trajectories are flagged with
their code and the unfinished ones solved again without them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import FlowsimError, SolverError
from ..systems.base import ODESystem
from ..systems.checks import vector_field_failed
from .options import SolverOptions
from .status import Status

__all__ = ["solve_torchode", "torchode_available"]

#: torchode's status codes (``torchode.status_codes``) as flowsim :class:`Status` codes.
_CODES = {0: Status.OK, 1: Status.SOLVER_ERROR, 2: Status.STEP_UNDERFLOW, 3: Status.MAX_STEPS,
          4: Status.NONFINITE}


def torchode_available() -> bool:
    """Whether the optional torchode backend can be used (``import torchode`` works).

    Examples
    --------
    >>> from flowsim.solve import torchode_available
    >>> isinstance(torchode_available(), bool)
    True
    """
    try:
        import torchode  # noqa: F401
    except Exception:  # missing, or broken optional dependencies
        return False
    return True


def _import() -> Any:
    try:
        import torchode
    except Exception as err:
        raise SolverError(
            f"backend='torchode' needs the optional torchode package ({err}); "
            "pip install 'flowsim[torchode]' or choose backend='torchdiffeq'"
        ) from None
    return torchode


def _block(
    to: Any, system: ODESystem, x0: Tensor, p: Tensor, t: Tensor, options: SolverOptions
) -> tuple[Tensor, Tensor, Tensor]:
    """One torchode solve: ``(y (m, time, dim), torchode status (m,), nfe (m,))`` on the CPU for
    status and nfe."""
    m = x0.shape[0]
    t_eval = t if t.ndim == 2 else t.expand(m, -1)
    if t_eval.shape[-1] == 1:
        return (x0[:, None, :].clone(), torch.zeros(m, dtype=torch.long),
                torch.zeros(m, dtype=torch.long))
    def field(tau: Tensor, y: Tensor) -> Tensor:
        try:
            return system.vector_field(tau, y, p)
        except FlowsimError:
            raise
        except Exception as err:  # the user's vector field raised
            raise vector_field_failed(system, err, tau, y, p, " during the solve") from err

    term = to.ODETerm(field)
    ctrl = to.IntegralController(atol=options.atol, rtol=options.rtol, term=term)
    sol = to.solve_ivp(term, x0, t_eval, method=options.method, controller=ctrl,
                       max_steps=options.max_steps)
    status = torch.as_tensor(sol.status).reshape(-1).cpu().long().expand(m)
    nfe = sol.stats.get("n_f_evals")
    nfe = torch.zeros(m, dtype=torch.long) if nfe is None else torch.as_tensor(nfe).cpu().long().expand(m)
    return sol.ys, status, nfe


def solve_torchode(
    system: ODESystem,
    x0: Tensor,
    p: Tensor,
    t: Tensor,
    options: SolverOptions,
    *,
    chunk_size: int,
    max_failed_solves: int,
) -> tuple[Tensor, Tensor, Tensor, dict]:
    """Solve in chunks with torchode; returns ``(x, status, nfe, stats)`` like the other backends.

    A solve in which some trajectories fail flags those with their code and solves the rest
    again; after ``max_failed_solves`` failed solves the unfinished rest is flagged with the
    first failure's code. ``nfe`` sums the evaluations of every solve a trajectory was part of.
    """
    to = _import()
    n, dim = x0.shape
    x = torch.full((n, t.shape[-1], dim), float("nan"), dtype=x0.dtype, device=x0.device)
    status = torch.zeros(n, dtype=torch.int8)
    nfe = torch.zeros(n, dtype=torch.int64)
    stats = {"nfe_total": 0, "solves": 0, "failed_solves": 0}
    stack = [torch.arange(a, min(a + chunk_size, n)) for a in range(0, n, chunk_size)][::-1]
    while stack:
        idx = stack.pop()
        dev_idx = idx.to(x0.device)
        ti = t if t.ndim == 1 else t[dev_idx]
        y, code, used = _block(to, system, x0[dev_idx], p[dev_idx], ti, options)
        stats["solves"] += 1
        stats["nfe_total"] += int(used.max()) if used.numel() else 0
        nfe[idx] += used
        failed = code != 0
        if not failed.any():
            finite = torch.isfinite(y).flatten(1).all(dim=1).cpu()
            x[dev_idx] = torch.where(finite.to(y.device)[:, None, None], y, torch.nan)
            status[idx[~finite]] = int(Status.NONFINITE)
            continue
        stats["failed_solves"] += 1
        status[idx[failed]] = torch.tensor([int(_CODES.get(int(c), Status.SOLVER_ERROR))
                                            for c in code[failed]], dtype=torch.int8)
        rest = idx[~failed]
        if rest.numel() == 0:
            continue
        if stats["failed_solves"] > max_failed_solves:
            status[rest] = int(_CODES.get(int(code[failed][0]), Status.SOLVER_ERROR))
        else:
            stack.append(rest)
    return x, status.to(x0.device), nfe.to(x0.device), stats
