"""Helpers for testing code that uses flow maps (like :mod:`xarray.testing`).

An exact flow map (:class:`ExactFlowMap`: the true solution, optionally plus a known error)
checks a pipeline end to end; :func:`assert_flowmap_like` checks that an object can stand in
for a :class:`flowsim.FlowMap`; :func:`assert_flowmaps_close` compares two maps' rollouts.

Examples
--------
>>> import torch
>>> from flowsim.testing import ExactFlowMap, assert_flowmap_like, assert_flowmaps_close
>>> exact = ExactFlowMap("harmonic_oscillator")
>>> assert_flowmap_like(exact)
>>> assert_flowmaps_close(exact, exact, torch.ones(2, 2, dtype=torch.float64), [0.0, 1.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .analysis.exact import ExactFlowMap as ExactFlowMap
from .errors import ConfigError
from .maps import FlowMapLike, check_flowmap_like

__all__ = ["ExactFlowMap", "assert_flowmap_like", "assert_flowmaps_close"]


def assert_flowmap_like(flowmap: Any) -> None:
    """Assert that ``flowmap`` satisfies :class:`flowsim.FlowMapLike` and jumps sensibly.

    Checks every member of the Protocol and their values (:func:`flowsim.maps.check_flowmap_like`
    with ``complete=True``), then that ``forward`` on two of the system's initial states
    returns ``(2, dim)`` in the map's dtype.

    Arguments
    ---------
    flowmap:
        The object to check.

    Raises
    ------
    AssertionError
        Saying what is missing or wrong.

    Examples
    --------
    >>> import flowsim
    >>> assert_flowmap_like(flowsim.FlowMap("lotka_volterra", width=8, depth=1))
    >>> try:
    ...     assert_flowmap_like(object())
    ... except AssertionError:
    ...     print("not a flow map")
    not a flow map
    """
    try:
        system = check_flowmap_like(flowmap, complete=True)
    except ConfigError as err:
        raise AssertionError(str(err)) from None
    assert isinstance(flowmap, FlowMapLike), f"{type(flowmap).__name__} is not a flowsim.FlowMapLike"
    dt, dev = flowmap.dtype, torch.device(flowmap.device)
    x = system.sample_initial(2, generator=0).to(dtype=dt, device=dev)
    s = torch.zeros(2, dtype=dt, device=dev)
    t = s + float(flowmap.max_jump)
    p = system.params_tensor(None, 2, dtype=dt, device=dev)
    with torch.no_grad():
        y = flowmap.forward(s, t, x, p)
    assert isinstance(y, Tensor), f"forward returned {type(y).__name__}, not a Tensor"
    assert y.shape == x.shape, f"forward returned shape {tuple(y.shape)}; expected {tuple(x.shape)}"
    assert y.dtype == dt, f"forward returned {y.dtype}; the map's dtype is {dt}"


def assert_flowmaps_close(
    actual: FlowMapLike,
    expected: FlowMapLike,
    x0: Tensor,
    t: Tensor | Sequence[float],
    p: Any = None,
    *,
    max_jump: float | None = None,
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> None:
    """Assert that two flow maps give close states along ``odeint(x0, t, p)``.

    Each map gets ``x0`` in its own dtype and on its own device; the rollouts are compared in
    float64 on the CPU with :func:`torch.testing.assert_close`. A grid ``[s, t]`` compares
    single jumps (when ``t − s`` is within ``max_jump``).

    Arguments
    ---------
    actual, expected:
        The maps.
    x0:
        Initial states ``(batch, dim)``.
    t:
        Output times (as for :meth:`flowsim.FlowMap.odeint`).
    p:
        Parameters, as for :meth:`flowsim.FlowMap.jump`.
    max_jump:
        Longest single jump for both maps (default: each map's own ``max_jump``).
    rtol, atol:
        Tolerances.

    Raises
    ------
    AssertionError
        The rollouts differ by more than the tolerances.

    Examples
    --------
    >>> import torch
    >>> exact = ExactFlowMap("harmonic_oscillator")
    >>> off = ExactFlowMap("harmonic_oscillator", perturbation=lambda s, t, x, p: 1e-3 * x)
    >>> x0 = torch.ones(2, 2, dtype=torch.float64)
    >>> assert_flowmaps_close(off, exact, x0, [0.0, 0.5], rtol=1e-2)
    >>> try:
    ...     assert_flowmaps_close(off, exact, x0, [0.0, 0.5])
    ... except AssertionError:
    ...     print("differ")
    differ
    """
    got, want = (
        _rollout(fm, x0, t, p, max_jump).detach().to(device="cpu", dtype=torch.float64)
        for fm in (actual, expected)
    )
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


def _rollout(fm: FlowMapLike, x0: Tensor, t: Any, p: Any, max_jump: float | None) -> Tensor:
    x = torch.as_tensor(x0).to(dtype=fm.dtype, device=fm.device)
    tt = torch.as_tensor(t, dtype=torch.float64).to(fm.device)
    with torch.no_grad():
        return fm.odeint(x, tt, p, max_jump=max_jump)
