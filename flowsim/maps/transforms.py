"""Normalisation of states and parameters, stored inside a FlowMap and its checkpoint."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..errors import ShapeError

__all__ = ["StateTransform", "ParamTransform"]


class StateTransform(nn.Module):
    """Per-state standardisation, with log-standardisation for positive states.

    ``z = (x - mean) / std`` for linear states and ``z = (log x - mean) / std`` for states in
    ``log_mask`` (positive quantities spanning decades, as in chemistry).

    Arguments
    ---------
    mean, std:
        ``(dim,)`` statistics in the transformed (log for log states) space.
    log_mask:
        ``(dim,)`` booleans, which states are log-standardised.

    Examples
    --------
    >>> import torch
    >>> x = torch.rand(100, 2, dtype=torch.float64) + 0.1
    >>> tr = StateTransform.fit(x, log=[False, True])
    >>> torch.allclose(tr.decode(tr.encode(x)), x)
    True
    """

    def __init__(self, mean: Tensor, std: Tensor, log_mask: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float64).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float64).clone())
        self.register_buffer("log_mask", torch.as_tensor(log_mask, dtype=torch.bool).clone())

    @classmethod
    def identity(cls, dim: int) -> StateTransform:
        """No normalisation (mean 0, std 1, no log states)."""
        return cls(torch.zeros(dim), torch.ones(dim), torch.zeros(dim, dtype=torch.bool))

    @classmethod
    def fit(cls, x: Tensor, log: bool | Sequence[bool] = False, min_std: float = 1e-8
            ) -> StateTransform:
        """Fit statistics from samples ``x`` of shape ``(..., dim)``.

        Raises
        ------
        ShapeError
            If a log state has non-positive samples, or ``x`` has non-finite values.
        """
        x = torch.as_tensor(x, dtype=torch.float64).reshape(-1, x.shape[-1])
        x = x[torch.isfinite(x).all(dim=1)]
        if x.shape[0] < 2:
            raise ShapeError("need at least two finite samples to fit a state transform")
        dim = x.shape[1]
        mask = torch.tensor([bool(log)] * dim if isinstance(log, bool) else list(log))
        if mask.shape != (dim,):
            raise ShapeError(f"log must be a bool or one bool per state ({dim}); got {log}")
        if (x[:, mask] <= 0).any():
            raise ShapeError("log-standardised states must be strictly positive in the samples")
        y = torch.where(mask, torch.log(x.clamp_min(1e-300)), x)
        std = y.std(dim=0).clamp_min(min_std)
        return cls(y.mean(dim=0), std, mask)

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def encode(self, x: Tensor) -> Tensor:
        """States → normalised coordinates."""
        m, s = self.mean.to(x.dtype), self.std.to(x.dtype)
        if bool(self.log_mask.any()):
            x = torch.where(self.log_mask, torch.log(x.clamp_min(torch.finfo(x.dtype).tiny)), x)
        return (x - m) / s

    def decode(self, z: Tensor) -> Tensor:
        """Normalised coordinates → states."""
        y = z * self.std.to(z.dtype) + self.mean.to(z.dtype)
        if bool(self.log_mask.any()):
            y = torch.where(self.log_mask, torch.exp(y), y)
        return y

    def advance(self, x: Tensor, dz: Tensor) -> Tensor:
        """``decode(encode(x) + dz)``, written so that ``dz = 0`` returns ``x`` exactly."""
        dy = dz * self.std.to(dz.dtype)
        if bool(self.log_mask.any()):
            # a bounded exponent keeps an untrained map finite (e^30 is ~13 decades)
            return torch.where(self.log_mask, x * torch.exp(dy.clamp(-30.0, 30.0)), x + dy)
        return x + dy


class ParamTransform(nn.Module):
    """Affine map of each parameter's prior range ``[low, high]`` onto ``[-1, 1]``.

    A parameter with ``low == high`` (fixed) encodes to 0.

    Examples
    --------
    >>> import torch
    >>> from flowsim.maps import ParamTransform
    >>> tr = ParamTransform(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 2.0]))
    >>> tr.encode(torch.tensor([[0.5, 2.0]], dtype=torch.float64)).tolist()
    [[0.0, 0.0]]
    """

    def __init__(self, low: Tensor, high: Tensor) -> None:
        super().__init__()
        self.register_buffer("low", torch.as_tensor(low, dtype=torch.float64).clone())
        self.register_buffer("high", torch.as_tensor(high, dtype=torch.float64).clone())

    def encode(self, p: Tensor) -> Tensor:
        lo, hi = self.low.to(p.dtype), self.high.to(p.dtype)
        width = (hi - lo).clamp_min(1e-12)
        out = 2 * (p - lo) / width - 1
        return torch.where(hi > lo, out, torch.zeros_like(out))

    def outside(self, p: Tensor, slack: float = 1e-6) -> Tensor:
        """Mask ``(batch,)`` of parameter rows outside the trained range (with a relative
        ``slack`` that absorbs float32 rounding of the stored range)."""
        lo, hi = self.low.to(p.dtype), self.high.to(p.dtype)
        tol = slack * ((hi - lo).abs() + torch.maximum(lo.abs(), hi.abs()))
        return ((p < lo - tol) | (p > hi + tol)).any(dim=-1)
