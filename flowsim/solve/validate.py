"""Input validation shared by the solvers (and later layers): states and time grids."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ShapeError, TimeGridError
from ..systems.base import ODESystem
from ..systems.checks import refuse_complex

__all__ = ["check_initial", "check_times"]


def check_initial(system: ODESystem, x0: Tensor, dtype: torch.dtype) -> Tensor:
    """Validate ``x0`` as ``(batch, dim)``, finite, and cast it to ``dtype``."""
    if not isinstance(x0, Tensor):
        refuse_complex(x0, f"{system.name}: x0", ShapeError)
        x0 = torch.as_tensor(x0, dtype=dtype)
    if x0.ndim == 1 and x0.shape[0] == system.dim:
        raise ShapeError(
            f"x0 must be batch-first (batch, {system.dim}); got a single state of shape "
            f"{tuple(x0.shape)}: pass x0[None] for a batch of one"
        )
    x0 = system.check_state(x0, "x0").to(dtype)
    bad = ~torch.isfinite(x0).all(dim=1)
    if bad.any():
        rows = bad.nonzero().flatten()[:5].tolist()
        raise ShapeError(f"x0 contains NaN or inf in rows {rows}; pass finite initial states")
    return x0


def check_times(t: Tensor, batch: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Validate a shared ``(time,)`` or per-trajectory ``(batch, time)`` grid.

    A shared grid may be strictly increasing or strictly decreasing; per-trajectory grids
    must be strictly increasing.
    """
    refuse_complex(t, "t", TimeGridError)
    t = torch.as_tensor(t)
    if not t.is_floating_point():
        t = t.to(dtype)
    t = t.to(dtype=dtype, device=device)
    if t.ndim not in (1, 2):
        raise TimeGridError(
            f"t must be a shared grid (time,) or per-trajectory grids (batch, time); "
            f"got shape {tuple(t.shape)}"
        )
    if t.ndim == 2 and t.shape[0] != batch:
        raise TimeGridError(
            f"per-trajectory t has {t.shape[0]} rows but x0 has {batch} states; "
            "give one row of times per initial state"
        )
    if t.shape[-1] < 1:
        raise TimeGridError("t is empty; give at least one output time")
    if not torch.isfinite(t).all():
        raise TimeGridError("t contains NaN or inf; give finite output times")
    if t.shape[-1] > 1:
        d = t.diff(dim=-1)
        if t.ndim == 2:
            if not (d > 0).all():
                rows = (~(d > 0).all(dim=-1)).nonzero().flatten()[:5].tolist()
                raise TimeGridError(
                    f"per-trajectory time grids must be strictly increasing; rows {rows} are "
                    "not (sort them and drop duplicates)"
                )
        elif not ((d > 0).all() or (d < 0).all()):
            raise TimeGridError(
                "t must be strictly increasing or strictly decreasing (no repeated times); "
                "sort it and drop duplicates, e.g. torch.unique(t)"
            )
    return t
