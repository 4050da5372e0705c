"""Normalisation of states and parameters, stored inside a FlowMap and its checkpoint."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError, ShapeError

if TYPE_CHECKING:
    from ..systems.base import ODESystem

__all__ = ["StateTransform", "ParamTransform", "default_state_transform", "param_bounds"]


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


def param_bounds(sys_: ODESystem, spec: str | dict[str, Any]) -> tuple[Tensor, Tensor]:
    """``(low, high)`` of each parameter for ``FlowMap(param_range=spec)``: ``"prior"``,
    ``"default"`` or ``{name: value or (low, high)}``; :class:`~flowsim.ConfigError` otherwise."""
    lo = torch.tensor([q.prior[0] for q in sys_.parameters], dtype=torch.float64)
    hi = torch.tensor([q.prior[1] for q in sys_.parameters], dtype=torch.float64)
    if isinstance(spec, str):
        if spec == "prior":
            return lo, hi
        if spec == "default":
            d = sys_.default_params()
            return d.clone(), d.clone()
        raise ConfigError(f"param_range must be 'prior', 'default' or a dict; got {spec!r}")
    if not isinstance(spec, dict):
        raise ConfigError(f"param_range must be 'prior', 'default' or a dict; got {type(spec).__name__}")
    names = list(sys_.param_names)
    for name, value in spec.items():
        if name not in names:
            raise ConfigError(f"param_range names unknown parameter {name!r}; {sys_.name} has {names}")
        try:
            pair = (value, value) if isinstance(value, (int, float)) else (value[0], value[1])
            a, b = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            raise ConfigError(
                f"param_range[{name!r}] must be a number or (low, high); got {value!r}") from None
        if not (math.isfinite(a) and math.isfinite(b) and a <= b):
            raise ConfigError(f"param_range[{name!r}] must be finite with low <= high; got {value!r}")
        i = names.index(name)
        lo[i], hi[i] = a, b
    return lo, hi


def default_state_transform(system: ODESystem, log_states) -> StateTransform:
    """A :class:`StateTransform` fitted on ``system``'s initial-state prior; ``log_states="auto"``
    log-standardises positive states whose box spans more than two decades."""
    x = system.sample_initial(4096, generator=12345)
    if isinstance(log_states, str):
        if log_states != "auto":
            raise ConfigError(f"log_states must be 'auto', a bool or a list; got {log_states!r}")
        if system.positive:
            box = torch.tensor(system.initial_box, dtype=torch.float64)
            lo, hi = box[:, 0], box[:, 1]
            mask = [bool(v) for v in ((lo > 0) & (hi > 100 * lo)).tolist()]
        else:
            mask = [False] * system.dim
    else:
        mask = log_states
    return StateTransform.fit(x, log=mask)
