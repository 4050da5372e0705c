"""Gradient fidelity: a map can be accurate in values and wrong in slopes.

Calibration, posteriors (through the likelihood's shape) and reward optimisation follow the
map's derivatives. :func:`sensitivities` gives ``∂X/∂x0`` and ``∂X/∂p`` of any
:class:`~flowsim.steer.Predictor` by autograd; :func:`gradient_check` compares a flow map's
with the reference solver's (autograd through torchdiffeq at tight tolerance) on held-out
starts, jump size by jump size.

Examples
--------
>>> import flowsim
>>> from flowsim.testing import ExactFlowMap
>>> ds = flowsim.steer.gradient_check(ExactFlowMap("harmonic_oscillator"), n=4, jumps=[0.5, 2.0])
>>> bool((ds.cosine_p > 0.999999).all())
True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from ..errors import ConfigError, TimeGridError
from ..maps.protocol import FlowMapLike
from ..solve.options import SolverOptions
from .forward import Predictor, SolverPredictor, predictor

__all__ = ["sensitivities", "gradient_check"]

#: the reference for gradients: dopri5 at tolerances tighter than the forward reference
GRADIENT_SOLVER = SolverOptions(method="dopri5", rtol=1e-10, atol=1e-12)


def sensitivities(model: Predictor | FlowMapLike, x0: Tensor, t0: Tensor, t1: Tensor,
                  p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """States at ``t1`` and their Jacobians in the start state and the parameters, by autograd.

    Arguments
    ---------
    model:
        A :class:`~flowsim.steer.Predictor`, a flow map, a system or a catalogue name
        (as for :func:`~flowsim.steer.predictor`).
    x0, t0, t1, p:
        Starts ``(batch, dim)`` at times ``(batch,)``, end times ``(batch,)`` and parameters
        ``(batch, n_params)``, in the model's dtype.

    Returns
    -------
    tuple of Tensor
        ``x1`` ``(batch, dim)``, ``∂x1/∂x0`` ``(batch, dim, dim)`` and ``∂x1/∂p``
        ``(batch, dim, n_params)`` (detached). Samples are independent, so one backward pass
        per state component gives every sample's rows.

    Examples
    --------
    >>> import torch
    >>> x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    >>> z = torch.zeros(1, dtype=torch.float64)
    >>> x1, jx, jp = sensitivities("harmonic_oscillator", x0, z, z + torch.pi / 2, torch.ones(1, 1).double())
    >>> jx.shape, jp.shape
    (torch.Size([1, 2, 2]), torch.Size([1, 2, 1]))
    """
    pred = predictor(model)
    x0 = x0.detach().clone().requires_grad_(True)
    p = p.detach().clone().requires_grad_(True)
    x1 = pred(x0, t0, t1[:, None], p)[:, 0]
    jx, jp = [], []
    for i in range(x1.shape[1]):
        gx, gp = torch.autograd.grad(x1[:, i].sum(), (x0, p), retain_graph=i + 1 < x1.shape[1],
                                     allow_unused=True)
        jx.append(torch.zeros_like(x0) if gx is None else gx)
        jp.append(torch.zeros_like(p) if gp is None else gp)
    return x1.detach(), torch.stack(jx, 1), torch.stack(jp, 1)


def _compare(a: Tensor, b: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample relative Frobenius error of ``a`` against ``b`` and their cosine similarity."""
    a, b = a.reshape(a.shape[0], -1).double(), b.reshape(b.shape[0], -1).double()
    nb = b.norm(dim=1)
    rel = (a - b).norm(dim=1) / nb.clamp_min(1e-300)
    cos = (a * b).sum(1) / (a.norm(dim=1) * nb).clamp_min(1e-300)
    return rel.cpu().numpy(), cos.cpu().numpy()


def _default_jumps(fm: FlowMapLike) -> list[float]:
    hi = float(getattr(fm, "jump_limit", fm.max_jump))
    return [float(v) for v in np.geomspace(min(fm.max_jump, hi) / 32, min(fm.max_jump, hi), 6)]


