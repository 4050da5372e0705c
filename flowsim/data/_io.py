"""Low-level zarr v3 I/O shared by the store writers and readers (private).

Decisions applied everywhere in :mod:`flowsim.data`:

* **zarr format 3** only.
* **Consolidated metadata: written, not trusted.** Stores are written with consolidated metadata,
  so a plain ``xarray.open_zarr(path)`` (which tries consolidated metadata first) opens a flowsim
  store quickly and without the "failed to open with consolidated metadata" warning. zarr warns
  that consolidated metadata is not yet part of the v3 specification; that one warning is
  silenced around our own writes. Chunk writes never change metadata, so the consolidated copy
  stays valid while an ensemble fills in. flowsim itself reads with ``consolidated=False``:
  each array's own ``zarr.json`` is the truth, so a deleted variable or an edited attribute is
  seen (a consolidated copy would hide it and serve fill values for a deleted array).
* **Compressors**: Blosc/zstd with byte shuffle (fast to read back, which is what training does).
* **Paths**: local paths or fsspec URLs (``s3://…``, ``gs://…``, ``file://…``).
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from ..errors import StoreError

__all__ = [
    "CONSOLIDATED",
    "StorePath",
    "default_compressors",
    "local_compute",
    "local_values",
    "open_group",
    "open_xarray",
    "quiet_zarr",
    "read_flags",
    "refuse_non_store",
    "write_template",
]

#: flowsim writes consolidated metadata (for other readers) but reads per-array metadata.
CONSOLIDATED = True


def default_compressors() -> list[Any]:
    """The compressor chain used for ``x`` and other large variables."""
    return [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")]


@contextmanager
def quiet_zarr() -> Iterator[None]:
    """Silence zarr's notice that consolidated metadata is not yet in the v3 specification, and
    its notice about the writer's lock file (``.flowsim-writer.lock``) in the store."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        warnings.filterwarnings("ignore", message=r"Object at \.flowsim-writer\.lock is not recognized")
        yield


