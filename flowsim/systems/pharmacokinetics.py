"""Pharmacokinetic systems: how a drug's amount moves between body compartments.

The one-compartment model with first-order absorption is the textbook model of an oral dose
(theophylline is its classic data set: :func:`flowsim.steer.load_theoph`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import ODESystem
from .parameters import prior_parameter
from .registry import register_system

__all__ = ["Theophylline"]


@register_system
class Theophylline(ODESystem):
    """One-compartment pharmacokinetics with first-order oral absorption (theophylline).

    ``A_gut' = −ka A_gut,   A_central' = ka A_gut − ke A_central``: an oral dose ``A_gut(0)``
    (mg; the Theoph study gave a dose per kg of body weight, so ``A_gut(0) = Dose · Wt``) is
    absorbed at rate ``ka`` and eliminated at rate ``ke`` (1/h; clearance ``CL = ke · V``). The
    measured plasma concentration is ``A_central / V`` (mg/L): :meth:`concentration`. The prior
    covers the per-subject least-squares fits of all 12 Theoph subjects (ka 0.68–8.9 /h, ke
    0.054–0.106 /h, V 24–41 L) with room to spare.

    Examples
    --------
    >>> import flowsim, torch
    >>> th = flowsim.get_system("theophylline")
    >>> th.param_names, th.state_names
    (('ka', 'ke', 'V'), ('A_gut', 'A_central'))
    >>> x = torch.tensor([[320.0, 0.0]], dtype=torch.float64)
    >>> th.concentration(x, th.default_params(1))
    tensor([[0.]], dtype=torch.float64)
    """

    name = "theophylline"
    state_names = ("A_gut", "A_central")
    units = ("mg", "mg")
    time_units = "h"
    parameters = (
        prior_parameter("ka", 1.5, 0.3, 12.0, "1/h", "absorption rate constant"),
        prior_parameter("ke", 0.09, 0.03, 0.2, "1/h", "elimination rate constant (CL / V)"),
        prior_parameter("V", 32.0, 15.0, 50.0, "L", "apparent volume of distribution (V/F)"),
    )
    timescale = 24.0  # the sampling span of the Theoph study (elimination half-life ~ 8 h)
    description = "Oral dose absorbed into one compartment and eliminated; concentration = A_central / V."
    citation = ("Boeckmann, Sheiner & Beal (1994), NONMEM Users Guide Part V; data: R datasets::Theoph; "
                "model: Gibaldi & Perrier (1982), Pharmacokinetics.")
    initial_box = ((250.0, 350.0), (0.0, 10.0))
    default_x0 = (320.0, 0.0)

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        ka, ke, _ = p.unbind(-1)
        gut, central = x.unbind(-1)
        return torch.stack([-ka * gut, ka * gut - ke * central], dim=-1)

    def concentration(self, x: Tensor, p: Tensor) -> Tensor:
        """Plasma concentration ``A_central / V`` (mg/L) of states ``x`` ``(batch, …, dim)`` with
        parameters ``p`` ``(batch, n_params)``: ``(batch, …, 1)``."""
        v = p[..., 2]
        v = v.reshape(v.shape + (1,) * (x.ndim - p.ndim))
        return (x[..., 1] / v)[..., None]
