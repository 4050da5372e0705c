"""Celestial mechanics: the Kepler two-body problem.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._utils import as_generator, check_int
from ..errors import ConfigError
from .base import ODESystem
from .parameters import POS_OPEN, prior_parameter
from .registry import register_system

__all__ = ["Kepler"]


def _kepler_box(
    gm: float, a_range: tuple[float, float], e_range: tuple[float, float]
) -> tuple[tuple[float, float], ...]:
    """A box holding every state on the orbits :meth:`Kepler.sample_initial` draws."""
    q_max = a_range[1] * (1 + e_range[1])  # largest apocentre
    v_max = math.sqrt(gm * (1 + e_range[1]) / (a_range[0] * (1 - e_range[1])))  # pericentre
    q_max, v_max = math.ceil(q_max * 100 - 1e-6) / 100, math.ceil(v_max * 100 - 1e-6) / 100
    return ((-q_max, q_max),) * 2 + ((-v_max, v_max),) * 2


@register_system
class Kepler(ODESystem):
    r"""Planar Kepler (two-body) problem in reduced, relative coordinates.

    .. math::

        \mathbf{q}' = \mathbf{v}, \qquad
        \mathbf{v}' = -GM \, \frac{\mathbf{q}}{|\mathbf{q}|^3},
        \qquad \mathbf{q} = (q_x, q_y),\ \mathbf{v} = (v_x, v_y).

    Energy ``½|v|² − GM/|q|`` and angular momentum ``q_x v_y − q_y v_x`` are conserved.
    ``default_x0`` is the eccentric (e = 0.6) orbit of Hairer, Lubich & Wanner with a = 1,
    so ``timescale`` is its period ``2π √(a³/GM)`` = 2π at GM = 1.

    :meth:`sample_initial` draws bound Keplerian orbits, never states from a box: semi-major
    axis ``a ~ U(0.75, 1.5)``, eccentricity ``e ~ U(0, 0.6)``, uniform mean anomaly (phase),
    argument of pericentre and sense of rotation; all pericentres are ``a(1 − e) ≥ 0.3``.
    Orbits are computed for the default ``GM``; evolved with any other ``GM`` in the prior
    (0.9–1.1 × default) they stay bound, with e ≤ 0.78 and pericentre ≥ 0.26.
    """

    name = "kepler"
    state_names = ("qx", "qy", "vx", "vy")
    parameters = (prior_parameter("GM", 1.0, 0.9, 1.1, desc="gravitational parameter G(m1 + m2)",
                       domain=POS_OPEN),)
    timescale = 2 * math.pi
    invariant_names = ("energy", "angular_momentum")
    description = "Two-body gravitational orbit; energy and angular momentum are conserved."
    citation = (
        "Hairer, Lubich & Wanner, Geometric Numerical Integration (2nd ed. 2006), §I.2.3 "
        "(GM = 1, e = 0.6 initial state)."
    )
    #: Ranges of the orbital elements drawn by :meth:`sample_initial`.
    semi_major_axis_range = (0.75, 1.5)
    eccentricity_range = (0.0, 0.6)
    #: Bounds every sampled state: |q| ≤ a_max (1 + e_max), |v| ≤ the fastest pericentre speed.
    initial_box = _kepler_box(1.0, semi_major_axis_range, eccentricity_range)
    default_x0 = (0.4, 0.0, 0.0, 2.0)  # q = (1 − e, 0), v = (0, √((1 + e)/(1 − e))), e = 0.6

    def __init__(self, **param_overrides: float) -> None:
        super().__init__(**param_overrides)
        gm = self.defaults["GM"]
        self.timescale = 2 * math.pi / math.sqrt(gm)
        self.initial_box = _kepler_box(gm, self.semi_major_axis_range, self.eccentricity_range)
        self.default_x0 = (0.4, 0.0, 0.0, 2.0 * math.sqrt(gm))

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        gm = p[:, 0]
        qx, qy, vx, vy = x.unbind(-1)
        k = gm * (qx**2 + qy**2) ** -1.5
        return torch.stack([vx, vy, -k * qx, -k * qy], dim=-1)

    def _invariants(self, x: Tensor, p: Tensor) -> dict[str, Tensor]:
        gm = p[:, 0]
        qx, qy, vx, vy = x.unbind(-1)
        energy = 0.5 * (vx**2 + vy**2) - gm / torch.sqrt(qx**2 + qy**2)
        return {"energy": energy, "angular_momentum": qx * vy - qy * vx}

    def sample_initial(
        self,
        n: int,
        generator: torch.Generator | int | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``n`` states on random bound orbits (see the class docstring), ``(n, 4)``.

        Deterministic for a seeded generator.
        """
        n = check_int(n, "n (how many to draw)", ConfigError, low=0)
        g = as_generator(generator)
        u = torch.rand(n, 5, generator=g, dtype=torch.float64)
        (a_lo, a_hi), (e_lo, e_hi) = self.semi_major_axis_range, self.eccentricity_range
        a = a_lo + (a_hi - a_lo) * u[:, 0]
        e = e_lo + (e_hi - e_lo) * u[:, 1]
        mean_anomaly = 2 * math.pi * u[:, 2]
        arg_peri = 2 * math.pi * u[:, 3]
        sense = torch.where(u[:, 4] < 0.5, 1.0, -1.0).to(torch.float64)
        # Kepler's equation E − e sin E = M by Newton's method (converges for e < 0.8 from E = M)
        ecc_anom = mean_anomaly.clone()
        for _ in range(30):
            ecc_anom = ecc_anom - (ecc_anom - e * torch.sin(ecc_anom) - mean_anomaly) / (
                1 - e * torch.cos(ecc_anom)
            )
        cos_e, sin_e = torch.cos(ecc_anom), torch.sin(ecc_anom)
        b = a * torch.sqrt(1 - e**2)
        mean_motion = math.sqrt(self.defaults["GM"]) * a**-1.5
        e_dot = mean_motion / (1 - e * cos_e)  # dE/dt
        # perifocal frame (pericentre on +x); `sense` mirrors the orbit to run clockwise
        px, py = a * (cos_e - e), sense * b * sin_e
        pvx, pvy = -a * sin_e * e_dot, sense * b * cos_e * e_dot
        c, s = torch.cos(arg_peri), torch.sin(arg_peri)
        x = torch.stack([c * px - s * py, s * px + c * py, c * pvx - s * pvy, s * pvx + c * pvy], -1)
        return x.to(dtype=dtype, device=device)


# ---------------------------------------------------------------------------- double pendulum
