"""The streaming machinery shared by the samplers (private): selection, shuffling, sharding, reading."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import ConfigError
from ..systems import ODESystem
from ._blocks import Batcher, Block, BlockReader
from ._io import StorePath, local_values
from .splits import check_fractions, split_mask
from .store import open_store

__all__ = ["Batch", "StoreStream", "positive_int"]

Batch = dict[str, torch.Tensor]


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int, or :class:`~flowsim.ConfigError` unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class StoreStream(IterableDataset):
    """Shared machinery: split and status selection, epoch shuffling, sharding, chunked reading."""

    def __init__(
        self,
        store: str | os.PathLike,
        *,
        batch_size: int,
        per_trajectory: int | None,
        split: str | None,
        fractions: Sequence[float],
        split_seed: int,
        seed: int,
        shuffle: bool,
        chunks_in_memory: int,
        dtype: torch.dtype,
        drop_last: bool,
        system: ODESystem | str | None,
        storage_options: Mapping[str, Any] | None,
        rank: int | None,
        world_size: int | None,
    ) -> None:
        super().__init__()
        where = StorePath(store, storage_options)
        ds = open_store(where.url, system, storage_options=storage_options)
        self.batch_size = positive_int(batch_size, "batch_size")
        self.chunks_in_memory = positive_int(chunks_in_memory, "chunks_in_memory")
        if not dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating dtype, got {dtype}")
        self.dtype, self.drop_last, self.shuffle, self.seed = dtype, bool(drop_last), bool(shuffle), int(seed)
        self.split, self.fractions = split, check_fractions(fractions)
        self.system_name = str(ds.attrs["system"])
        self.state_names = tuple(str(s) for s in np.asarray(ds["state"].values).tolist())
        self.param_names = tuple(str(s) for s in np.asarray(ds["param"].values).tolist())
        self.n_times = int(ds.sizes["time"])
        n = int(ds.sizes["trajectory"])
        time = None if "t" in ds.variables else np.asarray(ds["time"].values, dtype=np.float64)
        chunk = int(ds["x"].encoding.get("chunks", (n,))[0])
        status = local_values(ds["status"])
        self.mask = (status == 0) & split_mask(n, split, self.fractions, split_seed)
        if not self.mask.any():
            raise ConfigError(f"{where.url}: no trajectory to sample in split {split!r} ({n} trajectories, "
                              f"{int((status == 0).sum())} with status OK, fractions {self.fractions})")
        self.reader = BlockReader(where, chunk, n, time)
        self.per_trajectory = self._default_per_trajectory() if per_trajectory is None else \
            positive_int(per_trajectory, "per_trajectory")
        if world_size is None and torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
        self.rank, self.world_size = int(rank or 0), int(world_size or 1)
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"rank must be in [0, world_size); got rank={rank}, world_size={world_size}")
        self.epoch = 0

    # -- to override
    def _default_per_trajectory(self) -> int:
        raise NotImplementedError

    def _prepare(self, block: Block) -> Any:
        return None

    def _draw(self, block: Block, prepared: Any, m: int, rng: np.random.Generator) -> Batch | None:
        raise NotImplementedError

    # -- public
    @property
    def n_trajectories(self) -> int:
        """Trajectories this sampler draws from (its split, ``status == 0``)."""
        return int(self.mask.sum())

    @property
    def trajectories(self) -> np.ndarray:
        """Indices of those trajectories."""
        return np.nonzero(self.mask)[0]

    @property
    def n_samples(self) -> int:
        """Samples per epoch, over all workers and ranks."""
        return self.n_trajectories * self.per_trajectory

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch (the shuffle seed); iterating advances it by one by itself."""
        self.epoch = int(epoch)

    def loader(self, num_workers: int = 0, *, multiprocessing_context: str | None = "forkserver",
               **kwargs: Any) -> DataLoader:
        """A ``DataLoader`` over this sampler (``batch_size=None``: batches come ready-made).

        Workers start with ``forkserver`` (``spawn`` where unavailable), never ``fork``: a forked
        child inherits locks held by the parent's Dask or zarr threads and can hang. Workers
        persist across epochs so the epoch counter advances in each of them.
        """
        if num_workers > 0:
            import multiprocessing as mp

            ctx = multiprocessing_context
            if ctx == "forkserver" and "forkserver" not in mp.get_all_start_methods():
                ctx = "spawn"
            kwargs.setdefault("persistent_workers", True)
            kwargs["multiprocessing_context"] = ctx
        return DataLoader(self, batch_size=None, num_workers=num_workers, **kwargs)

    def __iter__(self) -> Iterator[Batch]:
        epoch = self.epoch
        self.epoch += 1
        info = get_worker_info()
        wid, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        shard, n_shards = self.rank * n_workers + wid, self.world_size * n_workers
        reader = self.reader
        chunks = [c for c in range(reader.n_chunks) if self.mask[slice(*reader.chunk_range(c))].any()]
        if self.shuffle:
            chunks = np.random.default_rng([self.seed, epoch]).permutation(chunks).tolist()
        mine = chunks[shard::n_shards]
        rng = np.random.default_rng([self.seed, epoch, shard, 1])
        batcher = Batcher(self.batch_size, self.drop_last)
        for g in range(0, len(mine), self.chunks_in_memory):
            block = reader.read(mine[g:g + self.chunks_in_memory], self.mask)
            prepared = self._prepare(block)
            budget = block.index.size * self.per_trajectory
            while budget > 0:
                m = min(budget, self.batch_size)
                budget -= m
                piece = self._draw(block, prepared, m, rng)
                if piece is None:
                    break
                yield from batcher.add(piece)
            del block, prepared
        yield from batcher.flush()

    def _tensor(self, a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(self.dtype)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.reader.where.url!r}, system={self.system_name!r}, "
                f"split={self.split!r}, trajectories={self.n_trajectories}, "
                f"samples/epoch={self.n_samples}, batch_size={self.batch_size})")