class StorePath:
    """A store location: a local directory or an fsspec URL, with its storage options.

    Picklable, so it travels to Dask workers.
    """

    def __init__(self, path: str | os.PathLike, storage_options: Mapping[str, Any] | None = None) -> None:
        if isinstance(path, StorePath):
            storage_options = storage_options or path.storage_options
            path = path.url
        if not isinstance(path, (str, os.PathLike)):
            raise StoreError(f"a store path must be a string or path, got {type(path).__name__}")
        text = os.fspath(path)
        if text.startswith("file://"):
            text = text[len("file://"):]
        self.is_local = "://" not in text
        self.url = str(Path(text).expanduser().absolute()) if self.is_local else text.rstrip("/")
        self.storage_options = dict(storage_options or {})
        if self.is_local and self.storage_options:
            raise StoreError("storage_options only apply to fsspec URLs, not to local paths")

    def __repr__(self) -> str:
        return f"StorePath({self.url!r})"

    def __str__(self) -> str:
        return self.url

    @property
    def zarr_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for zarr / xarray to reach this store."""
        return {"storage_options": self.storage_options} if self.storage_options else {}

    def _fs(self) -> tuple[Any, str]:
        import fsspec

        return fsspec.core.url_to_fs(self.url, **self.storage_options)

    def exists(self) -> bool:
        """Whether anything exists at this location."""
        if self.is_local:
            return os.path.lexists(self.url)
        fs, p = self._fs()
        return bool(fs.exists(p))

    def remove(self) -> None:
        """Delete the store (recursively); nothing if absent."""
        if self.is_local:
            if os.path.isdir(self.url) and not os.path.islink(self.url):
                shutil.rmtree(self.url)
            elif os.path.lexists(self.url):
                os.remove(self.url)
            return
        fs, p = self._fs()
        if fs.exists(p):
            fs.rm(p, recursive=True)

    def sibling_temp(self) -> StorePath:
        """A fresh hidden name next to this store, for atomic creation."""
        tag = uuid.uuid4().hex[:12]
        if self.is_local:
            head, name = os.path.split(self.url)
            return StorePath(os.path.join(head, f".{name}.tmp-{tag}"))
        head, _, name = self.url.rpartition("/")
        return StorePath(f"{head}/.{name}.tmp-{tag}", self.storage_options)

    def rename_to(self, target: StorePath) -> None:
        """Move this store onto ``target`` (which must not exist)."""
        if self.is_local:
            os.makedirs(os.path.dirname(target.url), exist_ok=True)
            try:
                os.rename(self.url, target.url)
            except OSError as err:
                raise StoreError(
                    f"could not move the new store into place at {target.url}: {err}; "
                    "is another process writing the same store?"
                ) from err
            return
        fs, src = self._fs()
        _, dst = target._fs()
        if fs.exists(dst):
            raise StoreError(f"{target.url} appeared while the store was being created")
        fs.mv(src, dst, recursive=True)

    def size_on_disk(self) -> int:
        """Total bytes of all files in the store."""
        if self.is_local:
            total = 0
            for root, _, files in os.walk(self.url):
                for f in files:
                    try:
                        total += os.path.getsize(os.path.join(root, f))
                    except OSError:  # removed meanwhile
                        pass
            return total
        fs, p = self._fs()
        return int(fs.du(p, total=True))


@contextmanager
def local_compute() -> Iterator[None]:
    """Compute Dask-backed reads in this process's threads.

    Once a ``distributed.Client`` exists it becomes Dask's default scheduler; small metadata reads
    (status, flags) must not travel to its workers, which may not even see the store
    (``memory://``, a path local to this machine).
    """
    with dask.config.set(scheduler="threads"):
        yield


def local_values(array: xr.DataArray) -> np.ndarray:
    """``array.values``, computed in this process (see :func:`local_compute`)."""
    with local_compute():
        return np.asarray(array.values)


def write_template(ds: xr.Dataset, where: StorePath, encoding: Mapping[str, Any]) -> None:
    """Write a dataset's metadata and in-memory variables; Dask-backed variables stay unwritten.

    Dask-backed (lazy) data variables get their zarr arrays with fill values only; their chunks
    are filled later by region writes.
    """
    with quiet_zarr():
        ds.to_zarr(
            where.url,
            mode="w-",
            compute=False,
            consolidated=CONSOLIDATED,
            zarr_format=3,
            encoding=dict(encoding),
            **where.zarr_kwargs,
        )


def refuse_non_store(where: StorePath) -> None:
    """Say what a local path given as a store is when it is something else: a file, or a flow
    map's checkpoint folder."""
    if not where.is_local:
        return
    if os.path.isfile(where.url):
        raise StoreError(f"{where.url} is a file, not a zarr store (a folder); choose another "
                         f"path, e.g. {where.url}.zarr")
    if any(os.path.exists(os.path.join(where.url, f)) for f in ("config.json", "ensemble.json")):
        raise StoreError(f"{where.url} is a flow-map checkpoint, not a store (flowsim.load, "
                         f"flowsim evaluate)")


def open_group(where: StorePath, mode: str = "r") -> zarr.Group:
    """Open the store's root group with zarr, ignoring consolidated metadata (always fresh)."""
    try:
        with quiet_zarr():
            return zarr.open_group(
                where.url, mode=mode, zarr_format=3, use_consolidated=False, **where.zarr_kwargs
            )
    except (FileNotFoundError, KeyError) as err:
        refuse_non_store(where)
        raise StoreError(f"no zarr store at {where.url}") from err
    except Exception as err:  # zarr raises many types for corrupt metadata
        raise StoreError(f"{where.url} is not a readable zarr v3 store: {err}") from err


def open_xarray(where: StorePath, chunks: Any = None) -> xr.Dataset:
    """Open the store lazily with xarray from per-array metadata (see the module docstring)."""
    if not where.exists():
        raise StoreError(f"no store at {where.url}; check the path, or create one with "
                         "flowsim.data.simulate_ensemble or flowsim.data.from_arrays")
    refuse_non_store(where)
    kwargs = dict(chunks={} if chunks is None else chunks, zarr_format=3, **where.zarr_kwargs)
    try:
        with quiet_zarr():
            return xr.open_zarr(where.url, consolidated=False, **kwargs)
    except Exception as err:
        raise StoreError(
            f"{where.url} is not a readable zarr v3 dataset ({type(err).__name__}: {err})"
        ) from err


def read_flags(array: zarr.Array) -> np.ndarray:
    """Read a 1-D flag array; an unreadable (torn) chunk counts as 0 (not done)."""
    try:
        return np.asarray(array[:], dtype=np.uint8)
    except Exception:  # a chunk torn by a crash mid-write
        out = np.zeros(array.shape[0], dtype=np.uint8)
        for i in range(array.shape[0]):
            try:
                out[i] = array[i]
            except Exception:
                out[i] = 0
        return out
