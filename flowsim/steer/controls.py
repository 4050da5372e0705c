"""What :func:`~flowsim.steer.optimise` varies: parameters, initial states and piecewise-constant controls.

A :class:`Control` is a parameter that takes one value per time interval; the trajectory is
then composed interval by interval (one predictor call per interval, each starting where the
last one ended). :class:`Variables` lays the chosen quantities out as the columns of one
``(batch, n)`` tensor, with their bounds, and rolls a batch of them forward.

Examples
--------
>>> import torch
>>> from flowsim.steer import Control, Variables, predictor
>>> v = Variables("sir", ["gamma", Control("beta", [0.0, 20.0, 40.0])])
>>> v.columns
('gamma', 'beta[0]', 'beta[1]')
>>> pred = predictor("sir")
>>> vals = torch.tensor([[0.1, 0.3, 0.2]], dtype=torch.float64)
>>> v.rollout(pred, vals, torch.tensor([10.0, 30.0, 40.0], dtype=torch.float64)).shape
torch.Size([1, 3, 3])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import ParameterError, TimeGridError
from ..systems.base import ODESystem
from ..systems.registry import get_system
from .forward import Predictor
from .ranges import resolve_bounds

__all__ = ["Control", "Variables"]


@dataclass(frozen=True)
class Control:
    """A parameter that is constant on each interval ``[edges[k], edges[k+1])``.

    Arguments
    ---------
    param:
        The parameter's name.
    edges:
        Increasing interval boundaries; ``edges[0]`` must be the start time and ``edges[-1]``
        at or after the last output time. ``len(edges) - 1`` values are optimised.

    Examples
    --------
    >>> Control("beta", [0.0, 10.0, 20.0]).n_intervals
    2
    """

    param: str
    edges: tuple[float, ...]

    def __post_init__(self) -> None:
        try:
            edges = tuple(float(e) for e in self.edges)
        except (TypeError, ValueError):
            raise TimeGridError(f"Control({self.param!r}).edges must be numbers; "
                                f"got {self.edges!r}") from None
        object.__setattr__(self, "edges", edges)
        if len(edges) < 2 or not all(math.isfinite(e) for e in edges) or any(
                b <= a for a, b in zip(edges, edges[1:])):
            raise TimeGridError(f"Control({self.param!r}).edges must be at least two finite, strictly "
                                f"increasing times; got {list(edges)}")

    @property
    def n_intervals(self) -> int:
        """How many values the control takes."""
        return len(self.edges) - 1


class Variables:
    """The columns :func:`~flowsim.steer.optimise` varies, their bounds, and the rollout.

    Arguments
    ---------
    system:
        The system (or its catalogue name).
    variables:
        Parameter names, initial states as ``"x0.<state>"`` and :class:`Control` objects.

    Raises
    ------
    ParameterError
        Unknown names, a name given twice.

    Examples
    --------
    >>> from flowsim.steer import Control, Variables
    >>> Variables("sir", ["gamma", "x0.I", Control("beta", [0.0, 20.0, 40.0])]).columns
    ('gamma', 'x0.I', 'beta[0]', 'beta[1]')
    """

    def __init__(self, system: ODESystem | str, variables: Sequence[str | Control]) -> None:
        self.system = get_system(system) if isinstance(system, str) else system
        if isinstance(variables, (str, Control)):
            variables = [variables]
        if not variables:
            raise ParameterError("variables is empty: name parameters, initial states ('x0.<state>') "
                                 "or Controls")
        sys_ = self.system
        pnames, snames = list(sys_.param_names), list(sys_.state_names)
        self.items: list[tuple[str, str, int, Control | None]] = []  # (kind, name, index, control)
        cols: list[str] = []
        for v in variables:
            if isinstance(v, Control):
                if v.param not in pnames:
                    raise ParameterError(f"Control names unknown parameter {v.param!r}; "
                                         f"{sys_.name} has {pnames}")
                self.items.append(("control", v.param, pnames.index(v.param), v))
                cols += [f"{v.param}[{k}]" for k in range(v.n_intervals)]
            elif isinstance(v, str) and v in pnames:
                self.items.append(("param", v, pnames.index(v), None))
                cols.append(v)
            elif isinstance(v, str) and v.startswith("x0.") and v[3:] in snames:
                self.items.append(("state", v, snames.index(v[3:]), None))
                cols.append(v)
            else:
                raise ParameterError(f"unknown variable {v!r}: give parameter names {pnames}, initial states "
                                     f"{[f'x0.{n}' for n in snames]} or Control(param, edges)")
        names = [it[1] for it in self.items]
        if len(set(names)) != len(names):
            raise ParameterError(f"a variable is named twice in {names}")
        self.columns = tuple(cols)
        self.bounds: list[tuple[float, float]] = []

    @property
    def controls(self) -> list[Control]:
        """The :class:`Control` objects among the variables."""
        return [c for kind, _, _, c in self.items if kind == "control" and c is not None]

    def set_bounds(self, model: Any, bounds: Mapping[str, Sequence[float]] | None, *,
                   on_outside: str = "raise") -> None:
        """The search box from ``{name: (low, high)}`` (a control's name bounds all its
        intervals), the rest from the model's trained range (the prior for a solver), through
        the steering range guard :func:`~flowsim.steer.resolve_bounds`: bounds outside a map's
        range raise :class:`~flowsim.errors.ParameterError` (or warn, ``on_outside="warn"``)."""
        names = [it[1] for it in self.items]
        lo, hi = resolve_bounds(model, names, bounds, on_outside=on_outside)
        self.bounds = []
        for (_, _, _, ctl), a, b in zip(self.items, lo.tolist(), hi.tolist()):
            self.bounds += [(a, b)] * (ctl.n_intervals if ctl is not None else 1)

    def split(self, values: Tensor) -> dict[str, Tensor]:
        """``{name: (batch,) or (batch, n_intervals)}`` from ``(batch, n_columns)`` values."""
        out, j = {}, 0
        for kind, name, _, ctl in self.items:
            w = ctl.n_intervals if ctl is not None else 1
            out[name] = values[:, j:j + w] if kind == "control" else values[:, j]
            j += w
        return out

    def rollout(self, pred: Predictor, values: Tensor, times: Tensor, *, x0: Tensor | None = None,
                p: Tensor | None = None, t0: float = 0.0) -> Tensor:
        """States ``(batch, time, dim)`` at ``times`` for each row of ``values``.

        Fixed quantities: ``x0`` ``(dim,)`` (default: the system's standard initial state),
        ``p`` ``(n_params,)`` (default: its default parameters). Controls split the run at
        their edges: each interval is one predictor call from the state where the last ended.
        """
        b, dt = values.shape[0], values.dtype
        sys_ = self.system
        x = (sys_.default_initial() if x0 is None else x0).to(dt).expand(b, -1).clone()
        pb = (sys_.default_params() if p is None else p).to(dt).reshape(1, -1).expand(b, -1).clone()
        parts = self.split(values)
        for kind, name, idx, _ in self.items:
            if kind == "state":
                x[:, idx] = parts[name]
            elif kind == "param":
                pb[:, idx] = parts[name]
        ctls = [(idx, c, parts[name]) for kind, name, idx, c in self.items if kind == "control"]
        cuts = sorted({e for _, c, _ in ctls for e in c.edges if t0 < e < float(times[-1])})
        bounds = [t0, *cuts, max(float(times[-1]), t0)]
        out, tt = [], times.to(dt)
        for k, (a, e) in enumerate(zip(bounds, bounds[1:])):
            pk = pb.clone()
            for idx, c, vals in ctls:
                j = max(i for i, edge in enumerate(c.edges[:-1]) if edge <= a + 1e-12 * max(1.0, abs(a)))
                pk[:, idx] = vals[:, j]
            sel = tt[(tt >= a) & (tt <= e)] if k == 0 else tt[(tt > a) & (tt <= e)]
            grid = torch.cat([sel, tt.new_tensor([e])])
            tb = torch.full((b,), a, dtype=dt)
            y = pred(x, tb, grid.expand(b, -1).contiguous(), pk)
            out.append(y[:, :-1])
            x = y[:, -1]
        return torch.cat(out, dim=1)

    def check_controls(self, times: Tensor, t0: float) -> None:
        """Every control's first edge is ``t0`` and its last reaches the last output time."""
        for c in self.controls:
            if abs(c.edges[0] - t0) > 1e-12 * max(1.0, abs(t0)) or c.edges[-1] < float(times[-1]):
                raise TimeGridError(f"Control({c.param!r}).edges must start at t0={t0:g} and reach the last "
                                    f"output time {float(times[-1]):g}; got {list(c.edges)}")
