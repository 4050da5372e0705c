"""What a parameter of an ODE system is, and the domains the catalogue's parameters use."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ParameterError

__all__ = ["Parameter"]


@dataclass(frozen=True)
class Parameter:
    """One parameter of an ODE system.

    Arguments
    ---------
    name:
        Identifier used in ``get_system(name, **{name: value})`` and in stores.
    default:
        The standard value from the literature.
    prior:
        ``(low, high)`` range sampled (uniformly) for parametric ensembles and surrogates.
    domain:
        ``(low, high)`` of values for which the model makes sense; values outside are refused.
    units:
        Physical units, free text (``""`` if dimensionless).
    description:
        One line saying what the parameter means.

    Examples
    --------
    >>> Parameter("mu", 1.0, prior=(0.5, 2.0), domain=(0.0, math.inf))
    Parameter(name='mu', default=1.0, prior=(0.5, 2.0), domain=(0.0, inf), units='', description='')
    """

    name: str
    default: float
    prior: tuple[float, float]
    domain: tuple[float, float] = (-math.inf, math.inf)
    units: str = ""
    description: str = ""

    def check(self, value: float) -> None:
        """Raise :class:`~flowsim.errors.ParameterError` if ``value`` lies outside the domain."""
        lo, hi = self.domain
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ParameterError(
                f"parameter {self.name!r}={value!r} is outside its allowed domain "
                f"[{lo}, {hi}]; choose a finite value inside it (default {self.default})"
            )


POS = (0.0, math.inf)  # closed: 0 is allowed by Parameter.check
#: For parameters that divide (lengths, masses, GM, frequencies): ``Parameter.domain`` is a
#: closed interval, so a tiny positive lower bound stands in for the open interval (0, inf).
POS_OPEN = (1e-12, math.inf)
REAL = (-math.inf, math.inf)


def prior_parameter(
    name: str,
    default: float,
    lo: float,
    hi: float,
    units: str = "",
    desc: str = "",
    domain: tuple[float, float] = POS,
) -> Parameter:
    """A catalogue parameter with prior ``(lo, hi)`` and a domain (default: non-negative)."""
    return Parameter(name, default, prior=(lo, hi), domain=domain, units=units, description=desc)