def gradient_check(flow_map: FlowMapLike, *, jumps: Sequence[float] | None = None, n: int = 64,
                   seed: int = 0, solver: SolverOptions | None = None) -> xr.Dataset:
    """Compare a flow map's ``∂X/∂x0`` and ``∂X/∂p`` with the reference solver's, by jump size.

    Starts are drawn from the system's initial-state prior and parameters from the map's
    trained range (:meth:`~flowsim.FlowMap.sample_params`), at ``t0 = 0``; for each jump
    ``Δ`` both Jacobians of ``X(0, Δ, x0; p)`` are taken by autograd through the map and
    through torchdiffeq (:data:`GRADIENT_SOLVER`: dopri5, rtol 1e-10, atol 1e-12).

    Arguments
    ---------
    flow_map:
        The map (any :class:`~flowsim.FlowMapLike`).
    jumps:
        Jump sizes (positive, at most the map's ``jump_limit``); default six on a log grid from
        ``max_jump / 32`` to ``max_jump``.
    n:
        Starts (and parameter draws) per jump size.
    seed:
        Seed of the draws.
    solver:
        The reference (a torchdiffeq :class:`~flowsim.SolverOptions`).

    Returns
    -------
    xarray.Dataset
        Over ``jump``: ``rel_error_x0`` / ``rel_error_p`` (median over starts of
        ``‖J_map − J_ref‖_F / ‖J_ref‖_F``), ``rel_error_x0_p90`` / ``rel_error_p_p90`` (90th
        percentile), ``cosine_x0`` / ``cosine_p`` (median cosine similarity of the flattened
        Jacobians) and ``value_rel_error`` (median relative error of the states themselves,
        for comparison). Attributes: system, n, seed, solver.

    Raises
    ------
    ConfigError
        ``n`` < 1, or a model that is not a flow map.
    TimeGridError
        Jumps not positive and finite, or longer than the map was trained for.

    Examples
    --------
    >>> from flowsim.testing import ExactFlowMap
    >>> ds = gradient_check(ExactFlowMap("harmonic_oscillator"), n=4, jumps=[1.0])
    >>> float(ds.rel_error_x0[0]) < 1e-6
    True
    """
    if not isinstance(flow_map, FlowMapLike):
        raise ConfigError(f"gradient_check needs a flow map (FlowMapLike); got {type(flow_map).__name__}; "
                          "sensitivities() gives a solver's own Jacobians")
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive int (starts per jump size); got {n!r}")
    jumps = _default_jumps(flow_map) if jumps is None else [float(v) for v in jumps]
    limit = float(getattr(flow_map, "jump_limit", flow_map.max_jump))
    if not jumps or any(not np.isfinite(v) or v <= 0 or v > limit for v in jumps):
        raise TimeGridError(f"jumps must be positive, finite and at most the map's jump_limit {limit:.4g}; "
                            f"got {jumps}")
    system = flow_map.system
    mp = predictor(flow_map, allow_extrapolation=False)
    ref = SolverPredictor(system, solver or GRADIENT_SOLVER)
    g = torch.Generator().manual_seed(seed)
    x0 = system.sample_initial(n, generator=g)
    sample = getattr(flow_map, "sample_params", system.sample_params)
    p = sample(n, g).to(torch.float64)
    out: dict[str, list[float]] = {k: [] for k in (
        "rel_error_x0", "rel_error_p", "rel_error_x0_p90", "rel_error_p_p90", "cosine_x0", "cosine_p",
        "value_rel_error")}
    dt, dev = flow_map.dtype, flow_map.device
    z = torch.zeros(n, dtype=torch.float64)
    for d in jumps:
        r1, rjx, rjp = sensitivities(ref, x0, z, z + d, p)
        m1, mjx, mjp = sensitivities(mp, *(v.to(device=dev, dtype=dt) for v in (x0, z, z + d, p)))
        for what, a, b in (("x0", mjx, rjx), ("p", mjp, rjp)):
            rel, cos = _compare(a.cpu(), b)
            out[f"rel_error_{what}"].append(float(np.median(rel)))
            out[f"rel_error_{what}_p90"].append(float(np.quantile(rel, 0.9)))
            out[f"cosine_{what}"].append(float(np.median(cos)))
        out["value_rel_error"].append(float(np.median(_compare(m1.cpu()[:, :, None], r1[:, :, None])[0])))
    ref_solver = solver or GRADIENT_SOLVER
    return xr.Dataset(
        {k: ("jump", np.asarray(v)) for k, v in out.items()},
        coords={"jump": np.asarray(jumps)},
        attrs={"system": system.name, "n": n, "seed": seed,
               "solver": f"{ref_solver.method} rtol={ref_solver.rtol:g} atol={ref_solver.atol:g}",
               "description": "median over starts of the relative Frobenius error and cosine of the "
                              "map's Jacobians against the reference solver's"})
