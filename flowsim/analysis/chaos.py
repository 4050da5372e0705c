"""Valid prediction time of a flow-map rollout on a chaotic system, in Lyapunov times."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from ..errors import ConfigError, TimeGridError
from ..maps import FlowMapLike, check_flowmap_like
from ..metrics import check_quantiles, metric_attrs, normalised_error, relative_error, summarise_errors
from ._maps import check_horizon, result_attrs, rollout, time_units, warn_outside_range
from ._reference import load_reference

__all__ = ["valid_prediction_time"]


def valid_prediction_time(
    flowmap: FlowMapLike,
    reference: Any,
    threshold: float = 0.4,
    *,
    horizon: float | None = None,
    max_jump: float | None = None,
    lyapunov_exponent: float | None = None,
    quantiles: Sequence[float] = (0.1, 0.5, 0.9),
) -> xr.Dataset:
    """How long a rollout of the flow map stays close to the truth, in Lyapunov times.

    The map rolls each reference trajectory forward from its first stored state through
    every stored time (gaps longer than ``max_jump`` split into equal jumps). The valid
    prediction time (VPT) is the first time the normalised error ``‖(X − X_ref)/σ‖/√dim``
    (σ: per-state std of the reference data, i.e. of the attractor) exceeds ``threshold``,
    linearly interpolated between stored times, times the leading Lyapunov exponent. A
    trajectory that never exceeds it gets the horizon and ``reached_horizon=True``.

    Arguments
    ---------
    flowmap:
        Any :class:`flowsim.FlowMapLike` (see :mod:`flowsim.analysis` for what is called).
    reference:
        Reference trajectories (:class:`flowsim.Solution` or store Dataset), ideally on the
        attractor; failed ones are skipped.
    threshold:
        Normalised-error threshold (0.4 is common in the reservoir-computing literature).
    horizon:
        Only use stored times up to this lead time (default: all).
    max_jump:
        Longest single jump of the rollout (default: the map's ``max_jump``).
    lyapunov_exponent:
        Leading Lyapunov exponent (default: ``system.lyapunov_exponent``, given at the
        standard parameters).
    quantiles:
        Quantile levels of the error curve.

    Returns
    -------
    xarray.Dataset
        ``valid_prediction_time(trajectory)`` (time units), ``valid_prediction_time_lyapunov(trajectory)``,
        ``reached_horizon(trajectory)``, scalar ``median_valid_prediction_time_lyapunov``, and
        the error curve ``median_normalised_error(lead_time)``, ``median_relative_error(lead_time)``,
        ``normalised_error_quantiles(lead_time, quantile)``.

    Raises
    ------
    ConfigError
        The system has no known Lyapunov exponent and none was given; bad threshold or quantiles.
    TimeGridError
        Non-positive or too long ``horizon``; non-positive ``max_jump``.
    CheckpointError, ShapeError
        The reference belongs to another system or has the wrong dimension.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.analysis import ExactFlowMap, valid_prediction_time
    >>> lz = flowsim.get_system("lorenz63")
    >>> ref = flowsim.reference_solve(lz, lz.sample_initial(4, 0), torch.linspace(0, 1, 11))
    >>> ds = valid_prediction_time(ExactFlowMap(lz), ref)
    >>> bool(ds.reached_horizon.all())
    True
    """
    system = check_flowmap_like(flowmap)
    q = check_quantiles(quantiles)
    lam = lyapunov_exponent if lyapunov_exponent is not None else getattr(system, "lyapunov_exponent", None)
    if lam is None or not (float(lam) > 0 and math.isfinite(float(lam))):
        raise ConfigError(
            f"{system.name} has no known positive Lyapunov exponent; pass lyapunov_exponent=… "
            "(valid prediction time is meant for chaotic systems)"
        )
    lam = float(lam)
    if not (float(threshold) > 0 and math.isfinite(float(threshold))):
        raise ConfigError(f"threshold must be a positive number; got {threshold!r}")
    thr = float(threshold)
    hmax = check_horizon(flowmap.max_jump if max_jump is None else max_jump, "max_jump")
    ref = load_reference(reference, system)
    warn_outside_range(flowmap, ref.p)
    lead = ref.t - ref.t[:, :1]
    if horizon is not None:
        h = check_horizon(horizon)
        if h > float(lead[:, -1].max()) * (1 + 1e-6):
            raise TimeGridError(f"horizon {h:.4g} exceeds the stored reference span {ref.span:.4g}")
    else:
        h = float(lead[:, -1].max())
    cols = int((lead <= h * (1 + 1e-9)).any(dim=0).nonzero().max()) + 1
    t, x_ref, lead = ref.t[:, :cols], ref.x[:, :cols], lead[:, :cols]
    present = lead <= h * (1 + 1e-9)

    pred = rollout(flowmap, x_ref[:, 0], t, ref.p, hmax)
    nrm = normalised_error(pred, x_ref, ref.sigma)
    rel = relative_error(pred, x_ref)
    vpt, reached = _crossing(nrm, lead, present, thr)

    med_n, q_n, med_r = [], [], []
    for k in range(cols):
        m, v = summarise_errors(nrm[present[:, k], k], q)
        med_n.append(m)
        q_n.append(v)
        med_r.append(summarise_errors(rel[present[:, k], k], ())[0])
    units = time_units(system)
    lead_c = lead.median(dim=0).values.numpy()
    ds = xr.Dataset(coords={
        "trajectory": ("trajectory", np.arange(ref.n)),
        "lead_time": ("lead_time", lead_c, {"units": units, "long_name": "time since the start"}),
        "quantile": ("quantile", np.asarray(q)),
    })
    ds["valid_prediction_time"] = ("trajectory", vpt.numpy(), {"units": units})
    ds["valid_prediction_time_lyapunov"] = ("trajectory", vpt.numpy() * lam, {"units": "Lyapunov times"})
    ds["reached_horizon"] = ("trajectory", reached.numpy(),
                             {"description": "error stayed below the threshold up to the horizon"})
    ds["median_valid_prediction_time_lyapunov"] = ((), float(np.median(vpt.numpy() * lam)),
                                                   {"units": "Lyapunov times"})
    ds["median_normalised_error"] = ("lead_time", np.asarray(med_n), metric_attrs("normalised_error"))
    ds["normalised_error_quantiles"] = (("lead_time", "quantile"), np.asarray(q_n),
                                        metric_attrs("normalised_error"))
    ds["median_relative_error"] = ("lead_time", np.asarray(med_r), metric_attrs("relative_error"))
    ds.attrs.update(result_attrs(
        "valid_prediction_time", system, flowmap, threshold=thr, threshold_metric="normalised_error",
        lyapunov_exponent=lam, lyapunov_time=1.0 / lam, horizon=h, horizon_lyapunov=h * lam,
        rollout_max_jump=hmax, sigma=ref.sigma.tolist(), n_reference_trajectories=ref.n,
        n_reached_horizon=int(reached.sum()),
        note="trajectories that reached the horizon count with the horizon: the median is then a lower bound",
        n_reference_skipped=ref.n_skipped,
    ))
    return ds


def _crossing(err: Tensor, lead: Tensor, present: Tensor, thr: float) -> tuple[Tensor, Tensor]:
    """First threshold crossing per row (linear interpolation); NaN errors count as crossings."""
    n, cols = err.shape
    bad = ~(err <= thr) & present
    bad[:, 0] = False  # the start is the reference state itself
    vpt = torch.empty(n, dtype=torch.float64)
    reached = torch.zeros(n, dtype=torch.bool)
    for r in range(n):
        hits = bad[r].nonzero().flatten()
        if hits.numel() == 0:
            last = int(present[r].nonzero().max())
            vpt[r] = lead[r, last]
            reached[r] = True
            continue
        k = int(hits[0])
        e0, e1 = float(err[r, k - 1]), float(err[r, k])
        frac = (thr - e0) / (e1 - e0) if math.isfinite(e1) and e1 > e0 else 0.0
        vpt[r] = lead[r, k - 1] + min(max(frac, 0.0), 1.0) * (lead[r, k] - lead[r, k - 1])
    return vpt, reached
