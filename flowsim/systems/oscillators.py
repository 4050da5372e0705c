"""Oscillators: harmonic, pendulum, Duffing, Van der Pol and the double pendulum.

Each class states its standard parameter values and where they come from; ``timescale``
is recomputed from the defaults each time a system is built.
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import torch
from torch import Tensor

from .base import ODESystem
from .parameters import POS, POS_OPEN, REAL, Parameter, prior_parameter
from .registry import register_system

__all__ = ["HarmonicOscillator", "Pendulum", "Duffing", "VanDerPol", "DoublePendulum"]


@register_system
class HarmonicOscillator(ODESystem):
    """Undamped harmonic oscillator ``q' = v,  v' = -ω² q`` (analytic solution known)."""

    name = "harmonic_oscillator"
    state_names = ("q", "v")
    units = ("m", "m/s")
    time_units = "s"
    parameters = (Parameter("omega", 1.0, prior=(0.5, 2.0), domain=POS, units="rad/s",
                            description="angular frequency"),)
    timescale = 2 * math.pi
    invariant_names = ("energy",)
    description = "Linear oscillator; energy (per unit mass) 0.5 v² + 0.5 ω² q² is conserved."
    citation = "Any mechanics textbook, e.g. Goldstein, Classical Mechanics (1980)."
    initial_box = ((-1.0, 1.0), (-1.0, 1.0))
    default_x0 = (1.0, 0.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        w = p[:, 0]
        return torch.stack([x[:, 1], -(w**2) * x[:, 0]], dim=-1)

    def _invariants(self, x: Tensor, p: Tensor) -> dict[str, Tensor]:
        w = p[:, 0]
        return {"energy": 0.5 * x[:, 1] ** 2 + 0.5 * (w * x[:, 0]) ** 2}

    def exact_solution(self, t: Tensor, x0: Tensor, p: Tensor | None = None) -> Tensor:
        """``q(t) = q0 cos ωt + v0/ω sin ωt`` for ``t`` shared ``(time,)`` or ``(batch, time)``."""
        x0 = self.check_state(x0, "x0")
        p = self.params_tensor(p, x0.shape[0], dtype=x0.dtype, device=x0.device)
        t = torch.as_tensor(t, dtype=x0.dtype, device=x0.device)
        if t.ndim == 1:
            t = t.expand(x0.shape[0], -1)
        w = p[:, :1]
        t = t - t[:, :1]
        q0, v0 = x0[:, :1], x0[:, 1:]
        c, s = torch.cos(w * t), torch.sin(w * t)
        q = q0 * c + v0 / w * s
        v = -q0 * w * s + v0 * c
        return torch.stack([q, v], dim=-1)


# ---------------------------------------------------------------------------- pendulum
def _pendulum_period(g: float, L: float) -> float:
    return 2 * math.pi * math.sqrt(L / g)


@register_system
class Pendulum(ODESystem):
    r"""Undamped simple (mathematical) pendulum.

    .. math::

        \theta' = \omega, \qquad \omega' = -\frac{g}{L} \sin\theta .

    The energy per unit mass ``E = ½ L² ω² + g L (1 − cos θ)`` is conserved; orbits with
    ``E < 2 g L`` librate (stay below the separatrix), those above rotate. ``initial_box``
    keeps ``E < 1.45 g L`` for every parameter in the prior, so sampled orbits librate.

    Parameters: ``g`` (gravitational acceleration, 9.81 m/s²) and ``L`` (length, 1 m); only
    ``g / L`` enters the dynamics. ``timescale`` is the small-amplitude period ``2π √(L/g)``
    (≈ 2.006 s at the defaults); the period grows with amplitude (≈ 2.14 s from ``default_x0``).
    """

    name = "pendulum"
    state_names = ("theta", "omega")
    units = ("rad", "rad/s")
    time_units = "s"
    parameters = (
        prior_parameter("g", 9.81, 9.0, 10.5, "m/s^2", "gravitational acceleration", POS_OPEN),
        prior_parameter("L", 1.0, 0.5, 2.0, "m", "pendulum length", POS_OPEN),
    )
    timescale = _pendulum_period(9.81, 1.0)
    invariant_names = ("energy",)
    description = "Nonlinear pendulum; energy per unit mass ½L²ω² + gL(1 − cos θ) is conserved."
    citation = "Strogatz, Nonlinear Dynamics and Chaos (2nd ed. 2015), §6.7; g = 9.81 m/s²."
    initial_box = ((-math.pi / 2, math.pi / 2), (-2.0, 2.0))
    default_x0 = (1.0, 0.0)

    def __init__(self, **param_overrides: float) -> None:
        super().__init__(**param_overrides)
        self.timescale = _pendulum_period(**self.defaults)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        g, L = p.unbind(-1)
        theta, omega = x.unbind(-1)
        return torch.stack([omega, -(g / L) * torch.sin(theta)], dim=-1)

    def _invariants(self, x: Tensor, p: Tensor) -> dict[str, Tensor]:
        g, L = p.unbind(-1)
        theta, omega = x.unbind(-1)
        return {"energy": 0.5 * (L * omega) ** 2 + g * L * (1.0 - torch.cos(theta))}


# ---------------------------------------------------------------------------- duffing
@register_system
class Duffing(ODESystem):
    r"""Damped, periodically driven Duffing oscillator (non-autonomous).

    .. math::

        x' = v, \qquad v' = -\delta v - \alpha x - \beta x^3 + \gamma \cos(\omega t) .

    With ``α = −1, β = 1`` the potential ``α x²/2 + β x⁴/4`` is a double well; the standard
    values ``δ = 0.3, γ = 0.5, ω = 1.2`` give a chaotic (strange) attractor on which the
    particle hops irregularly between the wells. ``timescale`` is the drive period ``2π/ω``
    (≈ 5.24). ``t`` may be a scalar or one time per batch row.
    """

    name = "duffing"
    state_names = ("x", "v")
    parameters = (
        prior_parameter("delta", 0.3, 0.2, 0.4, desc="linear damping", domain=POS),
        prior_parameter("alpha", -1.0, -1.25, -0.75, desc="linear stiffness (< 0: double well)",
             domain=REAL),
        prior_parameter("beta", 1.0, 0.75, 1.25, desc="cubic stiffness (> 0: hardening)", domain=POS_OPEN),
        prior_parameter("gamma", 0.5, 0.3, 0.6, desc="forcing amplitude", domain=POS),
        prior_parameter("omega", 1.2, 1.0, 1.4, desc="forcing angular frequency", domain=POS_OPEN),
    )
    timescale = 2 * math.pi / 1.2
    autonomous = False
    description = "Driven double-well oscillator; chaotic at the default parameters."
    citation = (
        "Guckenheimer & Holmes, Nonlinear Oscillations, Dynamical Systems, and Bifurcations "
        "of Vector Fields (1983), §2.2; δ=0.3, γ=0.5, ω=1.2: Jordan & Smith, Nonlinear "
        "Ordinary Differential Equations (4th ed. 2007), §13.3."
    )
    initial_box = ((-2.0, 2.0), (-1.5, 1.5))
    default_x0 = (1.0, 0.0)

    def __init__(self, **param_overrides: float) -> None:
        super().__init__(**param_overrides)
        self.timescale = 2 * math.pi / self.defaults["omega"]

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        delta, alpha, beta, gamma, omega = p.unbind(-1)
        pos, vel = x.unbind(-1)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)  # () or (batch,): broadcasts
        force = gamma * torch.cos(omega * t)
        acc = -delta * vel - alpha * pos - beta * pos**3 + force
        return torch.stack([vel, acc], dim=-1)


# ---------------------------------------------------------------------------- van der Pol
#: Limit-cycle period of ``x'' − μ(1 − x²)x' + x = 0``, computed once with Radau (rtol 1e-11).
_VDP_MU = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0)
_VDP_T = (6.2832, 6.3077, 6.3807, 6.6633, 7.0964, 7.6299, 8.8591, 10.2035, 11.6122, 14.5397,
          19.0784, 26.8258, 34.6823, 50.5437, 82.5083)
_AIRY_A1 = 2.338107410459767  # |first zero of Ai|


def _van_der_pol_period(mu: float) -> float:
    """Period of the van der Pol limit cycle (table + Dorodnitsyn's large-μ expansion).

    Linear interpolation of computed periods for ``μ ≤ 50`` (error < 0.5 %), then
    ``T ≈ (3 − 2 ln 2) μ + 3 a₁ μ^{-1/3} − (2/3) ln μ / μ + c / μ`` (error < 0.02 %).
    """
    if mu >= _VDP_MU[-1]:
        c = 3 * math.log(2) - math.log(3) - 1.5 - 2 * 0.1723
        return (
            (3 - 2 * math.log(2)) * mu
            + 3 * _AIRY_A1 * mu ** (-1 / 3)
            - 2 / 3 * math.log(mu) / mu
            + c / mu
        )
    i = bisect.bisect_right(_VDP_MU, mu) - 1
    m0, m1 = _VDP_MU[i], _VDP_MU[i + 1]
    t0, t1 = _VDP_T[i], _VDP_T[i + 1]
    return t0 + (t1 - t0) * (mu - m0) / (m1 - m0)


@register_system
class VanDerPol(ODESystem):
    r"""Van der Pol relaxation oscillator.

    .. math::

        x' = y, \qquad y' = \mu (1 - x^2) y - x .

    Every orbit except the origin approaches a limit cycle of amplitude ≈ 2. ``timescale`` is
    the limit-cycle period (6.663 at μ = 1, ≈ (3 − 2 ln 2) μ for large μ). For ``μ ≥ 100``
    the system is marked ``stiff`` (slow drift along the cubic nullcline, jumps on a 1/μ
    scale): ``get_system("van_der_pol", mu=1000).stiff`` is True.
    """

    name = "van_der_pol"
    state_names = ("x", "y")
    parameters = (prior_parameter("mu", 1.0, 0.5, 2.0, desc="nonlinearity / damping strength"),)
    timescale = _van_der_pol_period(1.0)
    #: ``stiff`` is set when ``mu`` is at least this value.
    stiff_threshold = 100.0
    description = "Self-sustained relaxation oscillations; stiff for large mu."
    citation = (
        "van der Pol (1926), Phil. Mag. 2:978; Hairer & Wanner, Solving ODEs II (1996), "
        "§IV.1 (x0 = (2, 0)); period asymptotics: Strogatz (2015) §7.5, Dorodnitsyn (1947)."
    )
    initial_box = ((-3.0, 3.0), (-3.0, 3.0))
    default_x0 = (2.0, 0.0)

    def __init__(self, **param_overrides: float) -> None:
        super().__init__(**param_overrides)
        mu = self.defaults["mu"]
        self.timescale = _van_der_pol_period(mu)
        self.stiff = mu >= self.stiff_threshold

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        mu = p[:, 0]
        u, v = x.unbind(-1)
        return torch.stack([v, mu * (1.0 - u**2) * v - u], dim=-1)

    # numpy forms for scipy's per-trajectory solves (flowsim.systems.numpy_rhs)
    def vector_field_numpy(self, t: float, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        u, v, mu = x[:, 0], x[:, 1], p[:, 0]
        return np.stack([v, mu * (1.0 - u * u) * v - u], axis=-1)

    def jacobian_numpy(self, t: float, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        u, v, mu = x[:, 0], x[:, 1], p[:, 0]
        jac = np.zeros((x.shape[0], 2, 2))
        jac[:, 0, 1] = 1.0
        jac[:, 1, 0] = -2.0 * mu * u * v - 1.0
        jac[:, 1, 1] = mu * (1.0 - u * u)
        return jac


# ---------------------------------------------------------------------------- Lorenz-63


def _double_pendulum_slow_period(m1: float, m2: float, l1: float, l2: float, g: float) -> float:
    """Period of the slow small-oscillation normal mode (2.62 s for unit masses and lengths)."""
    det_m = m1 * m2 * (l1 * l2) ** 2
    k1k2 = (m1 + m2) * g * l1 * m2 * g * l2
    b = (m1 + m2) * m2 * g * l1 * l2 * (l1 + l2)
    lam = 2 * k1k2 / (b + math.sqrt(max(b * b - 4 * det_m * k1k2, 0.0)))  # smaller ω²
    return 2 * math.pi / math.sqrt(lam)


@register_system
class DoublePendulum(ODESystem):
    r"""Planar double pendulum: point masses on massless rigid rods, angles from the vertical.

    With ``Δ = θ₁ − θ₂`` and ``D = 2m₁ + m₂ − m₂ cos 2Δ``:

    .. math::

        \theta_1' &= \omega_1, \qquad \theta_2' = \omega_2, \\
        \omega_1' &= \frac{-g(2m_1 + m_2)\sin\theta_1 - m_2 g \sin(\theta_1 - 2\theta_2)
            - 2 m_2 \sin\Delta\,(\omega_2^2 l_2 + \omega_1^2 l_1 \cos\Delta)}{l_1 D}, \\
        \omega_2' &= \frac{2 \sin\Delta\,(\omega_1^2 l_1 (m_1 + m_2)
            + g (m_1 + m_2) \cos\theta_1 + \omega_2^2 l_2 m_2 \cos\Delta)}{l_2 D}.

    The energy ``½(m₁+m₂) l₁² ω₁² + ½ m₂ l₂² ω₂² + m₂ l₁ l₂ ω₁ ω₂ cos Δ − (m₁+m₂) g l₁ cos θ₁
    − m₂ g l₂ cos θ₂`` is conserved. ``initial_box`` (|θ| ≤ 0.75, |ω| ≤ 1) keeps the energy
    below the lowest saddle ``(θ₁, θ₂) = (0, π)`` for every parameter in the prior, so neither
    arm can flip over and the angles stay bounded; at the defaults such states are moderately
    nonlinear, often chaotic. ``timescale`` is the slow normal-mode period (≈ 2.62 s).
    There is no single standard initial state; ``default_x0`` releases both arms from rest
    at 0.7 rad.
    """

    name = "double_pendulum"
    state_names = ("theta1", "theta2", "omega1", "omega2")
    units = ("rad", "rad", "rad/s", "rad/s")
    time_units = "s"
    parameters = (
        prior_parameter("m1", 1.0, 0.8, 1.25, "kg", "upper bob mass", POS_OPEN),
        prior_parameter("m2", 1.0, 0.8, 1.25, "kg", "lower bob mass", POS_OPEN),
        prior_parameter("l1", 1.0, 0.8, 1.25, "m", "upper rod length", POS_OPEN),
        prior_parameter("l2", 1.0, 0.8, 1.25, "m", "lower rod length", POS_OPEN),
        prior_parameter("g", 9.81, 9.0, 10.5, "m/s^2", "gravitational acceleration", POS_OPEN),
    )
    timescale = _double_pendulum_slow_period(1.0, 1.0, 1.0, 1.0, 9.81)
    invariant_names = ("energy",)
    description = "Chaotic double pendulum of two point masses; total energy is conserved."
    citation = (
        "Shinbrot, Grebogi, Wisdom & Yorke (1992), Am. J. Phys. 60:491; Levien & Tan (1993), "
        "Am. J. Phys. 61:1038; m = 1 kg, l = 1 m, g = 9.81 m/s²."
    )
    initial_box = ((-0.75, 0.75), (-0.75, 0.75), (-1.0, 1.0), (-1.0, 1.0))
    default_x0 = (0.7, 0.7, 0.0, 0.0)

    def __init__(self, **param_overrides: float) -> None:
        super().__init__(**param_overrides)
        self.timescale = _double_pendulum_slow_period(**self.defaults)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        m1, m2, l1, l2, g = p.unbind(-1)
        th1, th2, w1, w2 = x.unbind(-1)
        d = th1 - th2
        sin_d, cos_d = torch.sin(d), torch.cos(d)
        den = 2 * m1 + m2 - m2 * torch.cos(2 * d)
        a1 = (
            -g * (2 * m1 + m2) * torch.sin(th1)
            - m2 * g * torch.sin(th1 - 2 * th2)
            - 2 * sin_d * m2 * (w2**2 * l2 + w1**2 * l1 * cos_d)
        ) / (l1 * den)
        a2 = (
            2 * sin_d * (w1**2 * l1 * (m1 + m2) + g * (m1 + m2) * torch.cos(th1)
                         + w2**2 * l2 * m2 * cos_d)
        ) / (l2 * den)
        return torch.stack([w1, w2, a1, a2], dim=-1)

    def _invariants(self, x: Tensor, p: Tensor) -> dict[str, Tensor]:
        m1, m2, l1, l2, g = p.unbind(-1)
        th1, th2, w1, w2 = x.unbind(-1)
        kinetic = (
            0.5 * (m1 + m2) * (l1 * w1) ** 2
            + 0.5 * m2 * (l2 * w2) ** 2
            + m2 * l1 * l2 * w1 * w2 * torch.cos(th1 - th2)
        )
        potential = -(m1 + m2) * g * l1 * torch.cos(th1) - m2 * g * l2 * torch.cos(th2)
        return {"energy": kinetic + potential}
