"""Biological and chemical systems: populations, epidemics, neurons, gene circuits, kinetics.

Each class states its standard parameter values and where they come from. All systems are
autonomous; ``t`` is accepted and ignored. The chemical kinetics (Brusselator, Sel'kov,
Robertson) live in :mod:`.kinetics`; this module gathers them with the rest.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import ODESystem

# re-exported: the catalogue groups chemistry with biology
from .kinetics import Brusselator as Brusselator
from .kinetics import Robertson as Robertson
from .kinetics import Selkov as Selkov
from .parameters import POS, REAL, prior_parameter
from .registry import register_system

__all__ = [
    "LotkaVolterra",
    "SIR",
    "SEIR",
    "FitzHughNagumo",
    "HodgkinHuxley",
    "Repressilator",
    "Brusselator",
    "Goodwin",
    "Selkov",
    "Robertson",
]

_G, _E = "mS/cm^2", "mV"




def _x_over_1_minus_exp(x: Tensor) -> Tensor:
    """``x / (1 - exp(-x))``, smooth at ``x = 0`` (value 1) and overflow-free for large ``|x|``.

    A Taylor series is used for ``|x| < 1e-2``; elsewhere ``|x| / -expm1(-|x|)``, times
    ``exp(-|x|)`` for negative ``x``. The unused branch never sees 0/0, so gradients are finite.
    """
    small = x.abs() < 1e-2
    a = torch.where(small, torch.ones_like(x), x.abs())
    big = a / -torch.expm1(-a) * torch.where(x >= 0, torch.ones_like(a), torch.exp(-a))
    x2 = x * x
    series = 1.0 + 0.5 * x + x2 / 12.0 - x2 * x2 / 720.0
    return torch.where(small, series, big)


def _repression(z: Tensor, n: Tensor) -> Tensor:
    """Hill repression ``1 / (1 + z^n)``; ``z`` is clamped at 0 so ``z^n`` stays real."""
    return 1.0 / (1.0 + z.clamp_min(0.0) ** n)


@register_system
class LotkaVolterra(ODESystem):
    """Lotka–Volterra predator–prey model.

    ``x' = α x − β x y,   y' = δ x y − γ y``  (x prey, y predator). Every orbit is closed and
    ``V = δ x − γ ln x + β y − α ln y`` is conserved; the centre is ``(γ/δ, α/β)``.
    """

    name = "lotka_volterra"
    state_names = ("x", "y")
    parameters = (
        prior_parameter("alpha", 1.1, 0.8, 1.4, desc="prey growth rate"),
        prior_parameter("beta", 0.4, 0.3, 0.5, desc="predation rate"),
        prior_parameter("delta", 0.1, 0.075, 0.125, desc="predator growth per prey eaten"),
        prior_parameter("gamma", 0.4, 0.3, 0.5, desc="predator death rate"),
    )
    timescale = 14.3  # period of the orbit through default_x0 (small-orbit period 2π/√(αγ) ≈ 9.5)
    positive = True
    invariant_names = ("V",)
    description = "Predator-prey oscillations on closed orbits; V is conserved."
    citation = "Lotka (1925); Volterra (1926); values as in the common textbook/SciPy example."
    initial_box = ((1.0, 10.0), (1.0, 10.0))
    default_x0 = (10.0, 10.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        a, b, d, g = p.unbind(-1)
        u, v = x.unbind(-1)
        return torch.stack([a * u - b * u * v, d * u * v - g * v], dim=-1)

    def _invariants(self, x: Tensor, p: Tensor) -> dict[str, Tensor]:
        a, b, d, g = p.unbind(-1)
        u, v = x.unbind(-1)
        return {"V": d * u - g * torch.log(u) + b * v - a * torch.log(v)}


@register_system
class SIR(ODESystem):
    """Kermack–McKendrick SIR epidemic with frequency-dependent transmission.

    ``S' = −β S I / N,  I' = β S I / N − γ I,  R' = γ I``,  ``N = S + I + R`` (conserved).
    States may be fractions (N = 1, the default) or counts: the dynamics of S/N, I/N, R/N do
    not depend on N. ``R0 = β/γ = 3``; from ``default_x0`` infections peak at day ≈ 27.
    """

    name = "sir"
    state_names = ("S", "I", "R")
    units = ("fraction", "fraction", "fraction")
    time_units = "day"
    parameters = (
        prior_parameter("beta", 0.3, 0.2, 0.5, "1/day", "transmission rate"),
        prior_parameter("gamma", 0.1, 0.07, 0.14, "1/day", "recovery rate (1 / infectious period)"),
    )
    timescale = 40.0
    positive = True
    invariant_names = ("total_population",)
    description = "Epidemic outbreak in a closed population; S + I + R is conserved."
    citation = "Kermack & McKendrick (1927), Proc. R. Soc. A 115:700; Hethcote (2000), SIAM Rev."
    initial_box = ((0.5, 1.0), (0.001, 0.1), (0.0, 0.5))
    default_x0 = (0.99, 0.01, 0.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        beta, gamma = p.unbind(-1)
        s, i, r = x.unbind(-1)
        inf = beta * s * i / (s + i + r)
        rec = gamma * i
        return torch.stack([-inf, inf - rec, rec], dim=-1)

    def _invariants(self, x: Tensor, p: Tensor) -> dict[str, Tensor]:
        return {"total_population": x.sum(-1)}


@register_system
class SEIR(ODESystem):
    """SEIR epidemic: SIR with a latent (exposed) class.

    ``S' = −β S I / N,  E' = β S I / N − σ E,  I' = σ E − γ I,  R' = γ I``,
    ``N = S + E + I + R`` (conserved). Latent period 1/σ = 5 days; infections peak at day ≈ 51.
    """

    name = "seir"
    state_names = ("S", "E", "I", "R")
    units = ("fraction",) * 4
    time_units = "day"
    parameters = (
        prior_parameter("beta", 0.3, 0.2, 0.5, "1/day", "transmission rate"),
        prior_parameter("sigma", 0.2, 0.1, 0.5, "1/day", "incubation rate (1 / latent period)"),
        prior_parameter("gamma", 0.1, 0.07, 0.14, "1/day", "recovery rate (1 / infectious period)"),
    )
    timescale = 60.0
    positive = True
    invariant_names = ("total_population",)
    description = "Epidemic with incubation in a closed population; S + E + I + R is conserved."
    citation = "Anderson & May (1991), Infectious Diseases of Humans; Hethcote (2000), SIAM Rev."
    initial_box = ((0.5, 1.0), (0.0, 0.05), (0.001, 0.1), (0.0, 0.5))
    default_x0 = (0.99, 0.0, 0.01, 0.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        beta, sigma, gamma = p.unbind(-1)
        s, e, i, r = x.unbind(-1)
        inf = beta * s * i / (s + e + i + r)
        inc, rec = sigma * e, gamma * i
        return torch.stack([-inf, inf - inc, inc - rec, rec], dim=-1)

    def _invariants(self, x: Tensor, p: Tensor) -> dict[str, Tensor]:
        return {"total_population": x.sum(-1)}


@register_system
class FitzHughNagumo(ODESystem):
    """FitzHugh–Nagumo excitable neuron.

    ``v' = v − v³/3 − w + I,   w' = ε (v + a − b w)``. With ``I = 0.5`` the rest state is
    unstable and ``v`` relaxes onto a limit cycle of period ≈ 39.5.
    """

    name = "fitzhugh_nagumo"
    state_names = ("v", "w")
    parameters = (
        prior_parameter("a", 0.7, 0.5, 0.9, domain=REAL, desc="recovery offset"),
        prior_parameter("b", 0.8, 0.6, 1.0, desc="recovery self-coupling"),
        prior_parameter("eps", 0.08, 0.05, 0.12, desc="time-scale ratio 1/τ (τ = 12.5)"),
        prior_parameter("I_ext", 0.5, 0.35, 1.0, domain=REAL, desc="applied current"),
    )
    timescale = 39.5
    description = "Two-variable reduction of Hodgkin-Huxley; relaxation oscillations at I=0.5."
    citation = "FitzHugh (1961), Biophys. J. 1:445; Nagumo, Arimoto & Yoshizawa (1962), Proc. IRE."
    initial_box = ((-2.5, 2.5), (-1.0, 2.0))
    default_x0 = (-1.0, 1.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        a, b, eps, i_ext = p.unbind(-1)
        v, w = x.unbind(-1)
        return torch.stack([v - v**3 / 3.0 - w + i_ext, eps * (v + a - b * w)], dim=-1)


@register_system
class HodgkinHuxley(ODESystem):
    """Hodgkin–Huxley squid giant axon (1952), modern convention (rest ≈ −65 mV).

    ``C V' = I − g_Na m³h (V − E_Na) − g_K n⁴ (V − E_K) − g_L (V − E_L)``, and for
    ``q ∈ {m, h, n}``: ``q' = α_q(V)(1 − q) − β_q(V) q`` with (V in mV, rates in 1/ms)
    ``α_m = 0.1(V+40)/(1−e^{−(V+40)/10})``, ``β_m = 4e^{−(V+65)/18}``,
    ``α_h = 0.07e^{−(V+65)/20}``, ``β_h = 1/(1+e^{−(V+35)/10})``,
    ``α_n = 0.01(V+55)/(1−e^{−(V+55)/10})``, ``β_n = 0.125e^{−(V+65)/80}``.
    The removable 0/0 of α_m, α_n at V = −40, −55 mV is evaluated with a series, so values
    and gradients are finite there. ``I = 10 µA/cm²`` gives repetitive spiking (period ≈ 14.6 ms).
    """

    name = "hodgkin_huxley"
    state_names = ("V", "m", "h", "n")
    units = ("mV", "", "", "")
    time_units = "ms"
    parameters = (
        prior_parameter("g_Na", 120.0, 100.0, 140.0, _G, "max sodium conductance", POS),
        prior_parameter("g_K", 36.0, 30.0, 42.0, _G, "max potassium conductance", POS),
        prior_parameter("g_L", 0.3, 0.25, 0.35, _G, "leak conductance", POS),
        prior_parameter("E_Na", 50.0, 45.0, 55.0, _E, "sodium reversal potential", REAL),
        prior_parameter("E_K", -77.0, -82.0, -72.0, _E, "potassium reversal potential", REAL),
        prior_parameter("E_L", -54.387, -60.0, -50.0, _E, "leak reversal potential", REAL),
        prior_parameter("C_m", 1.0, 0.8, 1.2, "uF/cm^2", "membrane capacitance"),
        prior_parameter("I_ext", 10.0, 7.0, 14.0, "uA/cm^2", "applied current density", REAL),
    )
    timescale = 15.0
    description = "Conductance-based action-potential model; tonic spiking at I_ext = 10."
    citation = (
        "Hodgkin & Huxley (1952), J. Physiol. 117:500; modern-convention values as in "
        "Dayan & Abbott (2001) / Ermentrout & Terman (2010)."
    )
    initial_box = ((-75.0, -55.0), (0.01, 0.2), (0.25, 0.9), (0.15, 0.5))
    default_x0 = (-65.0, 0.0529, 0.5961, 0.3177)  # resting steady state

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        g_na, g_k, g_l, e_na, e_k, e_l, c_m, i_ext = p.unbind(-1)
        v, m, h, n = x.unbind(-1)
        am = _x_over_1_minus_exp((v + 40.0) / 10.0)
        bm = 4.0 * torch.exp(-(v + 65.0) / 18.0)
        ah = 0.07 * torch.exp(-(v + 65.0) / 20.0)
        bh = torch.sigmoid((v + 35.0) / 10.0)
        an = 0.1 * _x_over_1_minus_exp((v + 55.0) / 10.0)
        bn = 0.125 * torch.exp(-(v + 65.0) / 80.0)
        i_ion = g_na * m**3 * h * (v - e_na) + g_k * n**4 * (v - e_k) + g_l * (v - e_l)
        return torch.stack(
            [
                (i_ext - i_ion) / c_m,
                am * (1.0 - m) - bm * m,
                ah * (1.0 - h) - bh * h,
                an * (1.0 - n) - bn * n,
            ],
            dim=-1,
        )


@register_system
class Repressilator(ODESystem):
    """Repressilator: three genes repressing each other in a ring (lacI ⊣ tetR ⊣ cI ⊣ lacI).

    ``m_i' = −m_i + α / (1 + p_j^n) + α0,   p_i' = −β (p_i − m_i)`` with ``j = 3, 1, 2`` for
    ``i = 1, 2, 3``. Time is in mRNA lifetimes (2 min half-life, ≈ 2.9 min), proteins in units
    of K_M. β = 0.2 is protein/mRNA decay-rate ratio for the paper's 10 min / 2 min half-lives
    (β = 5, used elsewhere, has the same stability boundary). Limit-cycle period ≈ 43.
    """

    name = "repressilator"
    state_names = ("m1", "m2", "m3", "p1", "p2", "p3")
    parameters = (
        prior_parameter("alpha", 216.0, 150.0, 300.0, desc="max transcription (+α0) per mRNA lifetime"),
        prior_parameter("alpha0", 0.216, 0.1, 0.4, desc="leaky transcription (α x leakiness 1e-3)"),
        prior_parameter("beta", 0.2, 0.1, 0.4, desc="protein / mRNA decay-rate ratio"),
        prior_parameter("n", 2.0, 1.8, 2.5, desc="Hill coefficient"),
    )
    timescale = 43.0
    positive = True
    description = "Synthetic gene-ring oscillator in E. coli, dimensionless model."
    citation = "Elowitz & Leibler (2000), Nature 403:335 (Box 1 and Fig. 1 parameters)."
    initial_box = ((0.5, 80.0),) * 3 + ((0.5, 60.0),) * 3
    default_x0 = (1.0, 2.0, 3.0, 1.0, 1.0, 1.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        alpha, alpha0, beta, n = (c[:, None] for c in p.unbind(-1))
        m, prot = x[:, :3], x[:, 3:]
        repressor = prot.roll(1, dims=-1)  # (p3, p1, p2)
        dm = -m + alpha * _repression(repressor, n) + alpha0
        dp = -beta * (prot - m)
        return torch.cat([dm, dp], dim=-1)


@register_system
class Goodwin(ODESystem):
    """Goodwin oscillator with Michaelis–Menten degradation (Gonze et al. 2005, uncoupled).

    ``X' = v1 K1ⁿ/(K1ⁿ + Zⁿ) − v2 X/(K2 + X)``  (clock-gene mRNA),
    ``Y' = k3 X − v4 Y/(K4 + Y)``  (clock protein),  ``Z' = k5 Y − v6 Z/(K6 + Z)`` (repressor).
    Saturable degradation lets n = 4 oscillate (linear decay would need n > 8); period ≈ 23.5 h.
    """

    name = "goodwin"
    state_names = ("X", "Y", "Z")
    units = ("nM", "nM", "nM")
    time_units = "h"
    parameters = (
        prior_parameter("v1", 0.7, 0.56, 0.84, "nM/h", "max transcription rate"),
        prior_parameter("K1", 1.0, 0.8, 1.2, "nM", "repression threshold"),
        prior_parameter("n", 4.0, 3.5, 5.0, "", "Hill coefficient"),
        prior_parameter("v2", 0.35, 0.28, 0.42, "nM/h", "max mRNA degradation rate"),
        prior_parameter("K2", 1.0, 0.8, 1.2, "nM", "mRNA degradation Michaelis constant"),
        prior_parameter("k3", 0.7, 0.56, 0.84, "1/h", "translation rate"),
        prior_parameter("v4", 0.35, 0.28, 0.42, "nM/h", "max protein degradation rate"),
        prior_parameter("K4", 1.0, 0.8, 1.2, "nM", "protein degradation Michaelis constant"),
        prior_parameter("k5", 0.7, 0.56, 0.84, "1/h", "repressor activation rate"),
        prior_parameter("v6", 0.35, 0.28, 0.42, "nM/h", "max repressor degradation rate"),
        prior_parameter("K6", 1.0, 0.8, 1.2, "nM", "repressor degradation Michaelis constant"),
    )
    timescale = 23.5
    positive = True
    description = "Negative-feedback circadian clock (mRNA, protein, repressor)."
    citation = "Goodwin (1965), Adv. Enzyme Regul. 3:425; Gonze et al. (2005), Biophys. J. 89:120."
    initial_box = ((0.05, 0.25), (0.1, 0.6), (1.0, 3.0))
    default_x0 = (0.1, 0.25, 2.5)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        v1, k1, n, v2, k2, k3, v4, k4, k5, v6, k6 = p.unbind(-1)
        X, Y, Z = x.unbind(-1)
        dx = v1 * _repression(Z / k1, n) - v2 * X / (k2 + X)
        dy = k3 * X - v4 * Y / (k4 + Y)
        dz = k5 * Y - v6 * Z / (k6 + Z)
        return torch.stack([dx, dy, dz], dim=-1)
