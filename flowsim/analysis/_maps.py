"""Private helpers: flow-map checks and unchecked, batched, no-grad evaluation.

Analysis functions take a :class:`flowsim.FlowMapLike` — a :class:`flowsim.FlowMap`, a
:class:`flowsim.FlowMapEnsemble`, an :class:`~flowsim.analysis.ExactFlowMap`, or a user's own
wrapper — and call only ``forward(s, t, x, p)`` (``(batch,)`` times, ``(batch, dim)`` states,
``(batch, n_params)`` parameters), ``system``, ``dtype`` and ``max_jump`` (``device`` and
``param_transform`` where present). Data are float64; they are cast to the map's dtype here, never silently
mixed inside the map.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import CheckpointError, ConfigError, ShapeError, TimeGridError
from ..maps import FlowMapLike, check_flowmap_like, compose_jumps, compose_on_grid
from ..systems.base import ODESystem
from ..systems.registry import get_system

__all__ = [
    "as_states",
    "check_horizon",
    "check_jumps_trained",
    "check_step_counts",
    "compose",
    "default_step_counts",
    "evaluate",
    "map_device",
    "match_system",
    "params_for",
    "result_attrs",
    "rollout",
    "time_units",
    "warn_outside_range",
]

_CHUNK = 65536
_SLACK = 1e-9


def match_system(flowmap: Any, system: ODESystem | str | None) -> ODESystem:
    """The flow map's system, checked against a given system (object or name)."""
    fs = check_flowmap_like(flowmap)
    if system is None:
        return fs
    other = get_system(system) if isinstance(system, str) else system
    if not isinstance(other, ODESystem):
        raise ConfigError(f"system must be an ODESystem or a catalogue name; got {type(other).__name__}")
    if other.name != fs.name or other.dim != fs.dim:
        raise CheckpointError(
            f"the flow map is for system {fs.name!r} (dim {fs.dim}) but {other.name!r} "
            f"(dim {other.dim}) was given; evaluate a map on the system it was trained for"
        )
    return other


def map_device(flowmap: FlowMapLike) -> torch.device:
    """Device of the flow map (``device`` attribute, first parameter/buffer, else CPU)."""
    dev = getattr(flowmap, "device", None)
    if isinstance(dev, (torch.device, str)):
        return torch.device(dev)
    for getter in ("parameters", "buffers"):
        fn = getattr(flowmap, getter, None)
        if callable(fn):
            first = next(iter(fn()), None)
            if first is not None:
                return first.device
    return torch.device("cpu")


def time_units(system: ODESystem) -> str:
    """The system's time units, ``"time units"`` when it has none."""
    return getattr(system, "time_units", "") or "time units"


def params_for(system: ODESystem, p: Any, n: int) -> Tensor:
    """``(n, n_params)`` float64 parameters (``None``, dict, vector or per-sample tensor)."""
    return system.params_tensor(p, n, dtype=torch.float64)


def warn_outside_range(flowmap: FlowMapLike, p: Tensor) -> None:
    """Warn (never refuse: evaluation may probe generalisation) when parameters leave the
    flow map's trained range, so extrapolation is never silent."""
    tr = getattr(flowmap, "param_transform", None)
    outside = getattr(tr, "outside", None)
    if callable(outside) and p.numel():
        bad = outside(p.to(torch.float64).to(map_device(flowmap)))
        if bool(bad.any()):
            warnings.warn(
                f"{int(bad.sum())} of {p.shape[0]} parameter rows lie outside the flow map's trained "
                "range; those errors measure extrapolation",
                stacklevel=3,
            )


@torch.no_grad()
def evaluate(flowmap: FlowMapLike, x: Tensor, s: Tensor | float, t: Tensor | float, p: Tensor) -> Tensor:
    """One jump ``X(s, t, x; p)`` for every sample, in chunks, without gradients.

    ``x`` ``(batch, dim)`` (any float dtype), ``s``/``t`` scalars or ``(batch,)``, ``p``
    ``(batch, n_params)``. Returns float64 on the CPU.
    """
    n = x.shape[0]
    dt, dev = flowmap.dtype, map_device(flowmap)
    s_, t_ = (torch.as_tensor(v, dtype=torch.float64).expand(n) for v in (s, t))
    out = []
    for a in range(0, n, _CHUNK):
        b = min(a + _CHUNK, n)
        y = flowmap.forward(
            s_[a:b].to(dtype=dt, device=dev), t_[a:b].to(dtype=dt, device=dev),
            x[a:b].to(dtype=dt, device=dev), p[a:b].to(dtype=dt, device=dev),
        )
        out.append(y.detach().to(device="cpu", dtype=torch.float64))
    if not out:
        return torch.empty(0, x.shape[-1], dtype=torch.float64)
    return torch.cat(out)


