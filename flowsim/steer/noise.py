"""Measurement noise models: how far a measured value may lie from the predicted one.

:class:`Noise` is one frozen object: ``kind`` says how the error scales, ``sigma`` gives its
level or (``None``) lets it be fitted. A fitted level is *profiled out* in closed form: for each
subject and observable, ``σ̂² = mean(z²)`` of the standardised residuals ``z``, and the
log-likelihood is maximised over σ analytically. The estimates of the other parameters are then
those of (weighted) least squares, as ``scipy.optimize.least_squares`` finds them, and the
curvature of the profiled log-likelihood gives their standard errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError

__all__ = ["Noise"]

KINDS = ("gaussian", "proportional", "lognormal")
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Noise:
    """A measurement noise model.

    Attributes
    ----------
    kind:
        ``"gaussian"``: additive, ``y = f + σ ε``; ``"proportional"``: ``y = f + σ max(|f|, floor) ε``
        (a constant coefficient of variation); ``"lognormal"``: ``log y = log f + σ ε`` (needs
        positive data and predictions).
    sigma:
        The noise level (in data units for gaussian; relative for the others): a number, one
        number per observable, or ``None`` (default) to fit it per subject and observable.
    floor:
        Proportional noise: the prediction below which the error stops shrinking (e.g. an
        assay's quantification limit), so a prediction of 0 does not give a zero error.

    Examples
    --------
    >>> import torch
    >>> from flowsim.steer import Noise
    >>> y, f = torch.tensor([[[1.0], [2.0]]]), torch.tensor([[[[1.0], [2.5]]]])
    >>> Noise("gaussian", sigma=0.5).log_density(y, f, torch.ones(1, 2, 1, dtype=torch.bool)).shape
    torch.Size([1, 1])
    """

    kind: str = "gaussian"
    sigma: float | tuple[float, ...] | None = None
    floor: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"noise kind must be one of {list(KINDS)}; got {self.kind!r}")
        if self.sigma is not None:
            vals = _numbers(self.sigma)
            if not vals or not all(math.isfinite(v) and v > 0 for v in vals):
                raise ConfigError(f"noise sigma must be positive and finite (or None to fit it); got "
                                  f"{self.sigma!r}")
            object.__setattr__(self, "sigma", float(vals[0]) if len(vals) == 1 else tuple(map(float, vals)))
        if not (math.isfinite(self.floor) and self.floor >= 0):
            raise ConfigError(f"noise floor must be finite and >= 0; got {self.floor!r}")

    @property
    def fitted(self) -> bool:
        """Whether σ is fitted (profiled out) rather than given."""
        return self.sigma is None

    def check_data(self, values: Tensor, mask: Tensor) -> None:
        """Refuse data this model cannot describe (non-positive values for log-normal noise)."""
        if self.kind == "lognormal" and bool((values[mask] <= 0).any()):
            raise DataError("log-normal noise needs positive measurements; drop values <= 0 (e.g. "
                            "below the quantification limit) or use Noise('proportional', floor=…)")

    def standardised(self, values: Tensor, predicted: Tensor) -> tuple[Tensor, Tensor]:
        """Residuals in units of the noise scale (before σ), and the log of that scale."""
        if self.kind == "lognormal":
            f = predicted.clamp_min(torch.finfo(predicted.dtype).tiny)
            y = values.clamp_min(torch.finfo(values.dtype).tiny)
            return torch.log(y) - torch.log(f), torch.log(y).expand_as(f)
        if self.kind == "proportional":
            scale = predicted.abs().clamp_min(max(self.floor, torch.finfo(predicted.dtype).tiny))
            return (values - predicted) / scale, torch.log(scale)
        return values - predicted, torch.zeros_like(predicted)

    def sigma_hat(self, values: Tensor, predicted: Tensor, mask: Tensor) -> Tensor:
        """The noise level ``(batch, S, K)``: the given σ, or its maximum-likelihood value
        ``sqrt(mean z²)`` per subject and observable when σ is fitted."""
        self._check_scale(predicted, mask)
        z, _ = self.standardised(values, predicted)
        m = mask.to(predicted.dtype)
        if self.sigma is not None:
            return self._given_sigma(z.shape[-1], z).expand(z.shape[:-2] + z.shape[-1:]).clone()
        return ((z * z * m).sum(-2) / m.sum(-2).clamp_min(1.0)).sqrt()

    def log_density(self, values: Tensor, predicted: Tensor, mask: Tensor) -> Tensor:
        """Log-likelihood of ``values`` ``(S, T, K)`` given ``predicted`` ``(batch, S, T, K)``,
        summed over times and observables where ``mask`` is true: ``(batch, S)``."""
        self._check_scale(predicted, mask)
        m = mask.to(predicted.dtype)
        z, log_scale = self.standardised(values, predicted)
        n = m.sum(dim=-2)                                           # (S, K) samples per observable
        log_scale = (log_scale * m).sum(dim=(-2, -1))
        ss = (z * z * m).sum(dim=-2)                                # (batch, S, K)
        if self.sigma is None:
            var = (ss / n.clamp_min(1.0)).clamp_min(torch.finfo(ss.dtype).tiny)
            ll = -0.5 * n * (torch.log(var) + 1.0 + _LOG_2PI)
        else:
            sig = self._given_sigma(ss.shape[-1], ss)
            ll = -0.5 * ss / sig**2 - n * (torch.log(sig) + 0.5 * _LOG_2PI)
        return torch.where(n > 0, ll, torch.zeros_like(ll)).sum(-1) - log_scale

    def _given_sigma(self, n_observables: int, like: Tensor) -> Tensor:
        """The given σ as ``(K,)``: one for all observables, or one each."""
        sig = torch.as_tensor(self.sigma, dtype=like.dtype, device=like.device).reshape(-1)
        if sig.numel() not in (1, n_observables):
            raise ConfigError(f"noise sigma has {sig.numel()} values for {n_observables} "
                              f"observable(s); give one for all, or one per observable")
        return sig.expand(n_observables)

    def _check_scale(self, predicted: Tensor, mask: Tensor) -> None:
        """Refuse proportional noise without a floor where the model predicts exactly 0 at a
        measured sample: its variance is zero there, and the likelihood degenerates (a loss of
        about -700 per such sample that looks converged, or -inf). Likewise log-normal noise
        where the model predicts 0 or less: the log of the prediction is -inf (clamped, a
        residual of about 700 that swamps every other sample)."""
        if self.kind == "lognormal":
            if bool(((predicted <= 0) & mask.to(torch.bool)).any()):
                raise ConfigError(
                    "log-normal noise: the model predicts 0 (or less) where a sample was measured "
                    "(e.g. at the dose time, before any drug has arrived), and log(0) has no "
                    "likelihood. Drop those samples (e.g. the rows at the dose time) or use "
                    "Noise('proportional', floor=…)")
            return
        if self.kind != "proportional" or self.floor > 0:
            return
        if bool(((predicted == 0) & mask.to(torch.bool)).any()):
            raise ConfigError(
                "proportional noise with floor=0: the model predicts exactly 0 where a sample was "
                "measured (e.g. at the dose time, before any drug has arrived), where this noise "
                "has zero variance and the likelihood degenerates. Pass Noise('proportional', "
                "floor=…) (e.g. the quantification limit) or drop those samples")


def _numbers(value: Any) -> tuple[float, ...]:
    """A number or a sequence of numbers (python, numpy or torch) as floats; ``()`` if not."""
    if isinstance(value, (str, bytes, bool)):
        return ()
    if isinstance(value, Tensor):
        value = value.detach().cpu().double().reshape(-1).tolist()
    try:
        return tuple(float(v) for v in np.asarray(value, dtype=np.float64).reshape(-1))
    except (TypeError, ValueError):
        return ()
