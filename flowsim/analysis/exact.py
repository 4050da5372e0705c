"""An exact (or solver-accurate) flow map, a :class:`flowsim.FlowMapLike` for testing analyses.

Also importable as :class:`flowsim.testing.ExactFlowMap`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import torch
import torchdiffeq
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError, TimeGridError
from ..maps import compose_on_grid
from ..systems.base import ODESystem
from ..systems.registry import get_system

__all__ = ["ExactFlowMap"]

Perturbation = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


class ExactFlowMap(nn.Module):
    """The true flow map ``X(s, t, x; p)`` of a system, optionally plus a known perturbation.

    Uses the system's analytic solution where one exists (harmonic oscillator), otherwise a
    float64 dopri5 solve at tight tolerances in rescaled time ``τ ∈ [0, 1]`` (so every sample
    gets its own ``(s, t)`` in one batched call; slow on stiff systems, being explicit). It
    is a :class:`flowsim.FlowMapLike` — ``forward(s, t, x, p)``, ``jump``, ``odeint``,
    ``system``, ``dtype``, ``device``, ``max_jump`` (and ``config``) — so it checks an analysis
    pipeline end to end: an exact map must show zero error, and ``perturbation`` must show
    up as exactly that error.

    Arguments
    ---------
    system:
        The system (or its catalogue name).
    max_jump:
        Longest single jump it claims to be trained for (default: the system's timescale).
    dtype:
        ``torch.float64`` (default) or ``torch.float32`` (inputs must then be float32, like a
        trained :class:`flowsim.FlowMap`).
    perturbation:
        ``f(s, t, x, p) -> (batch, dim)`` added to the exact result (float64 arguments).
    rtol, atol:
        Tolerances of the solve when no analytic solution exists.
    device:
        Where inputs are expected (the analysis functions move data there).

    Raises
    ------
    ConfigError
        Bad ``dtype`` or ``max_jump``.

    Examples
    --------
    >>> import torch, flowsim
    >>> fm = ExactFlowMap("harmonic_oscillator")
    >>> x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    >>> fm.jump(x, 0.0, torch.pi).round(decimals=6)
    tensor([[-1., -0.]], dtype=torch.float64)
    """

    def __init__(
        self,
        system: ODESystem | str,
        *,
        max_jump: float | None = None,
        dtype: torch.dtype = torch.float64,
        perturbation: Perturbation | None = None,
        rtol: float = 1e-10,
        atol: float = 1e-10,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__()
        self.system = get_system(system) if isinstance(system, str) else system
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
        mj = float(self.system.timescale if max_jump is None else max_jump)
        if not mj > 0:
            raise ConfigError(f"max_jump must be positive; got {max_jump}")
        self._dtype = dtype
        self._device = torch.device(device)
        self.perturbation = perturbation
        self.rtol, self.atol = float(rtol), float(atol)
        self.config = SimpleNamespace(
            system=self.system.name, dim=self.system.dim, timescale=float(self.system.timescale),
            max_jump=mj, backward=False, dtype=str(dtype).replace("torch.", ""),
        )

    @property
    def dtype(self) -> torch.dtype:
        """The dtype inputs must have (like :attr:`flowsim.FlowMap.dtype`)."""
        return self._dtype

    @property
    def device(self) -> torch.device:
        """Device the map computes on."""
        return self._device

    @property
    def max_jump(self) -> float:
        """Longest single jump (system time units)."""
        return float(self.config.max_jump)

    def forward(self, s: Tensor, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        """Unchecked evaluation: ``s``, ``t`` ``(batch,)``, ``x`` ``(batch, dim)``,
        ``p`` ``(batch, n_params)``."""
        s64, t64, x64, p64 = (v.to(torch.float64) for v in (s, t, x, p))
        if x64.shape[0] == 0:
            return x.clone()
        if self.system.has_exact_solution:
            out = self.system.exact_solution(torch.stack([s64, t64], dim=-1), x64, p64)[:, -1]
        else:
            delta = t64 - s64

            def rhs(tau: Tensor, y: Tensor) -> Tensor:
                return delta[:, None] * self.system.vector_field(s64 + tau * delta, y, p64)

            grid = torch.tensor([0.0, 1.0], dtype=torch.float64, device=x.device)
            out = torchdiffeq.odeint(rhs, x64, grid, rtol=self.rtol, atol=self.atol, method="dopri5")[-1]
        if self.perturbation is not None:
            out = out + self.perturbation(s64, t64, x64, p64)
        return out.to(x.dtype)

    def jump(self, x: Tensor, s: Tensor | float, t: Tensor | float, p: Any = None) -> Tensor:
        """Checked single jump, as :meth:`flowsim.FlowMap.jump`.

        Raises
        ------
        ShapeError
            Wrong state shape or dtype.
        TimeGridError
            Backward jumps.
        """
        x = self._check_x(x)
        n = x.shape[0]
        s_ = torch.as_tensor(s, dtype=self.dtype, device=x.device).expand(n)
        t_ = torch.as_tensor(t, dtype=self.dtype, device=x.device).expand(n)
        if bool((t_ < s_).any()):
            raise TimeGridError("t < s: this map only jumps forward in time")
        return self.forward(s_, t_, x, self.system.params_tensor(p, n, dtype=self.dtype, device=x.device))

    def odeint(self, x0: Tensor, t: Tensor, p: Any = None, *, max_jump: float | None = None) -> Tensor:
        """States at every time of a shared increasing grid ``t``, ``(time, batch, dim)``.

        Raises
        ------
        ShapeError, TimeGridError
            Bad states, or ``t`` not 1-D increasing.
        ConfigError
            ``max_jump`` not positive.
        """
        x = self._check_x(x0)
        t = torch.as_tensor(t, dtype=torch.float64)
        if t.ndim != 1 or (t.numel() > 1 and not bool((t.diff() > 0).all())):
            raise TimeGridError("t must be a 1-D strictly increasing grid")
        hmax = float(max_jump) if max_jump is not None else self.max_jump
        p_ = self.system.params_tensor(p, x.shape[0], dtype=self.dtype, device=x.device)
        # the grid arithmetic in float64, then each jump's times cast to the map's dtype
        return compose_on_grid(self.forward, x, t.to(x.device), p_, max_jump=hmax)

    def _check_x(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise ShapeError(f"x must be a torch.Tensor of shape (batch, {self.system.dim})")
        x = self.system.check_state(x)
        if x.dtype != self.dtype:
            raise ShapeError(f"x is {x.dtype} but the map computes in {self.dtype}; cast it first")
        return x

    def extra_repr(self) -> str:
        how = "analytic" if self.system.has_exact_solution else f"dopri5 rtol={self.rtol:g}"
        return f"system={self.system.name!r}, {how}, max_jump={self.max_jump:.4g}"
