"""Composing flow-map jumps: the one implementation of "cover an interval with N equal jumps".

:meth:`flowsim.FlowMap.odeint`, :class:`flowsim.FlowMapEnsemble`, the exact flow map of
:mod:`flowsim.testing` and every analysis that rolls a map out (error vs number of jumps,
invariant drift, valid prediction time) compose jumps here, so they agree bit for bit.

Times between jumps are ``s + (t − s) · (k / n)`` computed in the dtype of the times given
(pass float64 times for float64 grid arithmetic), the last jump lands on ``t`` exactly, and
each jump's times are then cast to the state's dtype and device.

Examples
--------
>>> import torch, flowsim
>>> from flowsim.maps import compose_jumps, n_jumps
>>> fm = flowsim.FlowMap("lotka_volterra", width=16, depth=1)
>>> n_jumps(2.5 * fm.max_jump, fm.max_jump)  # jumps of at most max_jump to cover 2.5 of them
3
>>> x, p = torch.ones(3, 2), fm.system.params_tensor(None, 3, dtype=fm.dtype)
>>> compose_jumps(fm, x, 0.0, 10.0, p, n=3).shape
torch.Size([3, 2])
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError, TimeGridError

__all__ = ["JumpFn", "compose_jumps", "compose_on_grid", "jump_times", "n_jumps"]

#: ``step(s, t, x, p) -> X``: an unchecked jump, ``s``/``t`` ``(batch,)``, ``x`` ``(batch, dim)``.
JumpFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]

# round-off in a span (an interval that is "exactly" k max-jumps long) must not add a jump
_SLACK = 1e-9
#: A composition of more jumps than this is refused before it starts (it would run for hours).
MAX_COMPOSED_JUMPS = 10**7


def n_jumps(span: float, max_jump: float) -> int:
    """Fewest equal jumps, no longer than ``max_jump``, that cover ``span`` (at least one).

    A span a hair (relative 1e-9) longer than a whole number of ``max_jump`` counts as that
    number, so round-off in a time grid never adds a jump.

    Arguments
    ---------
    span:
        Length of the interval (its sign is ignored), finite.
    max_jump:
        Longest single jump, positive (``inf``: one jump).

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        ``max_jump`` not positive.
    TimeGridError
        ``span`` not finite.

    Examples
    --------
    >>> n_jumps(1.0, 0.3), n_jumps(0.9000000000000001, 0.3), n_jumps(0.0, 0.3)
    (4, 3, 1)
    """
    span, max_jump = float(span), float(max_jump)
    if not max_jump > 0:
        raise ConfigError(f"max_jump must be positive; got {max_jump}")
    if not math.isfinite(span):
        raise TimeGridError(f"the span to cover must be finite; got {span}")
    ratio = abs(span) / max_jump
    if not math.isfinite(ratio):
        raise ConfigError(f"max_jump={max_jump:g} is too small to cover a span of {span:g}; "
                          "give a max_jump on the scale of the map's own")
    return max(1, math.ceil(ratio - _SLACK))


def _jump_fn(step: Any) -> JumpFn:
    fn = getattr(step, "forward", step)
    if not callable(fn):
        raise ConfigError(f"step must be a flow map (with forward(s, t, x, p)) or a callable "
                          f"step(s, t, x, p); got {type(step).__name__}")
    return fn


def _times(v: Tensor | float, n: int, name: str) -> Tensor:
    v = v if isinstance(v, Tensor) else torch.as_tensor(v, dtype=torch.float64)
    if v.ndim == 0:
        v = v.expand(n)
    if v.shape != (n,):
        raise ShapeError(f"{name} must be a scalar or (batch,) = ({n},); got {tuple(v.shape)}")
    return v


def jump_times(s: Tensor | float, t: Tensor | float, n: int, batch: int | None = None) -> Tensor:
    """The ``n + 1`` times of ``n`` equal jumps from ``s`` to ``t``, as :func:`compose_jumps` takes them.

    ``s + (t − s) · (k / n)`` for ``k < n``, and ``t`` itself last, in the dtype of ``s``/``t``
    (python numbers: float64). Precompute them where the arithmetic must stay out of a timed loop.

    Arguments
    ---------
    s, t:
        Start and end times: scalars or ``(batch,)``.
    n:
        Number of jumps (positive).
    batch:
        Batch size to broadcast scalar times to (default: that of ``s``/``t``, else 1).

    Returns
    -------
    Tensor
        ``(n + 1, batch)``.

    Raises
    ------
    ConfigError
        ``n`` not a positive integer.
    ShapeError
        ``s``/``t`` neither scalars nor ``(batch,)``.

    Examples
    --------
    >>> jump_times(0.0, 1.0, 4)[:, 0].tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer; got {n!r}")
    if batch is None:
        sizes = [v.shape[0] for v in (s, t) if isinstance(v, Tensor) and v.ndim == 1]
        batch = sizes[0] if sizes else 1
    s, t = _times(s, batch, "s"), _times(t, batch, "t")
    return torch.stack([s + (t - s) * (k / n) for k in range(n)] + [t.expand_as(s)])


