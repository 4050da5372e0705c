"""The trained range: the one guard every steering entry point calls before it uses a map.

A flow map asked about parameters (or initial states) outside the range it was trained on is
extrapolating. :func:`trained_range` says what that range is; :func:`check_range` warns or refuses
(the caller chooses, never silently) and :func:`resolve_bounds` turns a user's bounds into the box
an optimiser or sampler searches, defaulting to the map's range. For the reference solver there is
no trained range: bounds default to the system's prior and only parameter domains are enforced.

Names: system parameter names (``system.param_names``) and initial states as ``"x0.<state>"``;
an initial state's trained range is the system's ``initial_box`` (what maps train from).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, ExtrapolationWarning, ParameterError
from ..systems.base import ODESystem
from ..systems.registry import get_system

__all__ = ["trained_range", "check_range", "resolve_bounds", "ON_OUTSIDE"]

#: What a steering entry point does with values outside the trained range.
ON_OUTSIDE = ("raise", "warn")


def _system_and_map(model: Any) -> tuple[ODESystem, Any]:
    if isinstance(model, str):
        return get_system(model), None
    if isinstance(model, ODESystem):
        return model, None
    fm = getattr(model, "flow_map", None) or model
    if not hasattr(fm, "param_transform"):  # e.g. an exact map: no trained range, the prior holds
        fm = None
    system = getattr(model, "system", None)
    if not isinstance(system, ODESystem):
        raise ConfigError(f"cannot find the system of a {type(model).__name__}: give a flow map, a "
                          "Predictor, an ODESystem or a catalogue name")
    return system, fm


def _split(system: ODESystem, names: Sequence[str]) -> list[tuple[str, int]]:
    """``(kind, index)`` per name: ``("p", i)`` a parameter, ``("x0", j)`` an initial state."""
    out = []
    for name in names:
        if isinstance(name, str) and name.startswith("x0.") and name[3:] in system.state_names:
            out.append(("x0", system.state_names.index(name[3:])))
        elif name in system.param_names:
            out.append(("p", system.param_names.index(name)))
        else:
            raise ParameterError(f"unknown parameter {name!r} for {system.name}; the names are "
                                 f"{list(system.param_names)} and initial states "
                                 f"{[f'x0.{s}' for s in system.state_names]}")
    return out


def trained_range(model: Any, names: Sequence[str] | None = None) -> tuple[Tensor, Tensor]:
    """``(low, high)`` float64 of each named quantity (default: every parameter) that ``model``
    may be asked about: a map's trained parameter range, or the system's prior for the solver.

    Arguments
    ---------
    model:
        A flow map, a Predictor, an ODESystem or a catalogue name.
    names:
        Parameter names and initial states ``"x0.<state>"``.

    Examples
    --------
    >>> import flowsim
    >>> lo, hi = flowsim.steer.trained_range("theophylline", ["ka", "x0.A_gut"])
    >>> lo.tolist(), hi.tolist()
    ([0.3, 250.0], [12.0, 350.0])
    """
    system, fm = _system_and_map(model)
    names = list(system.param_names) if names is None else list(names)
    if fm is not None:
        plo = fm.param_transform.low.detach().double().cpu()
        phi = fm.param_transform.high.detach().double().cpu()
    else:
        plo = torch.tensor([q.prior[0] for q in system.parameters], dtype=torch.float64)
        phi = torch.tensor([q.prior[1] for q in system.parameters], dtype=torch.float64)
    box = torch.tensor(system.initial_box, dtype=torch.float64).reshape(system.dim, 2)
    lo, hi = [], []
    for kind, i in _split(system, names):
        lo.append(float(plo[i]) if kind == "p" else float(box[i, 0]))
        hi.append(float(phi[i]) if kind == "p" else float(box[i, 1]))
    return torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)


def _is_map(model: Any) -> bool:
    return _system_and_map(model)[1] is not None


def check_range(model: Any, values: Tensor, names: Sequence[str] | None = None, *,
                on_outside: str = "raise", what: str = "parameters") -> Tensor:
    """Warn or refuse where ``values`` ``(…, len(names))`` leave the map's trained range.

    Returns the boolean mask ``(…)`` of rows outside. For the reference solver only the
    parameters' domains are enforced (always refused). ``on_outside`` is ``"raise"``
    (:class:`~flowsim.errors.ParameterError`) or ``"warn"``
    (:class:`~flowsim.errors.ExtrapolationWarning`).

    Arguments
    ---------
    model:
        A flow map, a Predictor, an ODESystem or a catalogue name.
    values:
        ``(…, len(names))`` values to check.
    names:
        Their names (default: every parameter, in order).
    on_outside:
        ``"raise"`` or ``"warn"``.
    what:
        What the values are, for the message (``"bounds"``, ``"parameters"``…).

    Examples
    --------
    >>> import torch, flowsim
    >>> fm = flowsim.FlowMap("theophylline", width=8, depth=1)
    >>> flowsim.steer.check_range(fm, torch.tensor([[1.0, 0.1, 30.0]])).tolist()
    [False]
    """
    if on_outside not in ON_OUTSIDE:
        raise ConfigError(f"on_outside must be one of {list(ON_OUTSIDE)}; got {on_outside!r}")
    system, _ = _system_and_map(model)
    names = list(system.param_names) if names is None else list(names)
    values = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    if values.shape[-1:] != (len(names),):
        raise ParameterError(f"{what} must have {len(names)} columns ({names}); got shape "
                             f"{tuple(values.shape)}")
    _check_domain(system, values, names, what)
    if not _is_map(model):
        return torch.zeros(values.shape[:-1], dtype=torch.bool)
    lo, hi = trained_range(model, names)
    tol = 1e-6 * torch.maximum(lo.abs(), hi.abs()).clamp_min(1e-12)
    bad = (values < lo - tol) | (values > hi + tol)
    out = bad.any(-1)
    if bool(out.any()):
        cols = [n for n, b in zip(names, bad.reshape(-1, len(names)).any(0).tolist()) if b]
        where = ("" if what == "bounds" else  # two rows: the lower and the upper bound
                 f" in {int(out.sum())} of {out.numel()} row(s)")
        msg = (f"{what} {cols} leave the map's trained range (low {lo.tolist()}, high {hi.tolist()} for "
               f"{names}){where}: the map would extrapolate. Stay inside it, use the "
               "reference solver there, or retrain the map over a wider prior")
        if on_outside == "raise":
            raise ParameterError(msg + " (on_outside='warn' to go on with a warning)")
        warnings.warn(msg, ExtrapolationWarning, stacklevel=3)
    return out


def _check_domain(system: ODESystem, values: Tensor, names: Sequence[str], what: str) -> None:
    if not bool(torch.isfinite(values).all()):
        raise ParameterError(f"{what} must be finite; got NaN or infinite values")
    for j, (kind, i) in enumerate(_split(system, names)):
        if kind != "p":
            continue
        lo, hi = system.parameters[i].domain
        col = values[..., j]
        if bool(((col < lo) | (col > hi)).any()):
            raise ParameterError(f"{what}: {names[j]} must lie in its domain [{lo}, {hi}]; got "
                                 f"{col.min().item():.4g} … {col.max().item():.4g}")


def resolve_bounds(model: Any, names: Sequence[str],
                   bounds: Mapping[str, tuple[float, float]] | None = None, *,
                   on_outside: str = "raise") -> tuple[Tensor, Tensor]:
    """The search box ``(low, high)`` of the named quantities: ``bounds`` where given (checked
    with :func:`check_range`), else the map's trained range (the prior for the solver).

    Arguments
    ---------
    model:
        A flow map, a Predictor, an ODESystem or a catalogue name.
    names:
        The fitted (or sampled, optimised) names.
    bounds:
        ``{name: (low, high)}`` for some of them.
    on_outside:
        Bounds outside the map's range: ``"raise"`` or ``"warn"``.

    Examples
    --------
    >>> import flowsim
    >>> lo, hi = flowsim.steer.resolve_bounds("theophylline", ["ka", "V"], {"V": (20.0, 40.0)})
    >>> hi.tolist()
    [12.0, 40.0]
    """
    names = list(names)
    lo, hi = trained_range(model, names)
    bounds = dict(bounds or {})
    unknown = sorted(set(bounds) - set(names))
    if unknown:
        raise ParameterError(f"bounds name {unknown}, which are not fitted; the fitted names are {names}")
    for name, pair in bounds.items():
        try:
            a, b = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise ParameterError(f"bounds[{name!r}] must be a pair (low, high); got {pair!r}") from None
        if not a < b:
            raise ParameterError(f"bounds[{name!r}] must have low < high; got {pair!r}")
        j = names.index(name)
        lo[j], hi[j] = a, b
    check_range(model, torch.stack([lo, hi]), names, on_outside=on_outside, what="bounds")
    return lo, hi
