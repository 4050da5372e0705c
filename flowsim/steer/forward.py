"""The forward model that steering calls thousands of times: states at many times from one start.

Calibration, posteriors and optimisation all need the same thing: for a batch of starts
``x0`` at times ``t0`` with parameters ``p``, the states at per-sample observation times
``times``. :class:`Predictor` declares it; two implementations give it:

- :class:`MapPredictor`: through a flow map, **one jump** from ``t0`` to every observation time
  (all ``batch × time`` jumps in one network call), differentiable in ``x0`` and ``p``;
- :class:`SolverPredictor`: through the reference solver (torchdiffeq, differentiable by
  autograd through the steps), on the union of the batch's times. It is the baseline every
  map-based answer is checked against.

:func:`predictor` turns a map, a system or a catalogue name into one.

Examples
--------
>>> import torch, flowsim
>>> from flowsim.steer import predictor
>>> sol = predictor("harmonic_oscillator")
>>> x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
>>> times = torch.tensor([[0.5, 1.0, 2.0]], dtype=torch.float64)
>>> sol(x0, torch.zeros(1, dtype=torch.float64), times, sol.system.default_params(1)).shape
torch.Size([1, 3, 2])
"""

from __future__ import annotations

import inspect
import warnings
from typing import Protocol, runtime_checkable

import torch
import torchdiffeq
from torch import Tensor

from ..errors import ConfigError, ExtrapolationWarning, ShapeError, TimeGridError
from ..maps.compose import compose_jumps, n_jumps
from ..maps.protocol import FlowMapLike
from ..solve.options import SolverOptions
from ..solve.torch_backend import odeint_options
from ..systems.base import ODESystem
from ..systems.registry import get_system

__all__ = ["Predictor", "MapPredictor", "SolverPredictor", "predictor", "sensitivity_solve", "GRADIENTS"]

#: How :class:`SolverPredictor` results are differentiated.
GRADIENTS = ("autograd", "sensitivity", "finite-difference")


@runtime_checkable
class Predictor(Protocol):
    """States at observation times: ``predictor(x0, t0, times, p) -> (batch, time, dim)``.

    Attributes
    ----------
    system:
        The :class:`~flowsim.ODESystem` predicted.
    dtype, device:
        What inputs must be (outputs are the same).
    kind:
        ``"map"`` or ``"solver"``: said in every steering result.

    Call arguments: ``x0`` ``(batch, dim)`` at ``t0`` ``(batch,)``; ``times`` ``(batch, time)``
    with every ``times[b] >= t0[b]`` (pad ragged rows with any valid time and mask the result);
    ``p`` ``(batch, n_params)``. The result is differentiable in ``x0`` and ``p``.

    Examples
    --------
    >>> import flowsim
    >>> isinstance(flowsim.steer.SolverPredictor("harmonic_oscillator"), flowsim.steer.Predictor)
    True
    """

    system: ODESystem
    kind: str

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def __call__(self, x0: Tensor, t0: Tensor, times: Tensor, p: Tensor) -> Tensor: ...


def _check(system: ODESystem, x0: Tensor, t0: Tensor, times: Tensor, p: Tensor) -> None:
    """Shapes and the forward-in-time rule, as a :class:`~flowsim.errors.FlowsimError`."""
    b = x0.shape[0] if x0.ndim == 2 else -1
    if x0.ndim != 2 or x0.shape[1] != system.dim:
        raise ShapeError(f"x0 must be (batch, {system.dim}) for {system.name}; got {tuple(x0.shape)}")
    if t0.shape != (b,) or times.ndim != 2 or times.shape[0] != b:
        raise ShapeError(f"t0 must be (batch,) and times (batch, time) with batch {b}; got "
                         f"t0 {tuple(t0.shape)}, times {tuple(times.shape)}")
    if p.shape != (b, system.n_params):
        raise ShapeError(f"p must be (batch, {system.n_params}); got {tuple(p.shape)}")
    if not bool(torch.isfinite(times).all()):
        raise TimeGridError("observation times must be finite (mask missing ones, do not NaN them)")
    if bool((times < t0[:, None]).any()):
        raise TimeGridError("every observation time must be at or after its start time t0")


