"""The flow-map interface, declared: :class:`FlowMapLike`, and :func:`check_flowmap_like`.

Analysis (and steering, calibration) code is written against this Protocol, not against
:class:`flowsim.FlowMap`, so an ensemble, an exact map (:class:`flowsim.testing.ExactFlowMap`)
or a user's own wrapper around another surrogate works wherever a flow map does.

Examples
--------
>>> import flowsim
>>> isinstance(flowsim.FlowMap("lotka_volterra", width=8, depth=1), flowsim.FlowMapLike)
True
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ..errors import ConfigError
from ..systems.base import ODESystem

__all__ = ["ANALYSIS_MEMBERS", "FlowMapLike", "check_flowmap_like"]

#: The members the analysis functions call; a partial object with only these still works there.
ANALYSIS_MEMBERS = ("forward", "system", "dtype", "max_jump")
_ALL_MEMBERS = ("forward", "jump", "odeint", "system", "dtype", "device", "max_jump")


@runtime_checkable
class FlowMapLike(Protocol):
    """What code that uses a flow map may rely on: a jump ``X(s, t, x; p)`` of a system.

    :class:`flowsim.FlowMap`, :class:`flowsim.FlowMapEnsemble` and
    :class:`flowsim.testing.ExactFlowMap` satisfy it; so does any object with these members
    (no subclassing needed; ``isinstance(obj, FlowMapLike)`` checks that they exist, not
    their signatures).

    Attributes
    ----------
    system:
        The :class:`~flowsim.ODESystem` the map jumps.
    dtype:
        ``torch.float32`` or ``torch.float64``: the dtype states, times and parameters must have.
    device:
        Where the map computes (inputs must be there).
    max_jump:
        Longest single jump it is trained for (system time units); longer intervals are
        covered by composed jumps.

    Methods
    -------
    forward(s, t, x, p)
        Unchecked jump: ``s``, ``t`` ``(batch,)``, ``x`` ``(batch, dim)``, ``p``
        ``(batch, n_params)``, all in :attr:`dtype` on :attr:`device`; returns ``(batch, dim)``.
    jump(x, s, t, p=None)
        Checked jump (scalar or ``(batch,)`` times; parameters ``None``, a dict or a tensor).
    odeint(x0, t, p=None, *, max_jump=None)
        States at every time of ``t``, ``(time, batch, dim)`` (torchdiffeq's layout).

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim import FlowMapLike
    >>> from flowsim.testing import ExactFlowMap
    >>> isinstance(ExactFlowMap("harmonic_oscillator"), FlowMapLike)
    True
    >>> isinstance(torch.nn.Linear(2, 2), FlowMapLike)
    False
    """

    system: ODESystem

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def max_jump(self) -> float: ...

    def forward(self, s: Tensor, t: Tensor, x: Tensor, p: Tensor) -> Tensor: ...

    def jump(self, x: Tensor, s: Tensor | float, t: Tensor | float, p: Any = None) -> Tensor: ...

    def odeint(self, x0: Tensor, t: Tensor, p: Any = None, *, max_jump: float | None = None) -> Tensor: ...


def check_flowmap_like(flowmap: Any, *, complete: bool = False) -> ODESystem:
    """Check that ``flowmap`` can be used as a flow map; return its system.

    Arguments
    ---------
    flowmap:
        The object to check.
    complete:
        Require every member of :class:`FlowMapLike`; by default only those the analysis
        functions call (:data:`ANALYSIS_MEMBERS`: ``forward``, ``system``, ``dtype``,
        ``max_jump``), so a minimal wrapper around another surrogate is enough there.

    Returns
    -------
    ODESystem
        ``flowmap.system``.

    Raises
    ------
    ConfigError
        A member is missing, ``system`` is not an :class:`~flowsim.ODESystem`, ``dtype`` is
        not float32/float64, or ``max_jump`` is not positive and finite.

    Examples
    --------
    >>> import flowsim
    >>> fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1)
    >>> check_flowmap_like(fm, complete=True).name
    'lotka_volterra'
    >>> try:
    ...     check_flowmap_like(object())
    ... except flowsim.ConfigError as err:
    ...     print(str(err)[:59])
    flowmap must provide forward(s, t, x, p), system, dtype and
    """
    wanted = _ALL_MEMBERS if complete else ANALYSIS_MEMBERS
    missing = [a for a in wanted if not hasattr(flowmap, a)]
    if missing:
        raise ConfigError(
            f"flowmap must provide {_describe(wanted)} (like flowsim.FlowMap, see "
            f"flowsim.FlowMapLike); {type(flowmap).__name__} lacks {missing}"
        )
    system = flowmap.system
    if not isinstance(system, ODESystem):
        raise ConfigError(f"flowmap.system must be an ODESystem; got {type(system).__name__}")
    if flowmap.dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"flowmap.dtype must be torch.float32 or torch.float64; got {flowmap.dtype}")
    try:
        mj = float(flowmap.max_jump)
    except (TypeError, ValueError):
        raise ConfigError(f"flowmap.max_jump must be a number; got {flowmap.max_jump!r}") from None
    if not (mj > 0 and math.isfinite(mj)):
        raise ConfigError(f"flowmap.max_jump must be positive and finite; got {mj}")
    return system


def _describe(members: tuple[str, ...]) -> str:
    names = ["forward(s, t, x, p)" if m == "forward" else m for m in members]
    return ", ".join(names[:-1]) + " and " + names[-1]