@torch.no_grad()
def compose(
    flowmap: FlowMapLike, x: Tensor, s: Tensor, t: Tensor, n: int, p: Tensor, keep: bool = False
) -> Tensor:
    """``n`` equal composed jumps from per-sample ``s`` to ``t`` (``(batch,)`` float64), by
    :func:`flowsim.maps.compose_jumps` (grid arithmetic in float64).

    The state stays in the map's dtype between jumps. Returns the final state ``(batch, dim)``
    float64, or with ``keep=True`` every state after each jump, ``(batch, n + 1, dim)``.
    """
    dt, dev = flowmap.dtype, map_device(flowmap)
    x_ = x.to(dtype=dt, device=dev)
    p_ = p.to(dtype=dt, device=dev)
    out = compose_jumps(flowmap, x_, s.to(torch.float64), t.to(torch.float64), p_, n=n, keep=keep)
    if keep:
        out = out.transpose(0, 1)
    return out.detach().to(device="cpu", dtype=torch.float64)


@torch.no_grad()
def rollout(flowmap: FlowMapLike, x: Tensor, t: Tensor, p: Tensor, max_jump: float) -> Tensor:
    """States at every time of per-sample grids ``t`` ``(batch, T)`` (float64 arithmetic),
    each interval in equal jumps of at most ``max_jump``: ``(batch, T, dim)`` float64 on the CPU."""
    dt, dev = flowmap.dtype, map_device(flowmap)
    x_ = x.to(dtype=dt, device=dev)
    p_ = p.to(dtype=dt, device=dev)
    out = compose_on_grid(flowmap, x_, t.to(torch.float64), p_, max_jump=max_jump)
    return out.transpose(0, 1).detach().to(device="cpu", dtype=torch.float64)


def check_horizon(horizon: Any, name: str = "horizon") -> float:
    """A positive finite horizon, else :class:`TimeGridError`."""
    try:
        h = float(horizon)
    except (TypeError, ValueError):
        raise TimeGridError(f"{name} must be a positive number; got {horizon!r}") from None
    if not (h > 0 and math.isfinite(h)):
        raise TimeGridError(f"{name} must be positive and finite; got {horizon!r}")
    return h


def check_jumps_trained(flowmap: FlowMapLike, jumps: Sequence[float], what: str) -> None:
    """Refuse jumps longer than the flow map's ``max_jump`` (its trained range)."""
    mj = float(flowmap.max_jump)
    long = [float(j) for j in jumps if float(j) > mj * (1 + _SLACK)]
    if long:
        raise TimeGridError(
            f"{what}: jump(s) {', '.join(f'{j:.4g}' for j in long)} exceed the flow map's trained "
            f"range max_jump={mj:.4g}; single jumps that long would extrapolate. Use shorter jumps "
            f"(more steps)."
        )


def check_step_counts(
    n_steps: Sequence[int] | None, horizon: float, flowmap: FlowMapLike, what: str
) -> list[int]:
    """Validate step counts (positive ints), or pick the default; refuse too-long jumps."""
    if n_steps is None:
        return default_step_counts(horizon, float(flowmap.max_jump))
    try:
        counts = [int(n) for n in n_steps]
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: step counts must be positive integers; got {n_steps!r}") from None
    if not counts or any(n < 1 for n in counts) or any(int(n) != float(n) for n in n_steps):
        raise ConfigError(f"{what}: step counts must be positive integers; got {n_steps!r}")
    counts = sorted(set(counts))
    check_jumps_trained(flowmap, [horizon / n for n in counts], what)
    return counts


def default_step_counts(horizon: float, max_jump: float, n: int = 6) -> list[int]:
    """``N0 · (1, 2, 4, …)`` (``n`` values), ``N0`` the smallest power of two with
    ``horizon / N0 ≤ max_jump``."""
    n0 = 1
    while horizon / n0 > max_jump * (1 + _SLACK):
        n0 *= 2
    return [n0 * 2**k for k in range(n)]


def as_states(system: ODESystem, x0: Any, name: str = "x0") -> Tensor:
    """Finite ``(batch, dim)`` float64 states."""
    x = torch.as_tensor(x0)
    if not x.is_floating_point():
        x = x.to(torch.float64)
    x = system.check_state(x, name).detach().to(torch.float64).cpu()
    if x.shape[0] == 0:
        raise ShapeError(f"{name} is empty; give at least one state")
    if not bool(torch.isfinite(x).all()):
        raise ShapeError(f"{name} contains NaN or inf; pass finite states")
    return x


def result_attrs(analysis: str, system: ODESystem, flowmap: FlowMapLike, **extra: Any) -> dict[str, Any]:
    """Common ``attrs`` of every analysis Dataset: what was analysed, units, metric meanings."""
    from ..metrics import METRICS

    attrs: dict[str, Any] = {
        "analysis": analysis,
        "system": system.name,
        "state_names": list(system.state_names),
        "state_units": list(system.units),
        "time_units": time_units(system),
        "timescale": float(system.timescale),
        "flowmap_max_jump": float(flowmap.max_jump),
        "flowmap_dtype": str(flowmap.dtype).replace("torch.", ""),
        "metric_relative_error": METRICS["relative_error"],
        "metric_normalised_error": METRICS["normalised_error"],
    }
    attrs.update(extra)
    return attrs
