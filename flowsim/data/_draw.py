"""Drawing time pairs and windows from an in-memory :class:`Block` (private, vectorised)."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from ._blocks import Block

__all__ = ["PairTable", "draw_log_uniform", "draw_uniform", "draw_windows", "gap_range"]


def _ss(sorted_rows: np.ndarray, values: np.ndarray, right: bool) -> np.ndarray:
    """Row-wise searchsorted: ``sorted_rows`` ``(R, T)``, ``values`` ``(R, K)``."""
    out = torch.searchsorted(torch.from_numpy(np.ascontiguousarray(sorted_rows)),
                             torch.from_numpy(np.ascontiguousarray(values)), right=right)
    return out.numpy()


class PairTable:
    """For each row and start index ``i``: the first admissible end ``lo`` and the count of ends."""

    def __init__(self, block: Block, min_gap: float | None, max_gap: float | None) -> None:
        tau = block.tau[None, :] if block.shared else block.tau
        n_valid = block.n_valid[:1] if block.shared else block.n_valid
        n_t = tau.shape[1]
        ar = np.arange(n_t)[None, :]
        lo = np.broadcast_to(ar + 1, tau.shape)
        if min_gap is not None:
            lo = np.maximum(lo, _ss(tau, tau + min_gap, right=False))
        hi = np.broadcast_to(n_valid[:, None] - 1, tau.shape)
        if max_gap is not None:
            hi = np.minimum(hi, _ss(tau, tau + max_gap, right=True) - 1)
        cnt = np.clip(hi - lo + 1, 0, None)
        cnt[ar >= n_valid[:, None]] = 0
        self.lo, self.cnt = lo, cnt
        self.cum = np.cumsum(cnt, axis=1)
        self.total = self.cum[:, -1]
        self.shared = block.shared
        n_rows = block.index.size
        self.eligible = np.arange(n_rows) if self.shared else np.nonzero(self.total > 0)[0]
        if self.shared and self.total[0] == 0:
            self.eligible = self.eligible[:0]


def draw_uniform(table: PairTable, m: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """``m`` pairs ``(row, i, j)``: a uniform eligible row, then a uniform admissible pair in it."""
    rows = table.eligible[rng.integers(0, table.eligible.size, m)]
    rr = np.zeros_like(rows) if table.shared else rows
    k = np.floor(rng.random(m) * table.total[rr]).astype(np.int64)
    if table.shared:
        i = np.searchsorted(table.cum[0], k, side="right")
    else:
        i = _ss(table.cum[rr], k[:, None], right=True)[:, 0]
    j = table.lo[rr, i] + (k - (table.cum[rr, i] - table.cnt[rr, i]))
    return rows, i, j


def gap_range(block: Block, min_gap: float | None, max_gap: float | None) -> tuple[float, float]:
    """Range of the log-uniform gap: the data's smallest spacing / largest span, within the limits."""
    tau = block.tau[None, :] if block.shared else block.tau
    with np.errstate(invalid="ignore"):
        d = np.diff(tau, axis=1)
    d = d[np.isfinite(d) & (d > 0)]
    last = tau[np.arange(tau.shape[0]), (block.n_valid[:1] if block.shared else block.n_valid) - 1]
    span = float(np.max(last - tau[:, 0])) if tau.size else 0.0
    lo = max(float(d.min()) if d.size else 0.0, min_gap or 0.0)
    hi = min(span, max_gap if max_gap is not None else np.inf)
    return lo, hi


def _starts(count: np.ndarray, rng: np.random.Generator, early_fraction: float) -> np.ndarray:
    """Start indices below ``count``: uniform, or for ``early_fraction`` of them log-uniform in the
    index (as many near the first stored time as over the rest), as ``TrajectoryBank`` draws."""
    k = count.size
    i = np.floor(rng.random(k) * count).astype(np.int64)
    if early_fraction > 0:
        early = np.floor(np.exp(rng.random(k) * np.log(count + 1.0))).astype(np.int64) - 1
        pick = rng.random(k) < early_fraction
        i = np.where(pick, np.clip(early, 0, np.maximum(count - 1, 0)), i)
    return i


def draw_log_uniform(block: Block, m: int, rng: np.random.Generator, min_gap: float | None,
                     max_gap: float | None, g_lo: float, g_hi: float,
                     early_fraction: float = 0.0) -> tuple[np.ndarray, ...]:
    """``m`` pairs whose gap is log-uniform in ``[g_lo, g_hi]``, snapped to the nearest stored time;
    ``early_fraction`` of the starts log-uniform in the stored index, the rest uniform."""
    n_rows = block.index.size
    if block.shared:
        first = np.full(n_rows, block.tau[0])
        last = block.tau[block.n_valid - 1]
    else:
        first = block.tau[:, 0]
        last = block.tau[np.arange(n_rows), block.n_valid - 1]
    span = last - first
    ok_rows = np.nonzero(span >= g_lo)[0]
    lo_lim = (min_gap or 0.0) - 1e-12
    hi_lim = np.inf if max_gap is None else max_gap + 1e-12
    out: list[tuple[np.ndarray, ...]] = []
    need = m
    for _ in range(100):
        if need <= 0 or ok_rows.size == 0:
            break
        k = max(need, 16)
        rows = ok_rows[rng.integers(0, ok_rows.size, k)]
        g = np.exp(rng.uniform(np.log(g_lo), np.log(g_hi), k)) if g_hi > g_lo else np.full(k, g_lo)
        g = np.minimum(g, span[rows])
        top = block.n_valid[rows] - 1
        if block.shared:
            tau = block.tau
            count = np.searchsorted(tau, last[rows] - g, side="right")
            i = _starts(count, rng, early_fraction)
            target = tau[i] + g
            j0 = np.minimum(np.searchsorted(tau, target, side="left"), top)
            below, above = tau[np.maximum(j0 - 1, 0)], tau[j0]
        else:
            tau = block.tau[rows]
            ar = np.arange(k)
            count = _ss(tau, (last[rows] - g)[:, None], right=True)[:, 0]
            i = _starts(count, rng, early_fraction)
            target = tau[ar, i] + g
            j0 = np.minimum(_ss(tau, target[:, None], right=False)[:, 0], top)
            below, above = tau[ar, np.maximum(j0 - 1, 0)], tau[ar, j0]
        j = np.where(target - below <= above - target, j0 - 1, j0)
        j = np.minimum(np.maximum(j, i + 1), top)
        gap = (block.tau[j] - block.tau[i]) if block.shared else (tau[ar, j] - tau[ar, i])
        good = np.nonzero((j > i) & (gap >= lo_lim) & (gap <= hi_lim))[0][:need]
        out.append((rows[good], i[good], j[good]))
        need -= good.size
    if need > 0:
        raise ConfigError("could not draw pairs with gaps inside [min_gap, max_gap] from this store's time "
                          "grid; widen the gap limits")
    return tuple(np.concatenate(parts) for parts in zip(*out))


def draw_windows(block: Block, m: int, rng: np.random.Generator, window: int,
                 stride: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``m`` windows ``(row, start)`` of ``window`` states ``stride`` apart; None if no row is long enough."""
    reach = (window - 1) * stride
    ok_rows = np.nonzero(block.n_valid > reach)[0]
    if ok_rows.size == 0:
        return None
    rows = ok_rows[rng.integers(0, ok_rows.size, m)]
    starts = np.floor(rng.random(m) * (block.n_valid[rows] - reach)).astype(np.int64)
    return rows, starts
