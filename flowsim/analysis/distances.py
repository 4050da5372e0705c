"""Distances between sample sets, for generative models: energy distance, MMD, sliced
Wasserstein, the classifier two-sample test (C2ST), and mode coverage of mixtures."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError

__all__ = ["energy_distance", "mmd", "sliced_wasserstein", "c2st", "mode_coverage"]


def _pair(x, y) -> tuple[Tensor, Tensor]:
    x = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
    y = torch.as_tensor(y).detach().to(device="cpu", dtype=torch.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ShapeError(f"sample sets must be (n, dim) and (m, dim) with n, m >= 2; got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
        raise ShapeError("sample sets contain NaN or inf")
    return x, y


def _mean_dist(a: Tensor, b: Tensor, same: bool) -> Tensor:
    d = torch.cdist(a, b)
    if same:  # the unbiased within-set mean leaves out the zero diagonal
        n = a.shape[0]
        return d.sum() / (n * (n - 1))
    return d.mean()


def energy_distance(x, y) -> float:
    """The energy distance ``2 E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖`` (Székely & Rizzo), unbiased
    within sets; zero in expectation for equal laws, and a metric on distributions.

    Two independent draws of one law give a small positive or negative value whose size (the
    noise floor) shrinks like ``1/n``: compare a model's distance with that of fresh data.

    Arguments
    ---------
    x, y:
        ``(n, dim)`` and ``(m, dim)`` samples.

    Raises
    ------
    ShapeError
        Not 2-D, different dimensions, fewer than two samples, NaN.

    Examples
    --------
    >>> import torch
    >>> from flowsim.analysis import energy_distance
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.randn(500, 2, generator=g), torch.randn(500, 2, generator=g)
    >>> abs(energy_distance(x, y)) < 0.02, energy_distance(x, y + 1.0) > 0.5
    (True, True)
    """
    x, y = _pair(x, y)
    return float(2 * _mean_dist(x, y, False) - _mean_dist(x, x, True) - _mean_dist(y, y, True))


def mmd(x, y, bandwidth: float | None = None) -> float:
    """The squared maximum mean discrepancy with a Gaussian kernel ``exp(−‖a − b‖² / 2h²)``
    (unbiased estimate; ``h`` by the median heuristic over the pooled samples unless given).

    Arguments
    ---------
    x, y:
        ``(n, dim)`` and ``(m, dim)`` samples.
    bandwidth:
        The kernel's ``h``; ``None``: the median pairwise distance of (up to 2,000) pooled samples.

    Raises
    ------
    ShapeError
        Bad sample sets (see :func:`energy_distance`).
    ConfigError
        A bandwidth that is not positive.

    Examples
    --------
    >>> import torch
    >>> from flowsim.analysis import mmd
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y = torch.randn(400, 2, generator=g), torch.randn(400, 2, generator=g)
    >>> abs(mmd(x, y)) < 0.01, mmd(x, y + 1.0) > 0.1
    (True, True)
    """
    x, y = _pair(x, y)
    if bandwidth is None:
        pooled = torch.cat([x, y])[:2000]
        bandwidth = float(torch.cdist(pooled, pooled).median().clamp_min(1e-12))
    elif not (isinstance(bandwidth, (int, float)) and bandwidth > 0 and math.isfinite(bandwidth)):
        raise ConfigError(f"bandwidth must be None or a positive number; got {bandwidth!r}")

    def k(a: Tensor, b: Tensor) -> Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth**2))

    n, m = len(x), len(y)
    kxx = (k(x, x).sum() - n) / (n * (n - 1))
    kyy = (k(y, y).sum() - m) / (m * (m - 1))
    return float(kxx + kyy - 2 * k(x, y).mean())


def sliced_wasserstein(x, y, n_projections: int = 200, seed: int = 0) -> float:
    """The sliced 2-Wasserstein distance (POT's ``ot.sliced_wasserstein_distance``): the root
    mean square over random directions of the 1-D Wasserstein distances of the projections.

    Arguments
    ---------
    x, y:
        ``(n, dim)`` and ``(m, dim)`` samples.
    n_projections:
        Random directions.
    seed:
        Seeds the directions.

    Examples
    --------
    >>> import torch
    >>> from flowsim.analysis import sliced_wasserstein
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(500, 3, generator=g)
    >>> d = sliced_wasserstein(x, x + torch.tensor([2.0, 0.0, 0.0]))  # 2 / √3 in expectation
    >>> abs(d - 2 / 3**0.5) < 0.1
    True
    """
    x, y = _pair(x, y)
    import ot

    return float(ot.sliced_wasserstein_distance(x.numpy(), y.numpy(), n_projections=n_projections,
                                                seed=seed))


def c2st(x, y, classifier: str = "mlp", seed: int = 1, n_folds: int = 5) -> float:
    """Classifier two-sample test accuracy: 0.5 when the sets cannot be told apart, 1.0 when
    they are disjoint. Uses the ``sbi`` package's ``sbi.utils.metrics.c2st`` (z-scored, k-fold
    cross-validated; ``"mlp"`` as in the SBI benchmark, or ``"rf"``); equal set sizes are best.

    Arguments
    ---------
    x, y:
        ``(n, dim)`` and ``(m, dim)`` samples.
    classifier:
        ``"mlp"`` or ``"rf"`` (random forest).
    seed:
        Seeds the classifier and the folds.
    n_folds:
        Cross-validation folds.

    Raises
    ------
    ConfigError
        ``sbi`` not installed (``pip install sbi``), or an unknown classifier.

    Examples
    --------
    >>> import torch
    >>> from flowsim.analysis import c2st
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(300, 2, generator=g)
    >>> c2st(x, x + 4.0, classifier="rf") > 0.95
    True
    """
    x, y = _pair(x, y)
    if classifier not in ("mlp", "rf"):
        raise ConfigError(f"classifier must be 'mlp' or 'rf'; got {classifier!r}")
    try:
        from sbi.utils.metrics import c2st as sbi_c2st
    except ImportError:  # pragma: no cover - sbi is an optional extra
        raise ConfigError("c2st needs the sbi package: pip install sbi") from None
    return float(sbi_c2st(x.float(), y.float(), seed=seed, n_folds=n_folds, classifier=classifier))


def mode_coverage(x, centers, radius: float) -> dict[str, float]:
    """How a sample covers the modes of a mixture: the fraction of modes with at least 1 % of
    their fair share of samples within ``radius``, the fraction of samples within ``radius`` of
    a mode (the rest are "off-mode"), and the largest deviation of a mode's share from uniform.

    Arguments
    ---------
    x:
        ``(n, dim)`` samples.
    centers:
        ``(k, dim)`` mode centres.
    radius:
        A sample belongs to its nearest mode if it is this close.

    Returns
    -------
    dict
        ``{"modes_covered", "on_mode_fraction", "max_share_error"}``.

    Examples
    --------
    >>> import torch
    >>> from flowsim.analysis import mode_coverage
    >>> c = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    >>> mode_coverage(torch.zeros(10, 2), c, 1.0)["modes_covered"]
    0.5
    """
    x, c = _pair(x, centers) if len(torch.as_tensor(centers)) >= 2 else (None, None)
    if x is None:
        raise ShapeError("centers must be (k, dim) with k >= 2 modes")
    if not (isinstance(radius, (int, float)) and radius > 0):
        raise ConfigError(f"radius must be a positive number; got {radius!r}")
    d = torch.cdist(x, c)
    dmin, which = d.min(dim=1)
    on = dmin <= radius
    k = c.shape[0]
    counts = torch.bincount(which[on], minlength=k).double()
    share = counts / len(x)
    return {"modes_covered": float((counts >= 0.01 * len(x) / k).double().mean()),
            "on_mode_fraction": float(on.double().mean()),
            "max_share_error": float((share - 1.0 / k).abs().max())}
