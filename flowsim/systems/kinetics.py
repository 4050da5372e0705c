"""Chemical kinetics: the Brusselator, Sel'kov's glycolysis model and Robertson's stiff system.

Each class states its standard parameter values and where they come from. All systems are
autonomous; ``t`` is accepted and ignored. :mod:`.biology` re-exports them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .base import ODESystem
from .parameters import prior_parameter
from .registry import register_system

__all__ = ["Brusselator", "Selkov", "Robertson"]


@register_system
class Brusselator(ODESystem):
    """Brusselator autocatalytic reaction.

    ``x' = A + x² y − (B + 1) x,   y' = B x − x² y``. Fixed point ``(A, B/A)``, unstable for
    ``B > 1 + A²``: with A = 1, B = 3 a limit cycle of period ≈ 7.2.
    """

    name = "brusselator"
    state_names = ("x", "y")
    parameters = (
        prior_parameter("A", 1.0, 0.8, 1.2, desc="feed concentration A"),
        prior_parameter("B", 3.0, 2.5, 3.5, desc="feed concentration B"),
    )
    timescale = 7.2
    positive = True
    description = "Model chemical oscillator (Prigogine-Lefever); limit cycle at A=1, B=3."
    citation = "Prigogine & Lefever (1968), J. Chem. Phys. 48:1695; Hairer, Norsett & Wanner I."
    initial_box = ((0.5, 3.0), (0.5, 4.5))
    default_x0 = (1.0, 1.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        a, b = p.unbind(-1)
        u, v = x.unbind(-1)
        u2v = u * u * v
        return torch.stack([a + u2v - (b + 1.0) * u, b * u - u2v], dim=-1)


@register_system
class Selkov(ODESystem):
    """Sel'kov model of glycolytic oscillations (Strogatz's dimensionless form).

    ``x' = −x + a y + x² y,   y' = b − a y − x² y`` (x ADP, y F6P). Fixed point
    ``(b, b/(a + b²))``; a = 0.08, b = 0.6 gives a limit cycle of period ≈ 9.6.
    """

    name = "selkov"
    state_names = ("x", "y")
    parameters = (
        prior_parameter("a", 0.08, 0.06, 0.1, desc="kinetic parameter a"),
        prior_parameter("b", 0.6, 0.5, 0.7, desc="kinetic parameter b (substrate influx)"),
    )
    timescale = 9.6
    positive = True
    description = "Glycolysis (phosphofructokinase) oscillator; limit cycle at a=0.08, b=0.6."
    citation = "Sel'kov (1968), Eur. J. Biochem. 4:79; Strogatz, Nonlinear Dynamics and Chaos, 7.3."
    initial_box = ((0.1, 2.0), (0.1, 2.5))
    default_x0 = (1.0, 1.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        a, b = p.unbind(-1)
        u, v = x.unbind(-1)
        u2v = u * u * v
        return torch.stack([-u + a * v + u2v, b - a * v - u2v], dim=-1)


@register_system
class Robertson(ODESystem):
    """Robertson's stiff chemical kinetics, the classic stiff test problem.

    ``y1' = −k1 y1 + k3 y2 y3,  y2' = k1 y1 − k2 y2² − k3 y2 y3,  y3' = k2 y2²``;
    mass ``y1 + y2 + y3`` is conserved. The rate constants span nine decades: y2 equilibrates
    in ~1e-4, y1 decays on ~40 (timescale) and the solution keeps evolving up to t ~ 1e11, so
    log-spaced time grids are natural. Use an implicit solver.
    """

    name = "robertson"
    state_names = ("y1", "y2", "y3")
    parameters = (
        prior_parameter("k1", 0.04, 0.032, 0.048, desc="rate of y1 -> y2"),
        prior_parameter("k2", 3e7, 2.4e7, 3.6e7, desc="rate of 2 y2 -> y2 + y3"),
        prior_parameter("k3", 1e4, 8e3, 1.2e4, desc="rate of y2 + y3 -> y1 + y3"),
    )
    timescale = 40.0
    stiff = True
    positive = True
    invariant_names = ("mass",)
    description = "Autocatalytic reaction network with rates spanning 9 decades; stiff."
    citation = "Robertson (1966), in Numerical Analysis; Hairer & Wanner, Solving ODEs II, IV.1."
    initial_box = ((0.9, 1.0), (0.0, 1e-5), (0.0, 0.1))
    default_x0 = (1.0, 0.0, 0.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        k1, k2, k3 = p.unbind(-1)
        y1, y2, y3 = x.unbind(-1)
        r1, r2, r3 = k1 * y1, k2 * y2 * y2, k3 * y2 * y3
        return torch.stack([-r1 + r3, r1 - r2 - r3, r2], dim=-1)

    # numpy forms for scipy's per-trajectory solves (flowsim.systems.numpy_rhs)
    def vector_field_numpy(self, t: float, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        (k1, k2, k3), (y1, y2, y3) = p.T, x.T
        r1, r2, r3 = k1 * y1, k2 * y2 * y2, k3 * y2 * y3
        return np.stack([-r1 + r3, r1 - r2 - r3, r2], axis=-1)

    def jacobian_numpy(self, t: float, x: np.ndarray, p: np.ndarray) -> np.ndarray:
        (k1, k2, k3), (_, y2, y3) = p.T, x.T
        zero = np.zeros_like(y2)
        return np.stack([np.stack([-k1, k3 * y3, k3 * y2], -1),
                         np.stack([k1, -2 * k2 * y2 - k3 * y3, -k3 * y2], -1),
                         np.stack([zero, 2 * k2 * y2, zero], -1)], axis=-2)

    def _invariants(self, x: Tensor, p: Tensor) -> dict[str, Tensor]:
        return {"mass": x.sum(-1)}
