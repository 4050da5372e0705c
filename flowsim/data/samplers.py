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
from typing import Any

import numpy as np
import torch

from .._utils import check_int
from ..errors import ConfigError
from ..systems import ODESystem
from ._stream import Batch, Block, StoreStream, StreamOptions, stream_options
from .sampling import PairOptions, PairTable, TimeGrid, draw_pairs, draw_windows

__all__ = ["PairSampler", "WindowSampler"]


class PairSampler(StoreStream):
    """Batches of jumps ``(s, t, x_s, x_t, p)`` between two stored times of one trajectory.

    Arguments
    ---------
    store:
        Path or fsspec URL of a flowsim store.
    batch_size:
        Samples per batch.
    pairs_per_trajectory:
        Pairs drawn per trajectory per epoch (default: the number of stored times).
    min_gap, max_gap:
        Limits on the jump ``|t - s|`` in time units (default: any gap between stored times).
    gaps:
        ``"uniform"``: uniform over all admissible pairs ``i < j`` of a trajectory (many small
        gaps, few large; within ``[min_gap, max_gap]`` exactly). ``"log-uniform"``: the draw of
        the in-memory :meth:`flowsim.train.TrajectoryBank.sample_pairs`
        (:func:`flowsim.data.sampling.draw_pairs`): gap sizes in time units, ``log_fraction`` of
        them spread evenly over scales and the rest uniform, each snapped up to the next stored
        time (so a gap may exceed ``max_gap`` by less than one stored step). Without ``min_gap``
        the gaps start at the smallest stored step — of the whole grid when it is shared, of the
        chunks in memory for per-trajectory grids (the in-memory bank: of all its trajectories).
    log_fraction, early_fraction:
        With ``gaps="log-uniform"``: the fraction of gaps drawn log-uniformly (the rest
        uniformly), and the fraction of starts drawn log-uniformly in the stored index — as
        many near each trajectory's initial state as over the rest — instead of uniformly, so
        that jumps from initial states (and the transients after them) are trained as often as
        the long-time behaviour; and the fraction of starts exactly at the initial state
        (``initial_fraction=…``, given as a keyword). Defaults and validation:
        :class:`~flowsim.data.PairOptions` (1.0, 0.0 and 0.0; :func:`flowsim.fit` passes its own).
    system:
        If given, refuse a store of another system.
    stream:
        The streaming options, a :class:`~flowsim.data.StreamOptions`: ``split``, ``fractions``,
        ``split_seed``, ``seed``, ``shuffle``, ``chunks_in_memory``, ``dtype`` (float32),
        ``drop_last``, ``return_index`` (add ``"trajectory"``, each sample's trajectory index),
        ``storage_options``, ``rank``, ``world_size``.
    **stream_keywords:
        The keyword form of ``stream`` (``split="all", seed=3, …``); and ``initial_fraction=…``,
        with ``gaps="log-uniform"`` the fraction of starts exactly at the initial state
        (:class:`~flowsim.data.PairOptions`, default 0.0).

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

    The pairs :func:`flowsim.fit` trains on (the draw of its in-memory bank, too):

    >>> like_fit = flowsim.data.PairSampler(path, batch_size=16, split="all", gaps="log-uniform",
    ...                                     log_fraction=0.2, early_fraction=0.25)
    >>> like_fit.options
    PairOptions(min_gap=None, max_gap=None, log_fraction=0.2, early_fraction=0.25, initial_fraction=0.0)
    """

    def __init__(
        self,
        store: str | os.PathLike,
        *,
        batch_size: int = 256,
        pairs_per_trajectory: int | None = None,
        min_gap: float | None = None,
        max_gap: float | None = None,
        gaps: str = "uniform",
        log_fraction: float = PairOptions.log_fraction,
        early_fraction: float = PairOptions.early_fraction,
        system: ODESystem | str | None = None,
        stream: StreamOptions | None = None,
        **stream_keywords: Any,
    ) -> None:
        # a keyword of the draw (PairOptions), not of the stream: the signature stays at ten names
        initial_fraction = stream_keywords.pop("initial_fraction", PairOptions.initial_fraction)
        if gaps not in ("uniform", "log-uniform"):
            raise ConfigError(f"gaps must be 'uniform' or 'log-uniform', got {gaps!r}")
        self.options = PairOptions(min_gap=min_gap, max_gap=max_gap, log_fraction=log_fraction,
                                   early_fraction=early_fraction, initial_fraction=initial_fraction)
        if gaps == "uniform" and (self.options.early_fraction > 0 or self.options.initial_fraction > 0
                                  or self.options.log_fraction != PairOptions.log_fraction):
            raise ConfigError("log_fraction, early_fraction and initial_fraction need gaps='log-uniform' "
                              "(uniform gaps draw whole pairs uniformly, start and end together)")
        self.min_gap, self.max_gap, self.gaps = self.options.min_gap, self.options.max_gap, gaps
        self.log_fraction, self.early_fraction = self.options.log_fraction, self.options.early_fraction
        super().__init__(store, batch_size=batch_size, per_trajectory=pairs_per_trajectory, system=system,
                         stream=stream_options(stream, stream_keywords))
        if self.reader.time is not None:  # shared grid: check the limits leave some pair
            self._prepare_grid(TimeGrid(self.reader.time * self.reader.direction, 1))

    def _default_per_trajectory(self) -> int:
        return max(1, self.n_times)

    def _prepare_grid(self, grid: TimeGrid) -> Any:
        """What a draw needs from ``grid``; ConfigError if no stored pair fits the gap limits."""
        if self.gaps == "uniform":
            return PairTable(grid, self.min_gap, self.max_gap)
        grid.gap_range(self.options)
        return grid

    def _prepare(self, block: Block) -> Any:
        if block.index.size == 0:
            return None
        try:
            return self._prepare_grid(block.grid())
        except ConfigError:  # per-trajectory grids: no pair fits in these chunks
            return None

    def _draw(self, block: Block, prepared: Any, m: int, rng: torch.Generator) -> Batch | None:
        if prepared is None:
            return None
        if self.gaps == "uniform":
            rows, i, j = prepared.draw(m, rng)
        else:
            rows, i, j = draw_pairs(prepared, m, rng, self.options)
        rows, i, j = rows.numpy(), i.numpy(), j.numpy()
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
    batch_size, system, stream, **stream_keywords:
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
        system: ODESystem | str | None = None,
        stream: StreamOptions | None = None,
        **stream_keywords: Any,
    ) -> None:
        self.window = check_int(window, "window", ConfigError)
        self.stride = check_int(stride, "stride", ConfigError)
        if self.window < 2:
            raise ConfigError("window must hold at least 2 states")
        super().__init__(store, batch_size=batch_size, per_trajectory=windows_per_trajectory,
                         system=system, stream=stream_options(stream, stream_keywords))
        reach = (self.window - 1) * self.stride
        if reach >= self.n_times:
            raise ConfigError(f"a window of {self.window} states with stride {self.stride} spans {reach + 1} "
                              f"stored times, but trajectories have {self.n_times}")

    def _default_per_trajectory(self) -> int:
        return max(1, self.n_times // self.window)

    def _draw(self, block: Block, prepared: Any, m: int, rng: torch.Generator) -> Batch | None:
        reach = (self.window - 1) * self.stride
        if prepared is None or not bool((prepared.n_valid > reach).any()):
            return None
        rows, starts = (a.numpy() for a in draw_windows(prepared, m, rng, self.window, self.stride))
        cols = starts[:, None] + np.arange(self.window)[None, :] * self.stride
        out = {
            "t": self._tensor(block.times(rows[:, None], cols)),
            "x": self._tensor(block.x[rows[:, None], cols]),
            "p": self._tensor(block.p[rows]),
        }
        if self.return_index:
            out["trajectory"] = torch.from_numpy(block.index[rows])
        return out
