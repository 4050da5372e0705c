"""Private helpers of :mod:`flowsim.analysis.plots`: axes, log scales, labels and styles."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ..errors import ConfigError

__all__ = ["COLORS", "LABEL", "MARKERS", "STYLE", "NotebookFigure", "axes", "band", "check_metric",
           "log_axes", "pos", "tu"]

LABEL = {"relative_error": "relative error ‖X − X_ref‖ / ‖X_ref‖",
         "normalised_error": "normalised error ‖(X − X_ref)/σ‖ / √dim"}
STYLE = {"flowmap": dict(color="C3", marker="o", lw=2.4, zorder=5)}
COLORS = ["C0", "C1", "C2", "C4", "C5", "C6", "C7", "C8", "C9"]  # C3 is the flow map's
MARKERS = ["s", "^", "v", "D", "P", "X", "<", ">", "*"]


class NotebookFigure(Figure):
    """A Figure that shows itself when it ends a Jupyter cell.

    Figures built without pyplot have no display hook unless the inline backend was switched on
    (``%matplotlib inline`` or an earlier ``import matplotlib.pyplot``); ``_repr_png_`` gives
    IPython a PNG either way. Where the inline backend is active its own formatter takes over.
    """

    def _repr_png_(self) -> bytes:
        import io

        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()


def axes(ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is None:
        fig = NotebookFigure(figsize=(6.4, 4.4), layout="constrained")
        return fig, fig.add_subplot()
    if not isinstance(ax, Axes):
        raise ConfigError(f"ax must be a matplotlib Axes; got {type(ax).__name__}")
    return ax.figure, ax  # type: ignore[return-value]


def check_metric(ds: xr.Dataset, metric: str) -> None:
    if metric not in LABEL:
        raise ConfigError(f"metric must be one of {list(LABEL)}; got {metric!r}")
    if f"median_{metric}" not in ds:
        raise ConfigError(f"ds has no variable median_{metric}; pass the Dataset the analysis returned")


def band(ax: Axes, ds: xr.Dataset, metric: str, x: Any, dim: str) -> None:
    name = f"{metric}_quantiles"
    if name in ds and ds.sizes.get("quantile", 0) >= 2:
        qv = ds[name].transpose(dim, "quantile").values
        lo, hi = ds["quantile"].values[0], ds["quantile"].values[-1]
        ax.fill_between(x, pos(qv[:, 0]), pos(qv[:, -1]), color="C0", alpha=0.2, lw=0,
                        label=f"{lo:g}–{hi:g} quantiles")


def pos(v: Any) -> np.ndarray:
    """Values for a log axis: non-positive and non-finite become NaN (gaps, not errors)."""
    a = np.asarray(v, dtype=np.float64)
    return np.where(np.isfinite(a) & (a > 0), a, np.nan)


def log_axes(ax: Axes, x: bool = True, base_x: int = 10) -> None:
    if x:
        ax.set_xscale("log", base=base_x)
        ax.xaxis.set_minor_formatter(NullFormatter())  # short ranges: no crowded minor labels
    ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)


def tu(ds: xr.Dataset) -> str:
    return str(ds.attrs.get("time_units") or "time units")
