"""Creating stores atomically and writing chunk-aligned regions (private)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
import zarr

from .._utils import disk_full, full_disk_error
from ..errors import StoreError
from ._io import StorePath, open_group, write_template
from ._lock import StoreLock

__all__ = ["create_store", "write_region", "mark_completed"]


def create_store(
    template: xr.Dataset,
    encoding: Mapping[str, Any],
    where: StorePath,
    *,
    overwrite: bool = False,
    fill: Any = None,
    lock: Any = None,
) -> None:
    """Create a store from a template under a temporary name, then rename it into place.

    Arguments
    ---------
    template, encoding:
        From :func:`flowsim.data.schema.build_template`.
    where:
        Final location; must not exist unless ``overwrite``.
    overwrite:
        Delete an existing store at ``where`` first.
    fill:
        Optional ``callable(group)`` that writes data into the temporary store before the
        rename (``from_arrays`` writes everything, so a crash leaves nothing behind).
    lock:
        A :class:`~flowsim.data._lock.StoreLock` to take inside the new store before it appears
        under its name (so no other writer can take it in between).

    Raises
    ------
    StoreError
        ``where`` exists and ``overwrite`` is false; or the disk is full (an existing store is
        only replaced once the new one is complete, so it stays as it was).
    """
    if where.exists() and not overwrite:
        raise StoreError(f"{where.url} already exists; pass overwrite=True to replace it "
                         "(or choose another path)")
    guard = StoreLock(where)
    if overwrite and where.exists():  # not while another process writes it
        guard.acquire()  # (removed with the old store, or released below on failure)
    tmp = where.sibling_temp()
    try:
        write_template(template, tmp, encoding)
        if fill is not None:
            fill(open_group(tmp, mode="r+"))
        if lock is not None:
            lock.acquire(tmp.url)
        if where.exists():  # overwrite: the old store goes only once the new one is complete
            where.remove()
            guard.held = None
        tmp.rename_to(where)
        if lock is not None:
            lock.moved_to(where.url)
    except BaseException as err:
        tmp.remove()
        guard.release()
        if lock is not None:
            lock.held = None
        if isinstance(err, Exception) and disk_full(err):
            kept = "an existing store there is unchanged" if where.exists() else "nothing was left behind"
            raise full_disk_error(where.url, err, StoreError, kept) from err
        raise


def write_region(group: zarr.Group, start: int, stop: int, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays[name]`` into ``group[name][start:stop]`` (whole trajectory chunks only).

    Raises
    ------
    StoreError
        If ``[start, stop)`` is not aligned to the arrays' trajectory chunks.
    """
    for name, values in arrays.items():
        arr = group[name]
        cs = arr.chunks[0]
        if start % cs or (stop % cs and stop != arr.shape[0]):
            raise StoreError(f"region [{start}, {stop}) of {name!r} is not aligned to its chunks of {cs}")
        values = np.asarray(values, dtype=arr.dtype)
        if values.shape != (stop - start,) + tuple(arr.shape[1:]):
            raise StoreError(f"{name!r}: region of shape {values.shape} does not fit "
                             f"[{start}, {stop}) of an array shaped {arr.shape}")
        arr[start:stop] = values


def mark_completed(group: zarr.Group, chunk: int) -> None:
    """Flag one chunk as written (call only after its data is in place)."""
    group["completed"][chunk] = 1
