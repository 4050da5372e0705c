"""What a parameter of an ODE system is, and the domains the catalogue's parameters use."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ParameterError, ShapeError
from .checks import refuse_complex

__all__ = ["Parameter", "box_log_density", "params_tensor"]


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

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ParameterError(f"a parameter's name must be a non-empty string; got {self.name!r}")
        default = _real(self.name, "default", self.default)
        prior = _pair(self.name, "prior", self.prior)
        domain = _pair(self.name, "domain", self.domain)
        if not all(math.isfinite(v) for v in (default, *prior)):
            raise ParameterError(f"parameter {self.name!r}: default {default} and prior {prior} must be "
                                 "finite numbers")
        for what, (lo, hi) in (("prior", prior), ("domain", domain)):
            if not lo <= hi:
                raise ParameterError(f"parameter {self.name!r}: {what} low {lo} > high {hi}; give "
                                     f"({what}_low, {what}_high) with low <= high")
        if not (domain[0] <= prior[0] and prior[1] <= domain[1]):
            raise ParameterError(f"parameter {self.name!r}: prior {prior} reaches outside its domain "
                                 f"{domain}; samples from it would be refused")
        if not prior[0] <= default <= prior[1]:
            raise ParameterError(f"parameter {self.name!r}: default {default} lies outside its prior "
                                 f"{prior}; widen the prior or change the default")
        object.__setattr__(self, "default", default)
        object.__setattr__(self, "prior", prior)
        object.__setattr__(self, "domain", domain)

    def check(self, value: float) -> None:
        """Raise :class:`~flowsim.errors.ParameterError` if ``value`` lies outside the domain."""
        lo, hi = self.domain
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ParameterError(
                f"parameter {self.name!r}={value!r} is outside its allowed domain "
                f"[{lo}, {hi}]; choose a finite value inside it (default {self.default})"
            )


def _real(name: str, what: str, value: object) -> float:
    if isinstance(value, (bool, complex)) or not isinstance(value, (int, float)) and not hasattr(
            value, "__float__"):
        raise ParameterError(f"parameter {name!r}: {what} must be a real number; got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ParameterError(f"parameter {name!r}: {what} must be a real number; got {value!r}") from None


def _pair(name: str, what: str, value: object) -> tuple[float, float]:
    try:
        lo, hi = value  # type: ignore[misc]
    except (TypeError, ValueError):
        raise ParameterError(f"parameter {name!r}: {what} must be a pair (low, high); "
                             f"got {value!r}") from None
    lo, hi = _real(name, what, lo), _real(name, what, hi)
    if math.isnan(lo) or math.isnan(hi):
        raise ParameterError(f"parameter {name!r}: {what} contains NaN; got {value!r}")
    return lo, hi


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


def recentred_prior(q: Parameter, v: float) -> tuple[float, float]:
    """Prior for a new default ``v``: the old prior scaled by ``v / default`` (same relative
    width), clipped to the domain; the old prior stretched to ``v`` where scaling is undefined."""
    lo, hi = q.prior
    d = q.default
    if d != 0 and v / d > 0:
        a, b = sorted((lo * v / d, hi * v / d))
        a, b = max(a, q.domain[0]), min(b, q.domain[1])
        if a <= v <= b:
            return (a, b)
    return (min(lo, v), max(hi, v))


def params_tensor(
    system: str,
    parameters: Sequence[Parameter],
    p: Tensor | Mapping[str, float] | Sequence[float],
    batch: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    check_domain: bool = True,
) -> Tensor:
    """``p`` (a dict over the defaults, one shared vector or one row per sample) as a checked
    ``(batch, n_params)`` tensor; what :meth:`ODESystem.params_tensor` does once ``p`` is given.

    Examples
    --------
    >>> q = (Parameter("k", 1.0, (0.5, 2.0)),)
    >>> params_tensor("decay", q, {"k": 1.5}, 3).tolist()
    [[1.5], [1.5], [1.5]]
    """
    n_params, names = len(parameters), tuple(q.name for q in parameters)
    refuse_complex(list(p.values()) if isinstance(p, Mapping) else p,
                   f"{system}: the parameter value", ParameterError)
    if isinstance(p, Mapping):
        unknown = [k for k in p if k not in names]
        if unknown:
            raise ParameterError(f"{system} has no parameter(s) {unknown}; its parameters are "
                                 f"{list(names)}")
        p = torch.tensor([float(p.get(q.name, q.default)) for q in parameters], dtype=dtype,
                         device=device)
    p = torch.as_tensor(p, dtype=dtype, device=device)
    if p.ndim == 1:
        if p.shape[0] != n_params:
            raise ShapeError(f"{system}: expected {n_params} parameters {names}, "
                             f"got a vector of length {p.shape[0]}")
        p = p.expand(batch, -1)
    elif p.ndim == 2:
        if p.shape != (batch, n_params):
            raise ShapeError(f"{system}: per-sample parameters must have shape (batch, n_params) = "
                             f"({batch}, {n_params}) with columns {names}; got {tuple(p.shape)}")
    else:
        raise ShapeError(f"{system}: parameters must be (n_params,) or (batch, n_params); "
                         f"got shape {tuple(p.shape)}")
    if not torch.isfinite(p).all():
        raise ShapeError(f"{system}: parameters contain NaN or inf; pass finite values")
    if check_domain and n_params:
        lo = torch.tensor([q.domain[0] for q in parameters], dtype=p.dtype, device=p.device)
        hi = torch.tensor([q.domain[1] for q in parameters], dtype=p.dtype, device=p.device)
        bad = ((p < lo) | (p > hi)).any(0)
        if bad.any():
            j = int(bad.nonzero()[0, 0])
            worst = p[:, j][(p[:, j] < lo[j]) | (p[:, j] > hi[j])][0].item()
            parameters[j].check(worst)
    return p


def box_log_density(p: Tensor, boxes: Sequence[tuple[float, float]], *, log_uniform: bool) -> Tensor:
    """Uniform (or, ``log_uniform``, log-uniform inside each positive range) log density up to a
    constant of ``p`` ``(k, n)`` over ``boxes``; ``-inf`` outside them.

    Examples
    --------
    >>> import torch
    >>> box_log_density(torch.tensor([[2.0], [20.0]]), [(1.0, 10.0)], log_uniform=True)
    tensor([-0.6931,    -inf], dtype=torch.float64)
    """
    p = torch.as_tensor(p, dtype=torch.float64)
    if p.ndim != 2 or p.shape[1] != len(boxes):
        raise ShapeError(f"p must be (k, {len(boxes)}) parameter vectors; got {tuple(p.shape)}")
    lo = torch.tensor([b[0] for b in boxes], dtype=torch.float64, device=p.device)
    hi = torch.tensor([b[1] for b in boxes], dtype=torch.float64, device=p.device)
    inside = ((p >= lo) & (p <= hi)).all(dim=1)
    out = torch.zeros(p.shape[0], dtype=torch.float64, device=p.device)
    if log_uniform:
        logs = (lo > 0) & (hi > lo)
        out = -torch.where(logs, p.clamp_min(1e-300).log(), torch.zeros_like(p)).sum(dim=1)
    return torch.where(inside, out, torch.full_like(out, -math.inf))
