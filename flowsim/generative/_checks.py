"""Validation shared by the generative models (private to flowsim.generative)."""

from __future__ import annotations

import numbers
import warnings

import torch
from torch import Tensor

from .._utils import check_int
from ..errors import ConfigError, ExtrapolationWarning, ShapeError


def check_steps(steps) -> int:
    """A positive integer number of steps or jumps, else :class:`ConfigError`."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1:
        raise ConfigError(f"steps must be a positive integer (1, 2, 4, …); got {steps!r}")
    return int(steps)


def check_count(n) -> int:
    return check_int(n, "the number of samples", ConfigError)


def conditions(condition, n: int, n_cond: int, low: Tensor | None, high: Tensor | None,
               device, dtype) -> Tensor:
    """``condition`` as an ``(n, n_cond)`` tensor (a ``(n_cond,)`` vector is shared by all ``n``;
    with one condition value, an ``(n,)`` vector gives each sample its own);
    refused when the model is unconditional or the shape is wrong; a warning when outside the
    range of the training conditions (``[low, high]``)."""
    if n_cond == 0:
        if condition is not None:
            raise ConfigError("this model was trained without conditions; call it without condition=")
        return torch.zeros(n, 0, device=device, dtype=dtype)
    if condition is None:
        raise ConfigError(f"this model is conditional ({n_cond} condition values): pass condition=, "
                          f"a ({n_cond},) vector or a (n, {n_cond}) tensor")
    c = torch.as_tensor(condition).detach().to(device=device, dtype=dtype)
    if c.ndim == 1 and c.shape[0] == n_cond:
        c = c.expand(n, -1)
    elif c.ndim == 0 and n_cond == 1:
        c = c.reshape(1, 1).expand(n, -1)
    elif c.ndim == 1 and n_cond == 1 and c.shape[0] == n:  # one condition value per sample
        c = c[:, None]
    if c.ndim != 2 or c.shape != (n, n_cond):
        raise ShapeError(f"condition must be ({n_cond},) or ({n}, {n_cond})"
                         f"{f' or ({n},)' if n_cond == 1 else ''} like the training "
                         f"conditions; got {tuple(torch.as_tensor(condition).shape)}")
    if not bool(torch.isfinite(c).all()):
        raise ShapeError("condition contains NaN or inf")
    if low is not None and high is not None:
        lo, hi = low.to(c), high.to(c)
        span = (hi - lo).clamp_min(1e-12)
        out = (c < lo - 0.05 * span) | (c > hi + 0.05 * span)
        if bool(out.any()):
            warnings.warn(f"{int(out.any(dim=1).sum())} condition(s) lie outside the range of the "
                          "training conditions: the model extrapolates there (simulate a wider prior)",
                          ExtrapolationWarning, stacklevel=3)
    return c.contiguous()


def check_states(x, dim: int, what: str = "x") -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 2 or x.shape[1] != dim:
        raise ShapeError(f"{what} must be a (n, {dim}) tensor; got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not bool(torch.isfinite(x).all()):
        raise ShapeError(f"{what} contains NaN or inf")
    return x