def compose_jumps(
    step: Any,
    x: Tensor,
    s: Tensor | float,
    t: Tensor | float,
    p: Tensor,
    *,
    n: int = 1,
    keep: bool = False,
) -> Tensor:
    """``n`` equal composed jumps from times ``s`` to times ``t``.

    Arguments
    ---------
    step:
        A flow map (anything with ``forward(s, t, x, p)``, see :class:`FlowMapLike`) or a
        callable ``step(s, t, x, p)``; called unchecked, with gradients if enabled.
    x:
        States ``(batch, dim)``; they stay in their dtype and on their device between jumps.
    s, t:
        Start and end times, scalars or per-sample ``(batch,)``; the intermediate times are
        computed in their dtype (python numbers: float64).
    p:
        Parameters ``(batch, n_params)``, passed to every jump unchanged.
    n:
        Number of jumps (positive).
    keep:
        Return every state, not only the last.

    Returns
    -------
    Tensor
        The state after the last jump ``(batch, dim)``; with ``keep``, the start and the state
        after each jump, ``(n + 1, batch, dim)`` (time first, like ``torchdiffeq.odeint``).

    Raises
    ------
    ShapeError
        ``x`` not ``(batch, dim)``, or ``s``/``t`` neither scalars nor ``(batch,)``.
    ConfigError
        ``n`` not a positive integer, or ``step`` not callable.

    Examples
    --------
    >>> import torch
    >>> decay = lambda s, t, x, p: x * torch.exp(-(t - s))[:, None]  # exact flow of dx/dt = -x
    >>> x = torch.ones(2, 1, dtype=torch.float64)
    >>> compose_jumps(decay, x, 0.0, 1.0, torch.zeros(2, 0), n=4, keep=True)[:, 0, 0]
    tensor([1.0000, 0.7788, 0.6065, 0.4724, 0.3679], dtype=torch.float64)
    """
    fn = _jump_fn(step)
    if not isinstance(x, Tensor) or x.ndim != 2:
        raise ShapeError(f"x must be a (batch, dim) tensor; got {getattr(x, 'shape', type(x).__name__)}")
    grid = jump_times(s, t, n, x.shape[0]).to(dtype=x.dtype, device=x.device)
    states = [x]
    for k in range(n):
        x = fn(grid[k], grid[k + 1], x, p)
        if keep:
            states.append(x)
    return torch.stack(states, dim=0) if keep else x


def compose_on_grid(step: Any, x0: Tensor, t: Tensor, p: Tensor, *, max_jump: float) -> Tensor:
    """States at every time of a grid: each interval covered by equal jumps of at most ``max_jump``.

    The engine of :meth:`flowsim.FlowMap.odeint`; between consecutive output times it takes
    :func:`n_jumps` of the longest gap in the batch equal jumps (:func:`compose_jumps`).

    Arguments
    ---------
    step:
        A flow map or a callable ``step(s, t, x, p)``, as for :func:`compose_jumps`.
    x0:
        States ``(batch, dim)`` at the first time.
    t:
        Output times: shared ``(time,)`` or per-sample ``(batch, time)`` (a tensor; the grid
        arithmetic runs in its dtype). Monotonicity is the caller's to check.
    p:
        Parameters ``(batch, n_params)``.
    max_jump:
        Longest single jump.

    Returns
    -------
    Tensor
        ``(time, batch, dim)`` — torchdiffeq's layout.

    Raises
    ------
    TimeGridError
        ``t`` not ``(time,)`` or ``(batch, time)``, or empty.
    ShapeError, ConfigError
        As for :func:`compose_jumps` and :func:`n_jumps`; ``ConfigError`` also where covering
        the grid would take more than ``MAX_COMPOSED_JUMPS`` (10⁷) jumps (checked before the
        first jump).

    Examples
    --------
    >>> import torch
    >>> decay = lambda s, t, x, p: x * torch.exp(-(t - s))[:, None]
    >>> x0 = torch.ones(3, 1, dtype=torch.float64)
    >>> compose_on_grid(decay, x0, torch.tensor([0.0, 0.5, 2.0]), torch.zeros(3, 0),
    ...                 max_jump=0.5).shape
    torch.Size([3, 3, 1])
    """
    if not isinstance(x0, Tensor) or x0.ndim != 2:
        raise ShapeError(f"x0 must be a (batch, dim) tensor; got {getattr(x0, 'shape', type(x0).__name__)}")
    if not isinstance(t, Tensor) or t.ndim not in (1, 2) or t.shape[-1] < 1:
        raise TimeGridError(f"t must be a non-empty (time,) or (batch, time) tensor; got "
                            f"{getattr(t, 'shape', type(t).__name__)}")
    if t.ndim == 1:
        t = t.expand(x0.shape[0], -1)
    elif t.shape[0] != x0.shape[0]:
        raise TimeGridError(f"t has {t.shape[0]} rows but x0 has {x0.shape[0]} states")
    _check_total(t, max_jump)
    out = [x0]
    x = x0
    for k in range(t.shape[1] - 1):
        a, b = t[:, k], t[:, k + 1]
        n = n_jumps(float((b - a).abs().max()) if a.numel() else 0.0, max_jump)
        x = compose_jumps(step, x, a, b, p, n=n)
        out.append(x)
    return torch.stack(out, dim=0)


def _check_total(t: Tensor, max_jump: float) -> None:
    """Refuse a grid that ``max_jump`` would cover with more than ``MAX_COMPOSED_JUMPS`` jumps."""
    if t.shape[-1] < 2 or not float(max_jump) > 0:
        return  # n_jumps reports a bad max_jump
    spans = t.diff(dim=-1).abs().to(torch.float64).amax(dim=0) if t.shape[0] else t.new_zeros(0)
    total = float(torch.ceil(spans / float(max_jump) - _SLACK).clamp(min=1).sum())
    if total > MAX_COMPOSED_JUMPS:
        raise ConfigError(
            f"covering t (from {float(t.min()):g} to {float(t.max()):g}) with jumps of at most "
            f"max_jump={float(max_jump):g} would take {total:.3g} jumps (more than "
            f"{MAX_COMPOSED_JUMPS:.0e}); pass a larger max_jump (the map's own is its trained "
            "max_jump) or a shorter time span")
