"""Chaotic flows: the Lorenz-63 and Lorenz-96 systems.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ParameterError
from .base import ODESystem
from .parameters import REAL, prior_parameter
from .registry import register_system

__all__ = ["Lorenz63", "Lorenz96"]


@register_system
class Lorenz63(ODESystem):
    r"""Lorenz (1963) convection model.

    .. math::

        x' = \sigma (y - x), \qquad y' = x (\rho - z) - y, \qquad z' = x y - \beta z .

    At ``σ = 10, ρ = 28, β = 8/3`` the flow is chaotic (butterfly attractor) with leading
    Lyapunov exponent ``λ₁ ≈ 0.9056``; ``timescale`` is the Lyapunov time ``1/λ₁ ≈ 1.10``.
    """

    name = "lorenz63"
    state_names = ("x", "y", "z")
    parameters = (
        prior_parameter("sigma", 10.0, 9.0, 11.0, desc="Prandtl number"),
        prior_parameter("rho", 28.0, 25.0, 32.0, desc="reduced Rayleigh number"),
        prior_parameter("beta", 8.0 / 3.0, 2.4, 3.0, desc="geometric factor"),
    )
    #: Leading Lyapunov exponent at the standard parameters (Sprott 2003).
    lyapunov_exponent = 0.9056
    timescale = 1.0 / 0.9056
    description = "Chaotic convection roll model with the butterfly attractor."
    citation = (
        "Lorenz (1963), J. Atmos. Sci. 20:130 (x0 = (0, 1, 0)); λ₁ = 0.9056: Sprott, "
        "Chaos and Time-Series Analysis (2003)."
    )
    initial_box = ((-15.0, 15.0), (-20.0, 20.0), (0.0, 40.0))
    default_x0 = (0.0, 1.0, 0.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        sigma, rho, beta = p.unbind(-1)
        u, v, w = x.unbind(-1)
        return torch.stack([sigma * (v - u), u * (rho - w) - v, u * v - beta * w], dim=-1)


# ---------------------------------------------------------------------------- Lorenz-96
@register_system
class Lorenz96(ODESystem):
    r"""Lorenz (1996) model of an atmospheric quantity on a latitude circle of ``n`` sites.

    .. math::

        x_i' = (x_{i+1} - x_{i-2})\, x_{i-1} - x_i + F, \qquad i = 0, \dots, n-1,

    with cyclic indices. The dimension is a constructor argument, ``Lorenz96(n=40, F=8.0)``
    or ``get_system("lorenz96", n=10)``; ``n`` is kept by :meth:`with_params` and
    :meth:`constructor_kwargs`. At ``F = 8`` (n = 40) the flow is chaotic with leading
    Lyapunov exponent ≈ 1.68; ``timescale`` is the Lyapunov time ``1/1.68 ≈ 0.6`` (one time
    unit is ≈ 5 days). ``default_x0`` is the rest state ``x_i = F`` with ``x_0`` nudged by 0.01.
    """

    name = "lorenz96"
    state_names = tuple(f"x{i}" for i in range(40))
    parameters = (prior_parameter("F", 8.0, 6.0, 10.0, desc="constant forcing", domain=REAL),)
    #: Leading Lyapunov exponent at F = 8, n = 40 (it changes with F and, mildly, with n).
    lyapunov_exponent = 1.68
    timescale = 1.0 / 1.68
    description = "Cyclic chain of chaotic advection-damping-forcing sites; dimension n."
    citation = (
        "Lorenz (1996), Predictability: a problem partly solved, ECMWF Seminar; Lorenz & "
        "Emanuel (1998), J. Atmos. Sci. 55:399 (F = 8, n = 40)."
    )
    initial_box = ((-5.0, 10.0),) * 40
    default_x0 = (8.01,) + (8.0,) * 39

    def __init__(self, n: int = 40, **param_overrides: float) -> None:
        if isinstance(n, bool) or not float(n).is_integer() or int(n) < 4:
            raise ParameterError(f"lorenz96: n must be an integer >= 4 (sites); got {n!r}")
        n = int(n)
        self.state_names = tuple(f"x{i}" for i in range(n))
        self.units = ("",) * n
        self.initial_box = ((-5.0, 10.0),) * n
        super().__init__(**param_overrides)
        self._init_kwargs = {"n": n, **self._init_kwargs}
        F = self.defaults["F"]
        self.default_x0 = (F + 0.01,) + (F,) * (n - 1)

    @property
    def n(self) -> int:
        """Number of sites (the state dimension)."""
        return self.dim

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        F = p[:, :1]
        xp1 = torch.roll(x, -1, dims=-1)  # x_{i+1}
        xm1 = torch.roll(x, 1, dims=-1)  # x_{i-1}
        xm2 = torch.roll(x, 2, dims=-1)  # x_{i-2}
        return (xp1 - xm2) * xm1 - x + F


# ---------------------------------------------------------------------------- Kepler