class MapPredictor:
    """States at observation times through a flow map: one jump from ``t0`` to each time.

    Arguments
    ---------
    flow_map:
        A trained :class:`~flowsim.FlowMap`, :class:`~flowsim.FlowMapEnsemble` or any
        :class:`~flowsim.FlowMapLike`.
    allow_extrapolation:
        Passed to :meth:`~flowsim.FlowMap.jump`: ``None`` refuses parameters outside the
        trained range and composes (with a warning) jumps longer than the map's
        ``jump_limit``; ``False`` refuses both; ``True`` accepts parameters outside the range
        (the caller has warned) and still composes long jumps, with a warning.

    Examples
    --------
    >>> import torch, flowsim
    >>> fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1, max_jump=5.0)
    >>> pred = flowsim.steer.MapPredictor(fm)
    >>> x0 = torch.ones(2, 2)
    >>> pred(x0, torch.zeros(2), torch.tensor([[1.0, 2.0], [0.5, 3.0]]), fm.sample_params(2)).shape
    torch.Size([2, 2, 2])
    """

    kind = "map"

    def __init__(self, flow_map: FlowMapLike, *, allow_extrapolation: bool | None = None) -> None:
        if not isinstance(flow_map, FlowMapLike):
            raise ConfigError(f"MapPredictor needs a flow map (FlowMapLike); got {type(flow_map).__name__}")
        self.flow_map = flow_map
        self.system = flow_map.system
        self.allow_extrapolation = allow_extrapolation
        # a map whose checked jump applies its own range rules (e.g. an exact map) takes no
        # allow_extrapolation keyword: it is passed only where the map's jump has it
        try:
            takes = "allow_extrapolation" in inspect.signature(flow_map.jump).parameters
        except (TypeError, ValueError):
            takes = False
        self._jump_kw = {"allow_extrapolation": allow_extrapolation} \
            if takes and allow_extrapolation is not None else {}

    @property
    def dtype(self) -> torch.dtype:
        return self.flow_map.dtype

    @property
    def device(self) -> torch.device:
        return self.flow_map.device

    def __call__(self, x0: Tensor, t0: Tensor, times: Tensor, p: Tensor) -> Tensor:
        _check(self.system, x0, t0, times, p)
        b, n = times.shape
        if n == 0:
            return x0.new_zeros(b, 0, self.system.dim)
        rep = lambda a: a.repeat_interleave(n, dim=0)  # noqa: E731
        x, s, t, pp = rep(x0), rep(t0), times.reshape(-1), rep(p)
        k = self._composed(s, t)
        if k > 1:  # accepting parameters outside the range does not make long jumps safe
            out = compose_jumps(lambda s_, t_, x_, p_: self.flow_map.jump(x_, s_, t_, p_, **self._jump_kw),
                                x, s, t, pp, n=k)
        else:
            out = self.flow_map.jump(x, s, t, pp, **self._jump_kw)
        return out.reshape(b, n, self.system.dim)

    def _composed(self, s: Tensor, t: Tensor) -> int:
        """With ``allow_extrapolation=True`` (parameters outside the trained range accepted), a
        jump longer than the map's ``jump_limit`` is still composed of jumps of at most
        ``max_jump`` (with a warning), as with ``None``: 1 otherwise."""
        limit = getattr(self.flow_map, "jump_limit", None)
        if self.allow_extrapolation is not True or limit is None or s.numel() == 0:
            return 1
        span = float((t - s).abs().max())
        if span <= float(limit):
            return 1
        k = n_jumps(span, float(self.flow_map.max_jump))
        warnings.warn(f"a jump of {span:.4g} time units is longer than this map was trained for "
                      f"(jump_limit {float(limit):.4g}): composed {k} jumps of at most max_jump="
                      f"{float(self.flow_map.max_jump):.4g}", ExtrapolationWarning, stacklevel=3)
        return k


