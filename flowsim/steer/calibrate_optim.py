"""The batched optimiser behind :func:`flowsim.steer.calibrate`: damped Newton on many rows at once.

Every row (a subject × a start point) is its own small problem in ``n`` parameters; the sum of
the rows' objectives is differentiated once per iteration, so one forward and ``n + 1`` backward
passes give every row's gradient and ``n × n`` Hessian, through the map or through torchdiffeq.
Each row takes a Levenberg–Marquardt-damped Newton step with its own damping (accepted only if
its objective falls), so rows converge, or stall, independently. Parameters live in an
unbounded coordinate ``u``: ``θ = lo + (hi − lo) σ(u)``, on a log scale where ``lo > 0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Box", "minimise", "hessian_rows", "Minimum"]


@dataclass(frozen=True)
class Box:
    """The bounded ↔ unbounded change of coordinates of a box ``[lo, hi]`` (float64, ``(n,)``)."""

    lo: Tensor
    hi: Tensor

    @property
    def log(self) -> Tensor:
        """Which coordinates are on a log scale (a positive lower bound)."""
        return self.lo > 0

    def _ab(self) -> tuple[Tensor, Tensor]:
        a = torch.where(self.log, self.lo.clamp_min(1e-300).log(), self.lo)
        b = torch.where(self.log, self.hi.clamp_min(1e-300).log(), self.hi)
        return a, b

    def to_theta(self, u: Tensor) -> Tensor:
        a, b = self._ab()
        v = a + (b - a) * torch.sigmoid(u)
        return torch.where(self.log, torch.exp(v), v)

    def to_u(self, theta: Tensor, eps: float = 1e-9) -> Tensor:
        a, b = self._ab()
        v = torch.where(self.log, theta.clamp_min(1e-300).log(), theta)
        s = ((v - a) / (b - a)).clamp(eps, 1 - eps)
        return torch.log(s) - torch.log1p(-s)

    def from_unit(self, s: Tensor) -> Tensor:
        """``u`` of points ``s`` in the unit cube (0 → lo, 1 → hi on the box's scale)."""
        s = s.clamp(1e-3, 1 - 1e-3)
        return torch.log(s) - torch.log1p(-s)

    def at_bound(self, theta: Tensor, rel: float = 1e-4) -> Tensor:
        a, b = self._ab()
        v = torch.where(self.log, theta.clamp_min(1e-300).log(), theta)
        s = (v - a) / (b - a)
        return ((s < rel) | (s > 1 - rel)).any(-1)


def hessian_rows(fun: Callable[[Tensor], Tensor], x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Value ``(R,)``, gradient ``(R, n)`` and Hessian ``(R, n, n)`` of a row-separable ``fun``."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        f = fun(x)
        finite = torch.isfinite(f)
        total = torch.where(finite, f, torch.zeros_like(f)).sum()
        (g,) = torch.autograd.grad(total, x, create_graph=True)
        cols = []
        for j in range(x.shape[-1]):
            (h,) = torch.autograd.grad(g[:, j].sum(), x, retain_graph=j < x.shape[-1] - 1,
                                       allow_unused=True)
            cols.append(torch.zeros_like(x) if h is None else h)
    hess = torch.stack(cols, dim=-2).detach()
    hess = 0.5 * (hess + hess.transpose(-1, -2))
    return f.detach(), g.detach(), hess


@dataclass
class Minimum:
    """Where :func:`minimise` stopped: ``u`` ``(R, n)``, objective ``(R,)``, gradient norm ``(R,)``,
    ``converged`` ``(R,)`` and the iterations run."""

    u: Tensor
    value: Tensor
    grad_norm: Tensor
    converged: Tensor
    iterations: int


def minimise(fun: Callable[[Tensor, Tensor], Tensor], u0: Tensor, *, steps: int, tol: float = 1e-6,
             damping: float = 1e-3) -> Minimum:
    """Minimise a row-separable ``fun(u, rows)`` (``(R', n)`` and row indices ``(R',)`` →
    ``(R',)``) from ``u0`` ``(R, n)`` by damped Newton steps; only unfinished rows are evaluated.

    A row has converged when an accepted step changes its objective by less than ``tol`` and
    its Newton decrement ``|g·δ|`` is below ``tol`` too (absolute: for a negative
    log-likelihood, ``tol`` nats); it then stops moving. Non-finite rows never move.

    Examples
    --------
    >>> import torch
    >>> from flowsim.steer.calibrate_optim import minimise
    >>> target = torch.tensor([1.0, -2.0], dtype=torch.float64)
    >>> m = minimise(lambda u, rows: ((u - target) ** 2).sum(-1) ** 2 + (u ** 2).sum(-1),
    ...              torch.zeros(3, 2, dtype=torch.float64), steps=50)
    >>> bool(m.converged.all())
    True
    """
    u = u0.detach().clone()
    r_all = torch.arange(u.shape[0], device=u.device)
    lam = torch.full(u.shape[:1], damping, dtype=u.dtype, device=u.device)
    done = torch.zeros(u.shape[:1], dtype=torch.bool, device=u.device)
    f, g, h = hessian_rows(lambda v: fun(v, r_all), u)
    eye = torch.eye(u.shape[-1], dtype=u.dtype, device=u.device)
    it = 0
    for it in range(1, steps + 1):
        act = (~done & torch.isfinite(f)).nonzero().squeeze(1)
        if act.numel() == 0:
            it -= 1
            break
        fa, ga, ha, la = f[act], g[act], h[act], lam[act]
        diag = ha.diagonal(dim1=-2, dim2=-1).abs().clamp_min(1e-12)
        step = _solve(ha + la[:, None, None] * (torch.diag_embed(diag) + 1e-9 * eye), -ga)
        # value, gradient and Hessian at the trial point in one pass (kept only where it is better)
        f_new, g_new, h_new = hessian_rows(lambda v, rows=act: fun(v, rows), u[act] + step)
        better = torch.isfinite(f_new) & (f_new <= fa)
        small = (fa - f_new).abs() <= tol
        decrement = (ga * step).sum(-1).abs() <= tol
        u[act] = torch.where(better[:, None], u[act] + step, u[act])
        lam[act] = torch.where(better, (la / 3.0).clamp_min(1e-12), (la * 4.0).clamp_max(1e12))
        done[act] = (better & small & decrement) | (lam[act] >= 1e12)
        f[act] = torch.where(better, f_new, fa)
        g[act] = torch.where(better[:, None], g_new, ga)
        h[act] = torch.where(better[:, None, None], h_new, ha)
    return Minimum(u=u, value=f, grad_norm=g.norm(dim=-1), converged=done & (lam < 1e12), iterations=it)


def _solve(a: Tensor, b: Tensor) -> Tensor:
    """Solve each row's ``a x = b``; rows with a singular ``a`` take a gradient step instead."""
    sol, info = torch.linalg.solve_ex(a, b[..., None])
    sol = sol[..., 0]
    bad = (info != 0) | ~torch.isfinite(sol).all(-1)
    if bool(bad.any()):
        scale = a.diagonal(dim1=-2, dim2=-1).abs().clamp_min(1.0)
        sol = torch.where(bad[:, None], b / scale, sol)
    return sol.clamp(-8.0, 8.0)


def row_covariance(hess: Tensor) -> Tensor:
    """The inverse of each row's Hessian ``(R, n, n)``: NaN where it is not positive definite."""
    chol, info = torch.linalg.cholesky_ex(hess)
    bad = (info != 0) | (chol.diagonal(dim1=-2, dim2=-1) <= 0).any(-1)
    eye = torch.eye(hess.shape[-1], dtype=hess.dtype, device=hess.device)
    cov = torch.cholesky_inverse(torch.where(bad[:, None, None], eye, chol))
    return torch.where(bad[:, None, None], torch.full_like(cov, math.nan), cov)
