"""Interpolants ``x_t = α(t) x0 + β(t) x1`` between a base sample ``x0`` (``t = 0``) and data ``x1``
(``t = 1``), and their flow-matching velocity targets ``α'(t) x0 + β'(t) x1``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["Interpolant", "LinearInterpolant", "VPInterpolant", "get_interpolant"]


@dataclass(frozen=True)
class Interpolant:
    """Base class: ``x_t = α(t) x0 + β(t) x1`` with ``α(0) = β(1) = 1``, ``α(1) = β(0) = 0``.

    Subclasses define :meth:`alpha`, :meth:`beta` and their derivatives; :meth:`point` and
    :meth:`velocity` follow. ``t`` is ``(batch,)``, ``x0``, ``x1`` are ``(batch, dim)``.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import LinearInterpolant
    >>> it = LinearInterpolant()
    >>> x0, x1 = torch.zeros(2, 1), torch.ones(2, 1)
    >>> it.point(torch.tensor([0.25, 1.0]), x0, x1).ravel().tolist()
    [0.25, 1.0]
    """

    name: str = "interpolant"

    def alpha(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def beta(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def dalpha(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def dbeta(self, t: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def point(self, t: Tensor, x0: Tensor, x1: Tensor) -> Tensor:
        """``x_t = α(t) x0 + β(t) x1``."""
        return self.alpha(t)[:, None] * x0 + self.beta(t)[:, None] * x1

    def velocity(self, t: Tensor, x0: Tensor, x1: Tensor) -> Tensor:
        """The flow-matching target ``∂_t x_t = α'(t) x0 + β'(t) x1``."""
        return self.dalpha(t)[:, None] * x0 + self.dbeta(t)[:, None] * x1


@dataclass(frozen=True)
class LinearInterpolant(Interpolant):
    """``x_t = (1 − t) x0 + t x1`` (rectified flow / conditional flow matching).

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import LinearInterpolant
    >>> LinearInterpolant().velocity(torch.tensor([0.3]), torch.zeros(1, 2), torch.ones(1, 2)).tolist()
    [[1.0, 1.0]]
    """

    name: str = "linear"

    def alpha(self, t: Tensor) -> Tensor:
        return 1 - t

    def beta(self, t: Tensor) -> Tensor:
        return t

    def dalpha(self, t: Tensor) -> Tensor:
        return -torch.ones_like(t)

    def dbeta(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


@dataclass(frozen=True)
class VPInterpolant(Interpolant):
    """Variance-preserving (trigonometric): ``x_t = cos(πt/2) x0 + sin(πt/2) x1``, so
    ``α² + β² = 1`` and unit-variance ``x0``, ``x1`` keep unit variance along the path.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import VPInterpolant
    >>> it = VPInterpolant()
    >>> t = torch.linspace(0, 1, 5)
    >>> bool(torch.allclose(it.alpha(t) ** 2 + it.beta(t) ** 2, torch.ones(5)))
    True
    """

    name: str = "vp"

    def alpha(self, t: Tensor) -> Tensor:
        return torch.cos(0.5 * math.pi * t)

    def beta(self, t: Tensor) -> Tensor:
        return torch.sin(0.5 * math.pi * t)

    def dalpha(self, t: Tensor) -> Tensor:
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def dbeta(self, t: Tensor) -> Tensor:
        return 0.5 * math.pi * torch.cos(0.5 * math.pi * t)


_INTERPOLANTS = {"linear": LinearInterpolant, "vp": VPInterpolant}


def get_interpolant(spec: str | Interpolant) -> Interpolant:
    """An :class:`Interpolant` from its name (``"linear"``, ``"vp"``) or itself.

    Arguments
    ---------
    spec:
        A name or an :class:`Interpolant`.

    Raises
    ------
    ConfigError
        An unknown name or type.

    Examples
    --------
    >>> from flowsim.generative import get_interpolant
    >>> get_interpolant("vp").name
    'vp'
    """
    if isinstance(spec, Interpolant):
        return spec
    if isinstance(spec, str) and spec in _INTERPOLANTS:
        return _INTERPOLANTS[spec]()
    raise ConfigError(f"interpolant must be one of {sorted(_INTERPOLANTS)} or an Interpolant; got {spec!r}")