class SolverPredictor:
    """States at observation times through torchdiffeq: the reference every map answer is checked by.

    Samples that share a start time are solved together on the union of their times
    (torchdiffeq needs one grid per solve); gradients flow by autograd through the steps.

    Arguments
    ---------
    system:
        An :class:`~flowsim.ODESystem` or a catalogue name.
    solver:
        A torchdiffeq :class:`~flowsim.SolverOptions` (default dopri5 at rtol 1e-8, atol 1e-10).
    dtype:
        The dtype of inputs and outputs (default float64).
    gradients:
        How the result is differentiated: ``"autograd"`` (default: through the solver's steps,
        exact to all orders) or ``"sensitivity"``: the forward sensitivity equations
        ``S' = ∂f/∂x S + ∂f/∂p`` are solved with the states (no graph through the steps, so
        gradients cost one augmented solve), or ``"finite-difference"``: every input nudged, in
        the same batch (one shared step sequence; cheapest), and the result is the linearisation
        ``y + S·(Δx0, Δp)``: exact values and first derivatives, second derivatives of the
        Gauss–Newton kind (:func:`~flowsim.steer.calibrate` uses the differences for its
        polish, its baseline and its standard errors).

    Examples
    --------
    >>> import torch, flowsim
    >>> pred = flowsim.steer.SolverPredictor("harmonic_oscillator")
    >>> x0 = torch.ones(1, 2, dtype=torch.float64)
    >>> y = pred(x0, torch.zeros(1, dtype=torch.float64), torch.tensor([[1.0]], dtype=torch.float64),
    ...          pred.system.default_params(1))
    >>> y.shape
    torch.Size([1, 1, 2])
    """

    kind = "solver"

    def __init__(self, system: ODESystem | str, solver: SolverOptions | None = None, *,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu",
                 gradients: str = "autograd") -> None:
        self.system = get_system(system) if isinstance(system, str) else system
        if not isinstance(self.system, ODESystem):
            raise ConfigError(f"SolverPredictor needs an ODESystem or a catalogue name; got "
                              f"{type(system).__name__}")
        self.solver = solver if solver is not None else SolverOptions(method="dopri5", rtol=1e-8, atol=1e-10)
        if self.solver.backend != "torchdiffeq":
            raise ConfigError("SolverPredictor differentiates through torchdiffeq; give a SolverOptions "
                              f"with backend='torchdiffeq' (got {self.solver.backend!r})")
        self._dtype, self._device = dtype, torch.device(device)
        if gradients not in GRADIENTS:
            raise ConfigError(f"gradients must be one of {list(GRADIENTS)}; got {gradients!r}")
        self.gradients = gradients

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def __call__(self, x0: Tensor, t0: Tensor, times: Tensor, p: Tensor) -> Tensor:
        _check(self.system, x0, t0, times, p)
        b, n = times.shape
        out = x0.new_zeros(b, n, self.system.dim)
        if n == 0:
            return out
        kw = odeint_options(self.solver)
        rows = []
        for start in torch.unique(t0):
            idx = (t0 == start).nonzero().squeeze(1)
            grid, where = torch.unique(torch.cat([start.reshape(1), times[idx].reshape(-1)]),
                                       return_inverse=True)
            pi = p[idx]
            pos = where[1:].reshape(len(idx), n)                      # grid index of each time
            if self.gradients != "autograd" and torch.is_grad_enabled() and (x0.requires_grad
                                                                         or p.requires_grad):
                ys = sensitivity_solve(self.system, x0[idx], pi, grid, kw, self.gradients)
            else:
                ys = torchdiffeq.odeint(lambda t, x, pi=pi: self.system.vector_field(t, x, pi),
                                        x0[idx], grid, **kw)          # (grid, k, dim)
            rows.append((idx, ys[pos, torch.arange(len(idx))[:, None]]))
        for idx, y in rows:
            out = out.index_copy(0, idx, y)
        return out


