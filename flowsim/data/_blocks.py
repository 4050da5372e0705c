"""Chunk-aligned reading of a store for the samplers, and batch assembly (private).

Reads go straight to zarr (no Dask), so DataLoader workers never touch Dask's thread pools.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._io import StorePath, open_group

__all__ = ["Block", "BlockReader", "Batcher"]


@dataclass
class Block:
    """Selected trajectories of a few chunks, in memory.

    ``tau`` is time times ``direction`` (so it increases along each row; padding is +inf),
    ``n_valid`` the number of finite times per row.
    """

    index: np.ndarray  # (R,) global trajectory indices
    x: np.ndarray  # (R, T, dim)
    p: np.ndarray  # (R, P)
    tau: np.ndarray  # (T,) shared or (R, T)
    n_valid: np.ndarray  # (R,)
    direction: float

    @property
    def shared(self) -> bool:
        return self.tau.ndim == 1

    def times(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Real times ``t`` at ``(rows, cols)``."""
        tau = self.tau[cols] if self.shared else self.tau[rows, cols]
        return tau * self.direction


class BlockReader:
    """Reads chunk-aligned blocks of trajectories; picklable (opens zarr lazily per process)."""

    def __init__(self, where: StorePath, chunk_size: int, n: int, time: np.ndarray | None) -> None:
        self.where = where
        self.chunk_size = int(chunk_size)
        self.n = int(n)
        self.time = time
        self.direction = -1.0 if (time is not None and time.size > 1 and time[-1] < time[0]) else 1.0
        self._group: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_group"] = None
        return state

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk_size)

    def chunk_range(self, c: int) -> tuple[int, int]:
        return c * self.chunk_size, min((c + 1) * self.chunk_size, self.n)

    def _arrays(self) -> dict[str, Any]:
        if self._group is None:
            g = open_group(self.where, mode="r")
            names = ("x", "params") + (("t",) if self.time is None else ())
            self._group = {k: g[k] for k in names}
        return self._group

    def read(self, chunks: list[int], mask: np.ndarray) -> Block:
        """Read whole chunks, keep the trajectories selected by ``mask`` (global, ``(n,)``)."""
        g = self._arrays()
        xs, ps, ts, idx = [], [], [], []
        for c in chunks:
            a, b = self.chunk_range(c)
            keep = np.nonzero(mask[a:b])[0]
            if keep.size == 0:
                continue
            xs.append(g["x"][a:b][keep])
            ps.append(g["params"][a:b][keep])
            if self.time is None:
                ts.append(g["t"][a:b][keep])
            idx.append(keep + a)
        if not idx:
            empty = np.zeros((0, 0))
            return Block(np.zeros(0, np.int64), empty, empty, empty, np.zeros(0, np.int64), 1.0)
        x = np.concatenate(xs)
        p = np.concatenate(ps)
        if self.time is None:
            t = np.concatenate(ts)
            n_valid = np.isfinite(t).sum(axis=1)
            tau = np.where(np.isfinite(t), t, np.inf)
        else:
            tau = self.time * self.direction
            n_valid = np.full(x.shape[0], tau.size, dtype=np.int64)
        return Block(np.concatenate(idx), x, p, tau, n_valid, self.direction)


class Batcher:
    """Collects sample pieces (dicts of tensors) and emits batches of exactly ``batch_size``."""

    def __init__(self, batch_size: int, drop_last: bool) -> None:
        self.batch_size = int(batch_size)
        self.drop_last = drop_last
        self._parts: list[dict[str, torch.Tensor]] = []
        self._count = 0

    def add(self, piece: dict[str, torch.Tensor]) -> Iterator[dict[str, torch.Tensor]]:
        """Add a piece; yield every full batch now available."""
        n = next(iter(piece.values())).shape[0]
        if n == 0:
            return
        self._parts.append(piece)
        self._count += n
        while self._count >= self.batch_size:
            yield self._take(self.batch_size)

    def flush(self) -> Iterator[dict[str, torch.Tensor]]:
        """Yield the last, partial batch (unless ``drop_last``)."""
        if self._count and not self.drop_last:
            yield self._take(self._count)
        self._parts, self._count = [], 0

    def _take(self, k: int) -> dict[str, torch.Tensor]:
        keys = list(self._parts[0])
        joined = {key: torch.cat([p[key] for p in self._parts]) for key in keys}
        out = {key: v[:k] for key, v in joined.items()}
        rest = {key: v[k:] for key, v in joined.items()}
        self._count -= k
        self._parts = [rest] if self._count else []
        return out
