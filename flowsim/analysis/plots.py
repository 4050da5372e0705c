"""Figures for the analysis Datasets: log axes, labelled units, no display needed.

Every ``plot_…`` function takes the Dataset its analysis returned and an optional
matplotlib ``Axes``; it returns the :class:`~matplotlib.figure.Figure`. Without ``ax`` a new
figure is built with the object-oriented API (never ``pyplot``), so nothing is shown, no
global state leaks, and it works headless (``MPLBACKEND=Agg``) and inline in notebooks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .._utils import atomic_path
from ..errors import ConfigError
from ._plot_utils import (
    COLORS,
    LABEL,
    MARKERS,
    STYLE,
    NotebookFigure,
    axes,
    band,
    check_metric,
    log_axes,
    pos,
    tu,
)


def save_figure(fig: Figure, path: str | os.PathLike, *, dpi: int = 150) -> Path:
    """Write ``fig`` as a PNG to ``path`` (atomically: a crash leaves no half-written file).

    Arguments
    ---------
    fig:
        A matplotlib Figure (e.g. returned by a ``plot_…`` function).
    path:
        Target file; parent folders are created. The format is PNG whatever the suffix.
    dpi:
        Resolution.

    Returns
    -------
    Path
        The written path.

    Raises
    ------
    ConfigError
        ``fig`` is not a matplotlib Figure.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> import tempfile, os
    >>> fig = Figure(); _ = fig.add_subplot().plot([1, 2])
    >>> p = save_figure(fig, os.path.join(tempfile.mkdtemp(), "a.png"))
    >>> p.stat().st_size > 0
    True
    """
    if not isinstance(fig, Figure):
        raise ConfigError(f"fig must be a matplotlib Figure; got {type(fig).__name__}")
    target = Path(path)
    with atomic_path(target, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return target


def plot_error_vs_jump(ds: xr.Dataset, ax: Axes | None = None, *, metric: str = "relative_error") -> Figure:
    """Median error (line) and outer quantiles (band) against jump size, log-log.

    Arguments
    ---------
    ds:
        The Dataset :func:`error_vs_jump` returned.
    ax:
        Axes to draw on (default: a new Figure).
    metric:
        ``"relative_error"`` or ``"normalised_error"`` (the axis label says which).

    Returns
    -------
    Figure
        The figure drawn on (``ax.figure`` when ``ax`` is given); save it with :func:`save_figure`.

    Raises
    ------
    ConfigError
        Unknown metric, or ``ds`` lacks its variable; ``ax`` is not an Axes.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"median_relative_error": ("jump", [1e-3, 1e-2])}, coords={"jump": [0.1, 1.0]})
    >>> plot_error_vs_jump(ds).get_size_inches().tolist()
    [6.4, 4.4]
    """
    fig, ax = axes(ax)
    check_metric(ds, metric)
    x = ds["jump"].values
    band(ax, ds, metric, x, "jump")
    ax.plot(x, pos(ds[f"median_{metric}"].values), "o-", color="C0", lw=2, label="median")
    mj = ds.attrs.get("flowmap_max_jump")
    if mj:
        ax.axvline(float(mj), color="0.5", ls=":", lw=1.2, label="max_jump (trained range)")
    log_axes(ax)
    ax.set_xlabel(f"jump size Δ = t − s [{tu(ds)}]")
    ax.set_ylabel(LABEL[metric])
    ax.set_title(f"{ds.attrs.get('system', '')}: single-jump error vs jump size")
    ax.legend(frameon=False)
    return fig


def plot_error_vs_steps(ds: xr.Dataset, ax: Axes | None = None, *, metric: str = "relative_error") -> Figure:
    """Error at the horizon against the number of composed jumps N, log-log.

    Arguments
    ---------
    ds:
        The Dataset :func:`error_vs_steps` returned.
    ax:
        Axes to draw on (default: a new Figure).
    metric:
        ``"relative_error"`` or ``"normalised_error"`` (the axis label says which).

    Returns
    -------
    Figure
        The figure drawn on (``ax.figure`` when ``ax`` is given); save it with :func:`save_figure`.

    Raises
    ------
    ConfigError
        Unknown metric, or ``ds`` lacks its variable; ``ax`` is not an Axes.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"median_relative_error": ("n_steps", [1e-2, 1e-3])}, coords={"n_steps": [1, 2]})
    >>> plot_error_vs_steps(ds).get_size_inches().tolist()
    [6.4, 4.4]
    """
    fig, ax = axes(ax)
    check_metric(ds, metric)
    x = ds["n_steps"].values
    band(ax, ds, metric, x, "n_steps")
    ax.plot(x, pos(ds[f"median_{metric}"].values), "o-", color="C0", lw=2, label="median")
    log_axes(ax, base_x=2)
    h = ds.attrs.get("horizon")
    ax.set_xlabel("number of composed jumps N" + (f"  (horizon {float(h):.3g} {tu(ds)})" if h else ""))
    ax.set_ylabel(LABEL[metric])
    ax.set_title(f"{ds.attrs.get('system', '')}: error vs number of jumps")
    ax.legend(frameon=False)
    return fig


def plot_valid_prediction_time(ds: xr.Dataset, ax: Axes | None = None) -> Figure:
    """Normalised error of the rollout against lead time in Lyapunov times, with the
    threshold and the median valid prediction time.

    Arguments
    ---------
    ds:
        The Dataset :func:`valid_prediction_time` returned.
    ax:
        Axes to draw on (default: a new Figure).

    Returns
    -------
    Figure
        The figure drawn on (``ax.figure`` when ``ax`` is given); save it with :func:`save_figure`.

    Raises
    ------
    ConfigError
        ``ax`` is not an Axes.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"median_normalised_error": ("lead_time", [1e-6, 1e-3, 0.5]),
    ...                  "valid_prediction_time_lyapunov": ("trajectory", [1.5])},
    ...                 coords={"lead_time": [0.0, 1.0, 2.0]},
    ...                 attrs={"lyapunov_exponent": 1.0, "threshold": 0.4})
    >>> plot_valid_prediction_time(ds).get_size_inches().tolist()
    [6.4, 4.4]
    """
    fig, ax = axes(ax)
    lam = float(ds.attrs.get("lyapunov_exponent", 1.0))
    x = ds["lead_time"].values * lam
    if "normalised_error_quantiles" in ds:
        qv = ds["normalised_error_quantiles"].values
        ax.fill_between(x, pos(qv[:, 0]), pos(qv[:, -1]), color="C0", alpha=0.2, lw=0,
                        label="quantile band")
    ax.plot(x, pos(ds["median_normalised_error"].values), "-", color="C0", lw=2, label="median")
    thr = ds.attrs.get("threshold")
    if thr:
        ax.axhline(float(thr), color="C3", ls="--", lw=1.2, label=f"threshold {float(thr):g}")
    vpt = float(np.median(ds["valid_prediction_time_lyapunov"].values))
    ax.axvline(vpt, color="0.3", ls=":", lw=1.2, label=f"median VPT {vpt:.2f} Lyapunov times")
    log_axes(ax, x=False)
    ax.set_xlabel("lead time [Lyapunov times]")
    ax.set_ylabel(LABEL["normalised_error"])
    ax.set_title(f"{ds.attrs.get('system', '')}: valid prediction time")
    ax.legend(frameon=False)
    return fig


def plot_invariant_drift(ds: xr.Dataset, ax: Axes | None = None) -> Figure:
    """Final relative drift of each invariant against jump size (log-log); without ``ax``, a
    second panel shows the drift against the number of jumps taken, one line per N.

    Arguments
    ---------
    ds:
        The Dataset :func:`invariant_drift` returned.
    ax:
        Axes to draw on (default: a new Figure).

    Returns
    -------
    Figure
        The figure drawn on (``ax.figure`` when ``ax`` is given); save it with :func:`save_figure`.

    Raises
    ------
    ConfigError
        ``ax`` is not an Axes.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"final_relative_drift": (("invariant", "n_steps"), [[1e-3, 1e-4]]),
    ...                  "relative_drift": (("invariant", "n_steps", "step"), [[[0, 1e-3, 1e-3],
    ...                                                                       [0, 5e-5, 1e-4]]])},
    ...                 coords={"invariant": ["energy"], "n_steps": [1, 2], "jump": ("n_steps", [2.0, 1.0]),
    ...                         "step": [0, 1, 2]})
    >>> len(plot_invariant_drift(ds).axes)
    2
    """
    if ax is None:
        fig = NotebookFigure(figsize=(11, 4.2), layout="constrained")
        ax, ax2 = fig.subplots(1, 2)
    else:
        fig, ax = axes(ax)
        ax2 = None
    for i, name in enumerate(ds["invariant"].values.tolist()):
        ax.plot(ds["jump"].values, pos(ds["final_relative_drift"].values[i]), "o-", lw=2, label=str(name))
    log_axes(ax)
    ax.set_xlabel(f"jump size horizon / N [{tu(ds)}]")
    ax.set_ylabel("relative drift |I(X) − I(x₀)| / |I(x₀)|")
    ax.set_title(f"{ds.attrs.get('system', '')}: invariant drift at the horizon")
    ax.legend(frameon=False)
    if ax2 is not None:
        steps = ds["step"].values
        for c, n in enumerate(ds["n_steps"].values.tolist()):
            y = ds["relative_drift"].values[0, c]
            ax2.plot(steps[1:], pos(y[1:]), ".-", label=f"N = {n}")
        log_axes(ax2)
        ax2.set_xlabel("jumps taken k")
        ax2.set_ylabel(f"relative drift of {ds['invariant'].values[0]}")
        ax2.set_title("drift accumulation along the rollout")
        ax2.legend(frameon=False, fontsize="small")
    return fig


def plot_indicator_quality(ds: xr.Dataset, ax: Axes | None = None) -> Figure:
    """Consistency indicator against the true error, one colour per jump size, log-log.

    Arguments
    ---------
    ds:
        The Dataset :func:`indicator_quality` returned.
    ax:
        Axes to draw on (default: a new Figure).

    Returns
    -------
    Figure
        The figure drawn on (``ax.figure`` when ``ax`` is given); save it with :func:`save_figure`.

    Raises
    ------
    ConfigError
        ``ax`` is not an Axes.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"indicator": ("sample", [1e-4, 1e-3]), "error": ("sample", [2e-4, 3e-3]),
    ...                  "jump": ("sample", [0.1, 1.0]), "spearman": ((), 1.0)})
    >>> plot_indicator_quality(ds).get_size_inches().tolist()
    [6.4, 4.4]
    """
    fig, ax = axes(ax)
    sc = ax.scatter(pos(ds["error"].values), pos(ds["indicator"].values), c=np.log10(ds["jump"].values),
                    s=12, alpha=0.7, cmap="viridis")
    fig.colorbar(sc, ax=ax, label=f"log₁₀ jump size [{tu(ds)}]")
    log_axes(ax)
    metric = ds["error"].attrs.get("metric", ds.attrs.get("metric", "relative_error"))
    ax.set_xlabel(f"true {LABEL.get(metric, metric)}")
    ax.set_ylabel("indicator: one jump vs two half jumps")
    ax.set_title(f"{ds.attrs.get('system', '')}: Spearman ρ = {float(ds['spearman']):.2f}")
    return fig


def plot_work_precision(
    ds: xr.Dataset, ax: Axes | None = None, *, metric: str = "relative_error", x: str = "wall_time"
) -> Figure:
    """Median error against wall time (or NFE), log-log, one line per method.

    Arguments
    ---------
    ds:
        The Dataset :func:`work_precision` returned.
    ax:
        Axes to draw on (default: a new Figure).
    metric:
        ``"relative_error"`` or ``"normalised_error"`` (the axis label says which).
    x:
        ``"wall_time"`` (seconds for the whole batch) or ``"nfe"`` (evaluations per trajectory).

    Returns
    -------
    Figure
        The figure drawn on (``ax.figure`` when ``ax`` is given); save it with :func:`save_figure`.

    Raises
    ------
    ConfigError
        Unknown metric or ``x``, or ``ds`` lacks a variable; ``ax`` is not an Axes.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"wall_time": ("setting", [0.01, 0.1, 1.0]), "nfe": ("setting", [1, 50, 500]),
    ...                  "median_relative_error": ("setting", [1e-3, 1e-3, 1e-6])},
    ...                 coords={"method": ("setting", ["flowmap", "dopri5", "dopri5"])})
    >>> plot_work_precision(ds).get_size_inches().tolist()
    [6.4, 4.4]
    """
    if x not in ("wall_time", "nfe"):
        raise ConfigError(f"x must be 'wall_time' or 'nfe'; got {x!r}")
    fig, ax = axes(ax)
    check_metric(ds, metric)
    methods = ds["method"].values.astype(str)
    order = ["flowmap"] + sorted(set(methods.tolist()) - {"flowmap"})
    for k, m in enumerate(o for o in order if o in methods):
        sel = methods == m
        xs, ys = ds[x].values[sel], ds[f"median_{metric}"].values[sel]
        idx = np.argsort(xs)
        default = dict(color=COLORS[k % len(COLORS)], marker=MARKERS[k % len(MARKERS)], lw=1.5)
        style = STYLE.get(m, default)
        label = "flow map (N jumps)" if m == "flowmap" else m
        ax.plot(xs[idx], pos(ys[idx]), ls="-", ms=5, label=label, **style)
    log_axes(ax)
    n = ds.attrs.get("n_states")
    if x == "wall_time":
        ax.set_xlabel("wall time [s]" + (f" for {n} states" if n else ""))
    else:
        ax.set_xlabel("evaluations per trajectory (NFE)")
    ax.set_ylabel("median " + LABEL[metric])
    h = ds.attrs.get("horizon")
    span = f", horizon {float(h):.3g} {tu(ds)}" if h else ""
    ax.set_title(f"{ds.attrs.get('system', '')}: work-precision{span}")
    ax.legend(frameon=False, fontsize="small")
    return fig