def sensitivity_solve(system: ODESystem, x0: Tensor, p: Tensor, grid: Tensor, kw: dict,
                      how: str = "sensitivity") -> Tensor:
    """States ``(grid, batch, dim)`` whose first derivatives in ``x0`` and ``p`` come from one
    torchdiffeq call: the forward sensitivity equations (``how="sensitivity"``) or forward
    differences (``"finite-difference"``).

    Sensitivities: the augmented state is ``(x, ∂x/∂x0, ∂x/∂p)``, the Jacobians of the vector
    field by autograd, ``dim`` backward passes per evaluation, the step size controlled on the
    states. Differences: every sample is solved with each of its ``dim + n_params`` inputs
    nudged by ``1e-7`` of its size, in the same batch, so all share one sequence of steps and
    the difference is that of one discrete solution (no step-size noise); 3.6× cheaper than
    the sensitivities on the 12 Theoph subjects. The result is ``y + S·Δ`` with ``S`` detached: the value of
    ``y``, the gradient ``S``, no second derivative of ``y``.
    """
    b, d, q = x0.shape[0], system.dim, p.shape[-1]
    if how == "finite-difference":
        return _difference_solve(system, x0, p, grid, kw)

    def rhs(t: Tensor, z: Tensor) -> Tensor:
        x, sx, sp = z[:, :d], z[:, d:d + d * d].reshape(b, d, d), z[:, d + d * d:].reshape(b, d, q)
        with torch.enable_grad():
            xv, pv = x.detach().requires_grad_(True), p.detach().requires_grad_(True)
            f = system.vector_field(t, xv, pv)
            rows = [torch.autograd.grad(f[:, i].sum(), (xv, pv), retain_graph=i < d - 1,
                                        materialize_grads=True) for i in range(d)]
        jx = torch.stack([r[0] for r in rows], 1)                     # (b, d, d)
        jp = torch.stack([r[1] for r in rows], 1)                     # (b, d, q)
        return torch.cat([f.detach(), (jx @ sx).reshape(b, -1), (jx @ sp + jp).reshape(b, -1)], 1)

    eye = torch.eye(d, dtype=x0.dtype, device=x0.device).expand(b, d, d).reshape(b, -1)
    z0 = torch.cat([x0.detach(), eye, x0.new_zeros(b, d * q)], 1)
    kw = dict(kw, options=dict(kw.get("options", {}), norm=lambda z: z[..., :d].pow(2).mean().sqrt()))
    with torch.no_grad():  # the step size is controlled on the states alone (as CVODES without errconS)
        zs = torchdiffeq.odeint(rhs, z0, grid, **kw)                  # (grid, b, d + d*d + d*q)
    y = zs[..., :d]
    sx = zs[..., d:d + d * d].reshape(len(grid), b, d, d)
    sp = zs[..., d + d * d:].reshape(len(grid), b, d, q)
    dx, dp = x0 - x0.detach(), p - p.detach()
    return y + (sx @ dx[None, :, :, None])[..., 0] + (sp @ dp[None, :, :, None])[..., 0]


def _difference_solve(system: ODESystem, x0: Tensor, p: Tensor, grid: Tensor, kw: dict) -> Tensor:
    b, d, q = x0.shape[0], system.dim, p.shape[-1]
    x0d, pd = x0.detach(), p.detach()
    h = torch.cat([x0d, pd], 1).abs().clamp_min(1e-3) * 1e-7                   # (b, d + q)
    eye = torch.eye(d + q, dtype=x0.dtype, device=x0.device)
    nudge = torch.cat([torch.zeros(1, d + q, dtype=x0.dtype, device=x0.device), eye])  # (1 + d + q, d + q)
    z = torch.cat([x0d, pd], 1)[None] + nudge[:, None, :] * h[None]           # (1 + d + q, b, d + q)
    z = z.reshape(-1, d + q)
    pz = z[:, d:]
    with torch.no_grad():
        ys = torchdiffeq.odeint(lambda t, x: system.vector_field(t, x, pz), z[:, :d], grid, **kw)
    ys = ys.reshape(len(grid), 1 + d + q, b, d)
    y = ys[:, 0]
    jac = (ys[:, 1:] - y[:, None]) / h.T[None, :, :, None]                    # (grid, d + q, b, d)
    jac = jac.permute(0, 2, 3, 1)                                             # (grid, b, d, d + q)
    delta = torch.cat([x0 - x0d, p - pd], 1)
    return y + (jac @ delta[None, :, :, None])[..., 0]


def predictor(model: FlowMapLike | ODESystem | str | Predictor, *,
              allow_extrapolation: bool | None = None) -> Predictor:
    """A :class:`Predictor` for a flow map (:class:`MapPredictor`) or a system or catalogue name
    (:class:`SolverPredictor` at reference tolerances); a predictor is returned as it is.

    Arguments
    ---------
    model:
        A flow map, an ODESystem, a catalogue name, or a Predictor.
    allow_extrapolation:
        For a map: as for :class:`MapPredictor`.

    Examples
    --------
    >>> import flowsim
    >>> flowsim.steer.predictor("lotka_volterra").kind
    'solver'
    """
    if isinstance(model, (MapPredictor, SolverPredictor)):
        return model
    if isinstance(model, (ODESystem, str)):
        return SolverPredictor(model)
    if isinstance(model, FlowMapLike):
        return MapPredictor(model, allow_extrapolation=allow_extrapolation)
    if isinstance(model, Predictor):
        return model
    raise ConfigError(f"cannot steer a {type(model).__name__}: give a flow map, an ODESystem, a "
                      "catalogue name or a Predictor")
