"""The one definition of flowsim's error metrics: relative and normalised error, state scales σ.

The relative error ``‖X − X_ref‖ / ‖X_ref‖`` is misleading where states pass near zero, so
every analysis result reports it together with the normalised error
``‖(X − X_ref) / σ‖ / √dim`` (σ: per-state standard deviation over the reference data, see
:func:`state_std`), and labels each variable with :data:`METRICS` so a reader always knows
which one a number is. Training validation (``flowsim.train``), the analyses
(``flowsim.analysis``) and the benchmarks all compute their errors here, so their numbers
agree for the same map and data.

Examples
--------
>>> import torch
>>> from flowsim.metrics import normalised_error, relative_error, state_std
>>> ref = torch.tensor([[1.0, 0.0], [3.0, 2.0]], dtype=torch.float64)
>>> pred = ref + 0.1
>>> relative_error(pred, ref)
tensor([0.1414, 0.0392], dtype=torch.float64)
>>> normalised_error(pred, ref, state_std(ref))
tensor([0.0707, 0.0707], dtype=torch.float64)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from .errors import ConfigError, ShapeError

__all__ = [
    "METRICS",
    "SIGMA_MIN_REL",
    "metric_attrs",
    "normalised_error",
    "relative_error",
    "check_quantiles",
    "state_std",
    "summarise_errors",
]

# The clamps (one of each, used by every caller):
# * relative error: the reference norm is floored at the smallest normal float64 (~2.2e-308),
#   so every non-zero reference norm is used exactly as it is and only an exactly zero (or
#   subnormal) reference is replaced — the error there is huge instead of inf/NaN. Training
#   validation used 1e-300 before; no real state has a norm between the two, so no number moved.
# * σ: floored *relative* to the largest per-state std (``min_rel`` = 1e-12 of it; 1 when every
#   state is constant), not at an absolute 1e-12 as training validation did before. An
#   absolute floor depends on the units: states of order 1e-13 (concentrations in mol/L, say)
#   would all be clamped, and the normalised error would mean nothing. The relative floor only
#   touches a state that never varies, and then keeps its error finite. Rows with NaN/inf are
#   left out, so one diverged trajectory does not make every σ NaN.
_TINY = torch.finfo(torch.float64).tiny
#: Relative floor of σ (fraction of the largest per-state standard deviation).
SIGMA_MIN_REL = 1e-12

#: Description of each error metric, stored in the ``attrs`` of every result.
METRICS: dict[str, str] = {
    "relative_error": "relative error ‖X − X_ref‖ / ‖X_ref‖ (Euclidean norms over the state vector)",
    "normalised_error": (
        "normalised error ‖(X − X_ref) / σ‖ / √dim, σ = per-state standard deviation of the "
        "reference data (an RMS error in units of each state's spread)"
    ),
}


def relative_error(x: Tensor, x_ref: Tensor) -> Tensor:
    """Relative error ``‖x − x_ref‖ / ‖x_ref‖`` over the last (state) axis.

    Arguments
    ---------
    x, x_ref:
        Predicted and reference states, same shape ``(..., dim)``.

    Returns
    -------
    Tensor
        ``(...)`` float64 errors. A zero reference state gives a huge (not infinite) error.

    Raises
    ------
    ShapeError
        Shapes differ.

    Examples
    --------
    >>> import torch
    >>> relative_error(torch.tensor([[1.1, 0.0]]), torch.tensor([[1.0, 0.0]]))
    tensor([0.1000], dtype=torch.float64)
    """
    x, x_ref = _pair(x, x_ref)
    den = torch.linalg.vector_norm(x_ref, dim=-1).clamp_min(_TINY)
    return torch.linalg.vector_norm(x - x_ref, dim=-1) / den


def normalised_error(x: Tensor, x_ref: Tensor, sigma: Tensor | Sequence[float]) -> Tensor:
    """Normalised error ``‖(x − x_ref) / σ‖ / √dim`` over the last (state) axis.

    Arguments
    ---------
    x, x_ref:
        Predicted and reference states, same shape ``(..., dim)``.
    sigma:
        Per-state scale ``(dim,)``, usually :func:`state_std` of the reference data.

    Returns
    -------
    Tensor
        ``(...)`` float64 errors (an RMS error in units of each state's spread).

    Raises
    ------
    ShapeError
        Shapes differ, or ``sigma`` is not ``(dim,)`` positive and finite.

    Examples
    --------
    >>> import torch
    >>> normalised_error(torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2), [1.0, 2.0])
    tensor([1.], dtype=torch.float64)
    """
    x, x_ref = _pair(x, x_ref)
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device)
    if sigma.shape != (x.shape[-1],) or not bool((sigma > 0).all()) or not bool(sigma.isfinite().all()):
        raise ShapeError(f"sigma must be ({x.shape[-1]},) positive finite values; got {sigma.tolist()}")
    return torch.linalg.vector_norm((x - x_ref) / sigma, dim=-1) / x.shape[-1] ** 0.5


def state_std(x: Tensor, min_rel: float = SIGMA_MIN_REL) -> Tensor:
    """Per-state standard deviation over every finite sample of ``x`` ``(..., dim)``.

    States that never vary get a floor of ``min_rel`` times the largest std (or 1 when all
    are constant), so the normalised error stays finite.

    Arguments
    ---------
    x:
        Reference states of any leading shape; non-finite rows are ignored.
    min_rel:
        Relative floor of the standard deviation.

    Returns
    -------
    Tensor
        ``(dim,)`` float64.

    Raises
    ------
    ShapeError
        ``x`` is not at least 1-D, or has fewer than two finite samples.

    Examples
    --------
    >>> import torch
    >>> state_std(torch.tensor([[0.0, 1.0], [2.0, 1.0]]))
    tensor([1.4142e+00, 1.4142e-12], dtype=torch.float64)
    """
    x = torch.as_tensor(x).detach().to(torch.float64)
    if x.ndim < 1 or x.shape[-1] == 0:
        raise ShapeError(f"x must have shape (..., dim) with dim >= 1; got {tuple(x.shape)}")
    flat = x.reshape(-1, x.shape[-1])
    flat = flat[torch.isfinite(flat).all(dim=1)]
    if flat.shape[0] < 2:
        raise ShapeError("need at least two finite reference states to compute the per-state std")
    std = flat.std(dim=0)
    top = float(std.max())
    return std.clamp_min(min_rel * top if top > 0 else 1.0)


def metric_attrs(name: str) -> dict[str, str]:
    """``attrs`` for a variable holding metric ``name`` (``"relative_error"`` or ``"normalised_error"``).

    Arguments
    ---------
    name:
        A key of :data:`METRICS`.

    Returns
    -------
    dict
        ``{"metric": name, "description": …, "units": "1"}``.

    Raises
    ------
    ConfigError
        Unknown metric name.

    Examples
    --------
    >>> metric_attrs("relative_error")["metric"]
    'relative_error'
    """
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}; choose one of {list(METRICS)}")
    return {"metric": name, "description": METRICS[name], "units": "1"}


def summarise_errors(errors: Tensor, quantiles: Sequence[float]) -> tuple[float, list[float]]:
    """Median and quantiles of ``errors``; non-finite errors (a diverged prediction or a failed
    solve) count as ``+inf``, so failures raise the quantiles instead of vanishing.

    Arguments
    ---------
    errors:
        Errors of any shape (flattened).
    quantiles:
        Quantile levels in (0, 1) (see :func:`check_quantiles`).

    Returns
    -------
    tuple
        ``(median, [quantile, …])`` as floats; NaN when ``errors`` is empty.

    Examples
    --------
    >>> import torch
    >>> summarise_errors(torch.tensor([1.0, 2.0, 3.0]), (0.5,))
    (2.0, [2.0])
    >>> summarise_errors(torch.tensor([1.0, float("nan"), 3.0]), (0.9,))[0]
    3.0
    """
    e = torch.as_tensor(errors, dtype=torch.float64).flatten().cpu().numpy()
    e = np.where(np.isfinite(e), e, np.inf)
    if e.size == 0:
        return float("nan"), [float("nan")] * len(quantiles)
    method = "linear" if np.isfinite(e).all() else "closest_observation"  # no inf − inf
    med = float(np.quantile(e, 0.5, method=method))
    return med, [float(v) for v in np.quantile(e, list(quantiles), method=method)]


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    """Validate quantile levels in (0, 1).

    Arguments
    ---------
    quantiles:
        A non-empty sequence of numbers strictly between 0 and 1.

    Returns
    -------
    tuple of float

    Raises
    ------
    ConfigError
        Not a sequence of numbers in (0, 1).

    Examples
    --------
    >>> check_quantiles([0.1, 0.9])
    (0.1, 0.9)
    """
    try:
        q = tuple(float(v) for v in quantiles)
    except (TypeError, ValueError):
        raise ConfigError(f"quantiles must be a sequence of numbers in (0, 1); got {quantiles!r}") from None
    if not q or not all(0.0 < v < 1.0 for v in q):
        raise ConfigError(f"quantiles must be a non-empty sequence of numbers in (0, 1); got {quantiles!r}")
    return q


def _pair(x: Tensor, x_ref: Tensor) -> tuple[Tensor, Tensor]:
    x = torch.as_tensor(x).detach().to(torch.float64)
    x_ref = torch.as_tensor(x_ref).detach().to(torch.float64, copy=False).to(x.device)
    if x.shape != x_ref.shape or x.ndim < 1:
        raise ShapeError(f"x and x_ref must have the same shape (..., dim); got {tuple(x.shape)} "
                         f"and {tuple(x_ref.shape)}")
    return x, x_ref
