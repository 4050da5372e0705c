"""Checks of a measured table for :class:`~flowsim.steer.Observations`: the columns it needs,
its rows (NaN, early, unsorted or duplicated samples) and its per-subject covariates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, DataError, TimeGridError

__all__ = ["check_rows", "covariate_table", "pandas", "require_columns"]


def require_columns(frame: Any, names: Sequence[str]) -> None:
    """Refuse a table that lacks any of ``names`` (:class:`~flowsim.DataError` listing them)."""
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise DataError(f"the data lack the column(s) {missing}; the columns are {list(frame.columns)} "
                        "(name yours with columns={'subject': …, 'time': …, 'value': …})")


def check_rows(frame: Any, t0: Mapping[str, float]) -> None:
    """NaN, negative, early, unsorted or duplicated samples, as a FlowsimError naming the row."""
    for col, err in (("time", TimeGridError), ("value", DataError)):
        bad = ~np.isfinite(frame[col].to_numpy())
        if bad.any():
            i = int(np.argmax(bad))
            raise err(f"{int(bad.sum())} row(s) have a NaN or infinite {col} (first: row {i}, subject "
                      f"{frame['subject'].iloc[i]!r}); drop or fill them first")
    start = frame["subject"].map(t0).to_numpy()
    early = (frame["time"].to_numpy() < 0.0) | (frame["time"].to_numpy() < start)
    if early.any():
        i = int(np.argmax(early))
        raise TimeGridError(f"row {i} (subject {frame['subject'].iloc[i]!r}) has time {frame['time'].iloc[i]}"
                            f" before its start time {start[i]} or below 0; times are measured from "
                            "the dose (t0) and must not be negative")
    for (s, o), g in frame.groupby(["subject", "observable"], sort=False):
        d = np.diff(g["time"].to_numpy())
        if (d == 0).any():
            raise DataError(f"subject {s!r}, observable {o!r} has two samples at one time; average "
                            "replicates first")
        if (d < 0).any():
            raise TimeGridError(f"subject {s!r}, observable {o!r}: times are not increasing; sort the "
                                "rows by subject and time (frame.sort_values([...]))")


def covariate_table(frame: Any, names: Sequence[str], subjects: Sequence[str]) -> Any:
    """One row of covariates per subject (indexed by subject); refused where one varies within
    a subject."""
    pd = pandas()
    if not names:
        return pd.DataFrame(index=pd.Index(list(subjects), name="subject"))
    per = frame.groupby("subject", sort=False)[list(names)]
    counts = per.nunique(dropna=False)
    varying = [c for c in names if bool((counts[c] > 1).any())]
    if varying:
        raise DataError(f"covariates {varying} vary within a subject; a covariate is one value per subject")
    return per.first().loc[list(subjects)]


def pandas() -> Any:
    """The pandas module, or a :class:`ConfigError` saying how to install it (it is in the
    ``steer`` extra)."""
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is in the steer extra
        raise ConfigError("observations need pandas: pip install 'flowsim[steer]'") from None
    return pd
