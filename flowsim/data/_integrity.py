"""Integrity of stores (private): the schema checksum, missing and unreadable chunks.

* **Schema checksum.** The attributes that say what a store holds (system, its description,
  units, grid, solver, ensemble) and the state and parameter names are hashed when the store is
  written (``attrs["schema_sha256"]``); a store whose attributes were edited afterwards is refused
  on open. Stores written before the checksum existed open unchecked.
* **Missing chunks.** zarr serves fill values for a chunk file that is absent, so a deleted
  chunk would read as NaN or ``PENDING``. A written region must have its ``status``, ``params``
  and ``t`` chunks, and its ``x`` chunk unless every trajectory in it failed (zarr does not
  store a chunk that is all fill value). Checked by listing the chunk keys, without reading data.
* **Unreadable chunks** (truncated, corrupted) raise :class:`~flowsim.StoreError` naming the
  chunk file instead of blosc's ``RuntimeError``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import zarr

from ..errors import StoreError
from ._io import StorePath

__all__ = [
    "CHECKSUM_ATTR",
    "SCHEMA_ATTRS",
    "schema_checksum",
    "check_schema_checksum",
    "damaged_chunks",
    "chunk_file",
    "unreadable_chunk_error",
    "read_chunked",
]

#: the attribute holding the checksum
CHECKSUM_ATTR = "schema_sha256"
#: flowsim's own attributes covered by the checksum (those present); user attributes are not
SCHEMA_ATTRS = (
    "flowsim_schema_version", "system", "system_json", "time_grid", "time_units", "state_units",
    "chunk_size", "source", "method", "backend", "rtol", "atol", "solver_json", "seed",
    "params_mode", "x0_mode", "ensemble_json",
)
#: variables whose written chunks must all be on disk (``x`` may lack all-failed chunks)
_ALWAYS_WRITTEN = ("status", "params", "t")


def schema_checksum(attrs: Mapping[str, Any], states: Iterable[str], params: Iterable[str]) -> str:
    """SHA-256 over the schema attributes present in ``attrs`` and the state and parameter names."""
    body = {k: attrs[k] for k in SCHEMA_ATTRS if k in attrs}
    body["state"] = [str(s) for s in states]
    body["param"] = [str(s) for s in params]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)


def check_schema_checksum(attrs: Mapping[str, Any], states: Iterable[str], params: Iterable[str],
                          where: str | None) -> None:
    """Refuse a store whose schema attributes or names no longer match the checksum written with it."""
    stored = attrs.get(CHECKSUM_ATTR)
    if stored is None:  # written before the checksum existed
        return
    if str(stored) != schema_checksum(attrs, states, params):
        prefix = f"{where}: " if where else ""
        raise StoreError(
            f"{prefix}the store's attributes were edited after it was written (their checksum "
            f"'{CHECKSUM_ATTR}' does not match: e.g. 'system', its description, units, the solver or "
            "the state/parameter names); the data may belong to another system. Restore the "
            "original attributes, or recreate the store with simulate_ensemble / from_arrays")


def chunk_file(where: StorePath, array: zarr.Array, chunk: int) -> str:
    """The file (or object) holding trajectory chunk ``chunk`` of ``array``."""
    coords = (int(chunk),) + (0,) * (array.ndim - 1)
    key = array.metadata.chunk_key_encoding.encode_chunk_key(coords)
    return f"{where.url}/{array.path}/{key}"


def _present(where: StorePath, array: zarr.Array) -> set[str] | None:
    """Relative chunk keys on disk for ``array`` (``None``: cannot tell, skip the check)."""
    if getattr(array.metadata, "zarr_format", 3) != 3 or any(n > 1 for n in array.cdata_shape[1:]):
        return None
    root = f"{where.url}/{array.path}"
    try:
        if where.is_local:
            out = set()
            for base, _, files in os.walk(root):
                rel = os.path.relpath(base, root)
                out.update(f if rel == "." else f"{rel}/{f}".replace(os.sep, "/") for f in files)
            return out
        import fsspec

        fs, p = fsspec.core.url_to_fs(root, **where.storage_options)
        return {f[len(p.rstrip("/")) + 1:] for f in fs.find(p)}
    except Exception:  # noqa: BLE001 - an unlistable store: the readers will complain
        return None


def damaged_chunks(where: StorePath, group: zarr.Group, done: np.ndarray) -> dict[int, list[str]]:
    """Written trajectory chunks (``done[c]`` true) whose data are missing or unreadable.

    Returns ``{chunk: [files]}``: missing ``status``/``params``/``t`` chunks, an unreadable
    ``status`` chunk, and missing ``x`` chunks of regions where some trajectory succeeded.
    Reads nothing but the ``status`` chunks of regions whose ``x`` chunk is absent.
    """
    bad: dict[int, list[str]] = {}
    wanted = np.flatnonzero(np.asarray(done) != 0)
    if wanted.size == 0:
        return bad
    arrays = {k: group[k] for k in ("x",) + _ALWAYS_WRITTEN if k in group}
    present = {k: _present(where, a) for k, a in arrays.items()}
    for c in wanted.tolist():
        for name in _ALWAYS_WRITTEN:
            if name in arrays and present[name] is not None:
                key = arrays[name].metadata.chunk_key_encoding.encode_chunk_key(
                    (c,) + (0,) * (arrays[name].ndim - 1))
                if key not in present[name]:
                    bad.setdefault(c, []).append(chunk_file(where, arrays[name], c))
        x = arrays.get("x")
        if x is None or present["x"] is None or c in bad:
            continue
        key = x.metadata.chunk_key_encoding.encode_chunk_key((c,) + (0,) * (x.ndim - 1))
        if key in present["x"]:
            continue
        cs = x.chunks[0]
        try:
            status = np.asarray(arrays["status"][c * cs:(c + 1) * cs])
        except Exception:  # noqa: BLE001 - a corrupted status chunk
            bad.setdefault(c, []).append(chunk_file(where, arrays["status"], c))
            continue
        if (status == 0).any():  # an all-failed region has no x chunk: NaN is its content
            bad.setdefault(c, []).append(chunk_file(where, x, c))
    return bad


def unreadable_chunk_error(where: StorePath, names: Iterable[str], err: BaseException,
                           rows: tuple[int, int] | None = None) -> StoreError:
    """A :class:`~flowsim.StoreError` for a failed read, naming the first chunk of ``names``
    that cannot be decoded (found by reading them one by one: only on this error path)."""
    if isinstance(err, StoreError):
        return err
    try:
        group = zarr.open_group(where.url, mode="r", zarr_format=3, use_consolidated=False,
                                **where.zarr_kwargs)
        for name in names:
            if name not in group:
                continue
            arr = group[name]
            cs = arr.chunks[0]
            chunks = range(arr.cdata_shape[0]) if rows is None else \
                range(rows[0] // cs, -(-rows[1] // cs))
            for c in chunks:
                try:
                    arr[c * cs:(c + 1) * cs]
                except Exception as inner:  # noqa: BLE001
                    return _damaged(chunk_file(where, arr, c), inner)
    except Exception:  # noqa: BLE001 - fall back to the general message
        pass
    return _damaged(f"{where.url} (a chunk of {', '.join(names)})", err)


def _damaged(what: str, err: BaseException) -> StoreError:
    return StoreError(
        f"cannot read {what}: {type(err).__name__}: {err}. The chunk is corrupted or truncated. "
        "For an ensemble, delete that file and run the same simulate_ensemble call again "
        "(resuming recomputes missing chunks); otherwise recreate the store from its source")


def read_chunked(where: StorePath, array: zarr.Array, start: int, stop: int) -> np.ndarray:
    """``array[start:stop]``, or a :class:`~flowsim.StoreError` naming the chunk that fails."""
    try:
        return array[start:stop]
    except Exception as err:  # noqa: BLE001 - blosc and zarr raise several types
        raise unreadable_chunk_error(where, [array.path], err, (start, stop)) from err
