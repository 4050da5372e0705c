"""The :class:`Solution` returned by :func:`flowsim.reference_solve`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .options import SolverOptions
from .status import Status

__all__ = ["Solution"]


@dataclass
class Solution:
    """Trajectories of a batch of initial states, with per-trajectory status and cost.

    Attributes
    ----------
    t:
        Output times, ``(time,)`` when shared or ``(batch, time)`` per trajectory.
    x:
        States, ``(batch, time, dim)``; rows of failed trajectories are NaN.
    p:
        Parameters used, ``(batch, n_params)``.
    status:
        ``(batch,)`` int8 codes, see :class:`~flowsim.Status`.
    nfe:
        ``(batch,)`` right-hand-side evaluations of the solve each trajectory was part of
        (a batched solve evaluates all its trajectories together).
    wall_time:
        Seconds spent in the whole call.
    system, method, backend, rtol, atol:
        What produced it.
    stats:
        Extra counters (total NFE, number of sub-solves, retries after failures).
    solver:
        The :class:`~flowsim.SolverOptions` it was solved with.

    Examples
    --------
    >>> import flowsim, torch
    >>> sys = flowsim.get_system("lotka_volterra")
    >>> sol = flowsim.reference_solve(sys, sys.sample_initial(8, 0), torch.linspace(0, 5, 11))
    >>> sol.x.shape, bool(sol.ok.all())
    (torch.Size([8, 11, 2]), True)
    """

    t: Tensor
    x: Tensor
    p: Tensor
    status: Tensor
    nfe: Tensor
    wall_time: float
    system: str
    method: str
    backend: str
    rtol: float
    atol: float
    stats: dict[str, Any] = field(default_factory=dict)
    solver: SolverOptions | None = None

    @property
    def ok(self) -> Tensor:
        """Boolean mask ``(batch,)`` of successful trajectories."""
        return self.status == int(Status.OK)

    @property
    def n_failed(self) -> int:
        """Number of failed trajectories."""
        return int((~self.ok).sum())

    @property
    def x_final(self) -> Tensor:
        """Last state of each trajectory, ``(batch, dim)``."""
        return self.x[:, -1]

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        counts = torch.bincount(self.status.long(), minlength=len(Status))
        failed = {s.name: int(counts[s]) for s in Status if s != Status.OK and counts[s] > 0}
        return (
            f"Solution(system={self.system!r}, x={tuple(self.x.shape)}, method={self.method!r}, "
            f"ok={int(counts[0])}/{len(self)}{', failed=' + str(failed) if failed else ''}, "
            f"nfe_total={self.stats.get('nfe_total')}, wall_time={self.wall_time:.3g}s)"
        )
