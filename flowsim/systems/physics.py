"""Physical systems: oscillators, chaotic flows and celestial mechanics.

Each class states its standard parameter values and where they come from. Characteristic
times (``timescale``) that depend on the parameters are recomputed from the defaults each
time a system is built, so ``get_system("pendulum", L=4.0).timescale`` is the period at L = 4.
"""

from __future__ import annotations

import bisect
import math

import torch
from torch import Tensor

from .._utils import as_generator
from ..errors import ParameterError
from .base import ODESystem, Parameter
from .registry import register_system

__all__ = [
    "HarmonicOscillator",
    "Pendulum",
    "Duffing",
    "VanDerPol",
    "Lorenz63",
    "Lorenz96",
    "Kepler",
    "DoublePendulum",
]

_POS = (0.0, math.inf)  # closed: 0 is allowed by Parameter.check
#: For parameters that divide (lengths, masses, GM, frequencies): ``Parameter.domain`` is a
#: closed interval, so a tiny positive lower bound stands in for the open interval (0, inf).
_POS_OPEN = (1e-12, math.inf)
_REAL = (-math.inf, math.inf)


def _par(
    name: str,
    default: float,
    lo: float,
    hi: float,
    units: str = "",
    desc: str = "",
    domain: tuple[float, float] = _POS,
) -> Parameter:
    return Parameter(name, default, prior=(lo, hi), domain=domain, units=units, description=desc)


@register_system
class HarmonicOscillator(ODESystem):
    """Undamped harmonic oscillator ``q' = v,  v' = -ω² q`` (analytic solution known)."""

    name = "harmonic_oscillator"
    state_names = ("q", "v")
    units = ("m", "m/s")
    time_units = "s"
    parameters = (Parameter("omega", 1.0, prior=(0.5, 2.0), domain=_POS, units="rad/s",
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
        _par("g", 9.81, 9.0, 10.5, "m/s^2", "gravitational acceleration", _POS_OPEN),
        _par("L", 1.0, 0.5, 2.0, "m", "pendulum length", _POS_OPEN),
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
        _par("delta", 0.3, 0.2, 0.4, desc="linear damping", domain=_POS),
        _par("alpha", -1.0, -1.25, -0.75, desc="linear stiffness (< 0: double well)",
             domain=_REAL),
        _par("beta", 1.0, 0.75, 1.25, desc="cubic stiffness (> 0: hardening)", domain=_POS_OPEN),
        _par("gamma", 0.5, 0.3, 0.6, desc="forcing amplitude", domain=_POS),
        _par("omega", 1.2, 1.0, 1.4, desc="forcing angular frequency", domain=_POS_OPEN),
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
    parameters = (_par("mu", 1.0, 0.5, 2.0, desc="nonlinearity / damping strength"),)
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


# ---------------------------------------------------------------------------- Lorenz-63
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
        _par("sigma", 10.0, 9.0, 11.0, desc="Prandtl number"),
        _par("rho", 28.0, 25.0, 32.0, desc="reduced Rayleigh number"),
        _par("beta", 8.0 / 3.0, 2.4, 3.0, desc="geometric factor"),
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
    parameters = (_par("F", 8.0, 6.0, 10.0, desc="constant forcing", domain=_REAL),)
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
    parameters = (_par("GM", 1.0, 0.9, 1.1, desc="gravitational parameter G(m1 + m2)",
                       domain=_POS_OPEN),)
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
        _par("m1", 1.0, 0.8, 1.25, "kg", "upper bob mass", _POS_OPEN),
        _par("m2", 1.0, 0.8, 1.25, "kg", "lower bob mass", _POS_OPEN),
        _par("l1", 1.0, 0.8, 1.25, "m", "upper rod length", _POS_OPEN),
        _par("l2", 1.0, 0.8, 1.25, "m", "lower rod length", _POS_OPEN),
        _par("g", 9.81, 9.0, 10.5, "m/s^2", "gravitational acceleration", _POS_OPEN),
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
