"""Streaming training samples from a store into torch: :class:`PairSampler`, :class:`WindowSampler`.

Both are ``torch.utils.data.IterableDataset`` objects that yield ready-made batches (dicts of
tensors), so use them with ``DataLoader(sampler, batch_size=None)`` — or ``sampler.loader(…)``,
which also picks a safe worker start method.

How an epoch is read: the chunks holding selected trajectories (right split, ``status == 0``)
are shuffled with ``(seed, epoch)``, dealt round-robin to ``world_size × num_workers`` shards,
and each shard reads ``chunks_in_memory`` whole chunks at a time, drawing its samples at random
across all of them. Memory stays at a few chunks whatever the size of the store. Each selected
trajectory contributes ``per_trajectory`` samples per epoch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..systems import ODESystem
from ._blocks import Block
from ._draw import PairTable, draw_log_uniform, draw_uniform, draw_windows, gap_range
from ._stream import Batch, StoreStream, positive_int

__all__ = ["PairSampler", "WindowSampler"]

class PairSampler(StoreStream):
    """Batches of jumps ``(s, t, x_s, x_t, p)`` between two stored times of one trajectory.

    Arguments
    ---------
    store:
        Path or fsspec URL of a flowsim store.
    batch_size:
        Samples per batch.
    split, fractions, split_seed:
        Which trajectories: ``"train"``, ``"val"``, ``"test"`` or ``"all"``/``None``, from a
        reproducible split by trajectory index (:func:`~flowsim.data.split_of`).
    pairs_per_trajectory:
        Pairs drawn per trajectory per epoch (default: the number of stored times).
    min_gap, max_gap:
        Limits on the jump ``|t - s|`` in time units (default: any gap between stored times).
    gaps:
        ``"uniform"``: uniform over all admissible pairs ``i < j`` of a trajectory (many small
        gaps, few large); ``"log-uniform"``: gap sizes spread evenly over scales, then snapped to
        stored times (without ``min_gap``, from the smallest spacing of the grid — per block of
        chunks for per-trajectory grids).
    early_fraction:
        With ``gaps="log-uniform"``: the fraction of starts drawn log-uniformly in the stored
        index — as many near each trajectory's initial state as over the rest — instead of
        uniformly, so that jumps from initial states (and the transients after them) are
        trained as often as the long-time behaviour (see :func:`flowsim.fit`).
    seed:
        Seed of the chunk shuffle and the draws (with the epoch).
    shuffle:
        Shuffle the chunk order each epoch.
    chunks_in_memory:
        Chunks read (and mixed) at a time; memory is about this many chunks.
    dtype:
        Floating dtype of the tensors (float32 by default; stores hold float64).
    drop_last:
        Drop each shard's last, partial batch.
    return_index:
        Add ``"trajectory"``: the index of each sample's trajectory.
    system:
        If given, refuse a store of another system.
    storage_options:
        fsspec options for a remote store.
    rank, world_size:
        Shard across DDP processes (default: from ``torch.distributed`` when initialised).

    Yields
    ------
    dict
        ``"s"``, ``"t"`` ``(batch,)``; ``"x_s"``, ``"x_t"`` ``(batch, dim)``; ``"p"``
        ``(batch, n_params)``. Pairs go forward along the stored grid (``t > s``, or ``t < s`` for a
        decreasing shared grid).

    Raises
    ------
    StoreError
        The store is invalid or incomplete.
    ConfigError
        Bad options, or no pair of stored times satisfies the gap limits.

    Examples
    --------
    >>> import torch, tempfile, flowsim
    >>> path = tempfile.mkdtemp() + "/lv.zarr"
    >>> _ = flowsim.data.simulate_ensemble("lotka_volterra", 40, torch.linspace(0, 5, 11), store=path,
    ...                                    chunk_size=10, client="sync", progress=False)
    >>> sampler = flowsim.data.PairSampler(path, batch_size=16, split="all", max_gap=2.0)
    >>> batch = next(iter(sampler))
    >>> sorted(batch), batch["x_s"].shape, bool(((batch["t"] - batch["s"]) <= 2.0 + 1e-9).all())
    (['p', 's', 't', 'x_s', 'x_t'], torch.Size([16, 2]), True)
    """

    def __init__(
        self,
        store: str | os.PathLike,
        *,
        batch_size: int = 256,
        split: str | None = "train",
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        pairs_per_trajectory: int | None = None,
        min_gap: float | None = None,
        max_gap: float | None = None,
        gaps: str = "uniform",
        early_fraction: float = 0.0,
        seed: int = 0,
        shuffle: bool = True,
        chunks_in_memory: int = 2,
        dtype: torch.dtype = torch.float32,
        drop_last: bool = False,
        return_index: bool = False,
        system: ODESystem | str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        if gaps not in ("uniform", "log-uniform"):
            raise ConfigError(f"gaps must be 'uniform' or 'log-uniform', got {gaps!r}")
        for name, v in (("min_gap", min_gap), ("max_gap", max_gap)):
            if v is not None and not (np.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} must be a finite non-negative number of time units, got {v!r}")
        if min_gap is not None and max_gap is not None and min_gap > max_gap:
            raise ConfigError(f"min_gap={min_gap} exceeds max_gap={max_gap}")
        if max_gap == 0:
            raise ConfigError("max_gap must be positive (a zero jump is the identity)")
        if isinstance(early_fraction, bool) or not (isinstance(early_fraction, (int, float))
                                                    and 0 <= early_fraction <= 1):
            raise ConfigError(f"early_fraction must be a number in [0, 1], got {early_fraction!r}")
        if early_fraction > 0 and gaps != "log-uniform":
            raise ConfigError("early_fraction needs gaps='log-uniform' (uniform gaps draw whole pairs "
                              "uniformly, start and end together)")
        self.min_gap, self.max_gap, self.gaps = min_gap, max_gap, gaps
        self.early_fraction = float(early_fraction)
        self.return_index = bool(return_index)
        super().__init__(
            store, batch_size=batch_size, per_trajectory=pairs_per_trajectory, split=split,
            fractions=fractions, split_seed=split_seed, seed=seed, shuffle=shuffle,
            chunks_in_memory=chunks_in_memory, dtype=dtype, drop_last=drop_last, system=system,
            storage_options=storage_options, rank=rank, world_size=world_size,
        )
        if self.reader.time is not None:  # shared grid: check the limits leave some pair
            tau = self.reader.time * self.reader.direction
            probe = Block(np.zeros(1, np.int64), np.zeros((1, tau.size, 1)), np.zeros((1, 0)), tau,
                          np.array([tau.size]), self.reader.direction)
            if PairTable(probe, min_gap, max_gap).eligible.size == 0:
                raise ConfigError(f"no two stored times are between min_gap={min_gap} and max_gap={max_gap} "
                                  f"apart (grid from {self.reader.time[0]:g} to {self.reader.time[-1]:g} "
                                  f"with {tau.size} times)")

    def _default_per_trajectory(self) -> int:
        return max(1, self.n_times)

    def _prepare(self, block: Block) -> Any:
        if block.index.size == 0:
            return None
        if self.gaps == "uniform":
            return PairTable(block, self.min_gap, self.max_gap)
        return gap_range(block, self.min_gap, self.max_gap)

    def _draw(self, block: Block, prepared: Any, m: int, rng: np.random.Generator) -> Batch | None:
        if prepared is None:
            return None
        if self.gaps == "uniform":
            if prepared.eligible.size == 0:
                return None
            rows, i, j = draw_uniform(prepared, m, rng)
        else:
            g_lo, g_hi = prepared
            if not 0 < g_lo <= g_hi:
                return None
            rows, i, j = draw_log_uniform(block, m, rng, self.min_gap, self.max_gap, g_lo, g_hi,
                                          self.early_fraction)
        out = {
            "s": self._tensor(block.times(rows, i)),
            "t": self._tensor(block.times(rows, j)),
            "x_s": self._tensor(block.x[rows, i]),
            "x_t": self._tensor(block.x[rows, j]),
            "p": self._tensor(block.p[rows]),
        }
        if self.return_index:
            out["trajectory"] = torch.from_numpy(block.index[rows])
        return out


class WindowSampler(StoreStream):
    """Batches of windows of consecutive stored states, for rollout losses.

    Arguments
    ---------
    store:
        Path or fsspec URL of a flowsim store.
    window:
        States per window (≥ 2).
    stride:
        Take every ``stride``-th stored state.
    windows_per_trajectory:
        Windows drawn per trajectory per epoch (default: stored times // window, at least 1).
    batch_size, split, fractions, split_seed, seed, shuffle, chunks_in_memory, dtype, drop_last,
    return_index, system, storage_options, rank, world_size:
        As in :class:`PairSampler`.

    Yields
    ------
    dict
        ``"t"`` ``(batch, window)``, ``"x"`` ``(batch, window, dim)``, ``"p"`` ``(batch, n_params)``.

    Raises
    ------
    StoreError
        The store is invalid or incomplete.
    ConfigError
        Bad options, or windows longer than the stored trajectories.

    Examples
    --------
    >>> import torch, tempfile, flowsim
    >>> path = tempfile.mkdtemp() + "/lv.zarr"
    >>> _ = flowsim.data.simulate_ensemble("lotka_volterra", 20, torch.linspace(0, 5, 11), store=path,
    ...                                    chunk_size=10, client="sync", progress=False)
    >>> batch = next(iter(flowsim.data.WindowSampler(path, window=4, batch_size=8, split="all")))
    >>> batch["t"].shape, batch["x"].shape
    (torch.Size([8, 4]), torch.Size([8, 4, 2]))
    """

    def __init__(
        self,
        store: str | os.PathLike,
        window: int,
        *,
        stride: int = 1,
        windows_per_trajectory: int | None = None,
        batch_size: int = 64,
        split: str | None = "train",
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        split_seed: int = 0,
        seed: int = 0,
        shuffle: bool = True,
        chunks_in_memory: int = 2,
        dtype: torch.dtype = torch.float32,
        drop_last: bool = False,
        return_index: bool = False,
        system: ODESystem | str | None = None,
        storage_options: Mapping[str, Any] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        self.window = positive_int(window, "window")
        self.stride = positive_int(stride, "stride")
        if self.window < 2:
            raise ConfigError("window must hold at least 2 states")
        self.return_index = bool(return_index)
        super().__init__(
            store, batch_size=batch_size, per_trajectory=windows_per_trajectory, split=split,
            fractions=fractions, split_seed=split_seed, seed=seed, shuffle=shuffle,
            chunks_in_memory=chunks_in_memory, dtype=dtype, drop_last=drop_last, system=system,
            storage_options=storage_options, rank=rank, world_size=world_size,
        )
        reach = (self.window - 1) * self.stride
        if reach >= self.n_times:
            raise ConfigError(f"a window of {self.window} states with stride {self.stride} spans {reach + 1} "
                              f"stored times, but trajectories have {self.n_times}")

    def _default_per_trajectory(self) -> int:
        return max(1, self.n_times // self.window)

    def _draw(self, block: Block, prepared: Any, m: int, rng: np.random.Generator) -> Batch | None:
        drawn = draw_windows(block, m, rng, self.window, self.stride)
        if drawn is None:
            return None
        rows, starts = drawn
        cols = starts[:, None] + np.arange(self.window)[None, :] * self.stride
        out = {
            "t": self._tensor(block.times(rows[:, None], cols)),
            "x": self._tensor(block.x[rows[:, None], cols]),
            "p": self._tensor(block.p[rows]),
        }
        if self.return_index:
            out["trajectory"] = torch.from_numpy(block.index[rows])
        return out
