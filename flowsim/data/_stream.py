"""The streaming machinery shared by the samplers (private to ``flowsim.data``): selection,
shuffling, sharding, chunk-aligned reading and batch assembly.

Reads go straight to zarr (no Dask), so DataLoader workers never touch Dask's thread pools. What
is drawn from the chunks in memory is decided by :mod:`flowsim.data.sampling`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from .._utils import check_int, with_keywords
from ..errors import ConfigError
from ..systems import ODESystem
from ._integrity import read_chunked, unreadable_chunk_error
from ._io import StorePath, local_values, open_group
from .sampling import TimeGrid
from .splits import check_fractions, split_mask
from .store import open_store

__all__ = ["Batch", "Batcher", "Block", "BlockReader", "StoreStream", "StreamOptions",
           "stream_options"]

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class StreamOptions:
    """How :class:`~flowsim.data.PairSampler` and :class:`~flowsim.data.WindowSampler` stream a
    store: which trajectories, in which order, how much in memory, on which shard. Validated once.

    Arguments
    ---------
    split, fractions, split_seed:
        Which trajectories: ``"train"``, ``"val"``, ``"test"`` or ``"all"``/``None``, from a
        reproducible split by trajectory index (:func:`~flowsim.data.split_of`) with
        ``(train, val, test)`` fractions.
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
    storage_options:
        fsspec options for a remote store.
    rank, world_size:
        Shard across DDP processes (default: from ``torch.distributed`` when initialised).

    Raises
    ------
    ConfigError
        Fractions that are not three non-negative numbers summing to 1, a ``chunks_in_memory``
        that is not a positive integer, or a dtype that is not floating.

    Examples
    --------
    >>> import torch
    >>> from flowsim.data import StreamOptions
    >>> StreamOptions(split="all", dtype=torch.float64).chunks_in_memory
    2
    >>> StreamOptions(chunks_in_memory=0)
    Traceback (most recent call last):
    ...
    flowsim.errors.ConfigError: chunks_in_memory must be a positive integer; got 0
    """

    split: str | None = "train"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    split_seed: int = 0
    seed: int = 0
    shuffle: bool = True
    chunks_in_memory: int = 2
    dtype: torch.dtype = torch.float32
    drop_last: bool = False
    return_index: bool = False
    storage_options: Mapping[str, Any] | None = None
    rank: int | None = None
    world_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fractions", check_fractions(self.fractions))
        check_int(self.chunks_in_memory, "chunks_in_memory", ConfigError)
        if not isinstance(self.dtype, torch.dtype) or not self.dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating torch dtype, got {self.dtype}")


def stream_options(stream: StreamOptions | None, keywords: Mapping[str, Any]) -> StreamOptions:
    """``stream``, or :class:`StreamOptions` built from the samplers' keyword form (not both)."""
    return with_keywords(StreamOptions, stream, keywords, what="sampler", error=ConfigError,
                         exclusive=True)


class StoreStream(IterableDataset):
    """Shared machinery: split and status selection, epoch shuffling, sharding, chunked reading."""

    def __init__(
        self,
        store: str | os.PathLike,
        *,
        batch_size: int,
        per_trajectory: int | None,
        system: ODESystem | str | None,
        stream: StreamOptions,
    ) -> None:
        super().__init__()
        self.stream = stream
        split, split_seed, storage_options = stream.split, stream.split_seed, stream.storage_options
        rank, world_size = stream.rank, stream.world_size
        where = StorePath(store, storage_options)
        ds = open_store(where.url, system, storage_options=storage_options)
        self.batch_size = check_int(batch_size, "batch_size", ConfigError)
        self.chunks_in_memory = stream.chunks_in_memory
        self.dtype, self.drop_last, self.shuffle = stream.dtype, bool(stream.drop_last), bool(stream.shuffle)
        self.seed, self.return_index = int(stream.seed), bool(stream.return_index)
        self.split, self.fractions = split, stream.fractions
        self.system_name = str(ds.attrs["system"])
        self.state_names = tuple(str(s) for s in np.asarray(ds["state"].values).tolist())
        self.param_names = tuple(str(s) for s in np.asarray(ds["param"].values).tolist())
        self.n_times = int(ds.sizes["time"])
        n = int(ds.sizes["trajectory"])
        time = None if "t" in ds.variables else np.asarray(ds["time"].values, dtype=np.float64)
        chunk = int(ds["x"].encoding.get("chunks", (n,))[0])
        try:
            status = local_values(ds["status"])
        except Exception as err:  # noqa: BLE001 - a corrupted chunk
            raise unreadable_chunk_error(where, ["status"], err) from err
        self.mask = (status == 0) & split_mask(n, split, self.fractions, split_seed)
        if not self.mask.any():
            raise ConfigError(f"{where.url}: no trajectory to sample in split {split!r} ({n} trajectories, "
                              f"{int((status == 0).sum())} with status OK, fractions {self.fractions})")
        self.reader = BlockReader(where, chunk, n, time)
        self.per_trajectory = self._default_per_trajectory() if per_trajectory is None else \
            check_int(per_trajectory, "per_trajectory", ConfigError)
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
        return None if block.index.size == 0 else block.grid()

    def _draw(self, block: Block, prepared: Any, m: int, rng: torch.Generator) -> Batch | None:
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
            from .cluster import unguarded_script, warn_unguarded

            if unguarded_script():  # workers would run the unguarded script again: stay in-process
                warn_unguarded("PairSampler.loader(num_workers>0)", "loading in this process")
                num_workers = 0
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
        seed = np.random.SeedSequence([self.seed, epoch, shard, 1]).generate_state(1, np.uint64)[0]
        rng = torch.Generator().manual_seed(int(seed))
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

    def grid(self) -> TimeGrid:
        """The block's (increasing) stored times as a :class:`~flowsim.data.sampling.TimeGrid`."""
        return TimeGrid(torch.from_numpy(self.tau), self.index.size, torch.from_numpy(self.n_valid))

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
            xs.append(read_chunked(self.where, g["x"], a, b)[keep])
            ps.append(read_chunked(self.where, g["params"], a, b)[keep])
            if self.time is None:
                ts.append(read_chunked(self.where, g["t"], a, b)[keep])
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
