"""Opening and describing stores: :func:`open_store`, :func:`store_summary`, :func:`format_summary`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from ..errors import FlowsimError, StoreError
from ..solve import Status
from ..systems import ODESystem
from ..systems.imports import rebuild_system
from ._integrity import damaged_chunks, read_chunked, unreadable_chunk_error
from ._io import StorePath, local_compute, open_group, open_xarray, read_flags
from .schema import STATUS_PENDING, validate_dataset

__all__ = ["open_store", "store_param_range", "store_system", "store_summary", "format_summary",
           "verify_store", "read_error"]


def open_store(
    path: str | os.PathLike,
    system: ODESystem | str | None = None,
    *,
    allow_incomplete: bool = False,
    chunks: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Open a trajectory store lazily (Dask-backed) and validate its schema.

    Arguments
    ---------
    path:
        A local path or fsspec URL.
    system:
        If given (name or :class:`~flowsim.ODESystem`), refuse a store of another system.
    allow_incomplete:
        Open an ensemble that is still being written (or was interrupted).
    chunks:
        Dask chunks, as in :func:`xarray.open_zarr` (default: the store's chunks).
    storage_options:
        fsspec options for remote stores.

    Returns
    -------
    xarray.Dataset
        ``x(trajectory, time, state)``, ``params``, ``status`` and coordinates; nothing is read
        until you compute.

    Raises
    ------
    StoreError
        No store at ``path``, not a flowsim store, wrong schema version, missing variables,
        another system, attributes edited since the store was written, an unfinished ensemble,
        or a written chunk whose file is missing (found by listing the chunk files; no data is
        read: :func:`verify_store` also decodes every chunk).

    Examples
    --------
    >>> import numpy as np, tempfile, flowsim
    >>> path = tempfile.mkdtemp() + "/s.zarr"
    >>> _ = flowsim.data.from_arrays("lotka_volterra", np.ones((3, 4, 2)), np.arange(4.0), store=path)
    >>> ds = flowsim.data.open_store(path, system="lotka_volterra")
    >>> ds.attrs["system"], ds.x.shape
    ('lotka_volterra', (3, 4, 2))
    """
    where = StorePath(path, storage_options)
    ds = open_xarray(where, chunks)
    validate_dataset(ds, system, allow_incomplete=allow_incomplete, where=where.url)
    check_chunks(where)
    return ds


def check_chunks(where: StorePath) -> None:
    """Refuse a store whose written regions lack chunk files (zarr would serve fill values)."""
    group = open_group(where)
    x = group["x"]
    done = read_flags(group["completed"]) if "completed" in group else np.ones(x.cdata_shape[0])
    bad = damaged_chunks(where, group, done)
    if not bad:
        return
    files = [f for c in sorted(bad) for f in bad[c]]
    how = ("run the same simulate_ensemble call again: resuming recomputes these chunks"
           if "completed" in group else
           "recreate the store (from_arrays / from_dataset with overwrite=True)")
    more = f" and {len(files) - 3} more" if len(files) > 3 else ""
    raise StoreError(f"{where.url}: {len(bad)} written chunk(s) are missing from disk "
                     f"({', '.join(files[:3])}{more}); their data would read as fill values. "
                     f"To repair, {how}")


def verify_store(
    path: str | os.PathLike, system: ODESystem | str | None = None, *,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Open a store as :func:`open_store` does and decode every chunk of its data, one at a time.

    :func:`open_store` checks the metadata and that no chunk file is missing, but reads no data;
    this also finds chunks that are truncated or corrupted (memory: one chunk at a time).

    Arguments
    ---------
    path:
        The store.
    system:
        If given, refuse a store of another system.
    storage_options:
        fsspec options for remote stores.

    Returns
    -------
    xarray.Dataset
        The store, opened.

    Raises
    ------
    StoreError
        As :func:`open_store`, or a chunk that cannot be decoded (the message names its file).

    Examples
    --------
    >>> import numpy as np, tempfile, flowsim
    >>> path = tempfile.mkdtemp() + "/s.zarr"
    >>> _ = flowsim.data.from_arrays("lotka_volterra", np.ones((3, 4, 2)), np.arange(4.0), store=path)
    >>> flowsim.data.verify_store(path).x.shape
    (3, 4, 2)
    """
    ds = open_store(path, system, allow_incomplete=True, storage_options=storage_options)
    where = StorePath(path, storage_options)
    group = open_group(where)
    for name in ("x", "params", "status", "t", "x0", "nfe"):
        if name in group:
            arr = group[name]
            cs = arr.chunks[0]
            for c in range(arr.cdata_shape[0]):
                read_chunked(where, arr, c * cs, (c + 1) * cs)
    return ds


def store_param_range(ds: xr.Dataset) -> dict[str, tuple[float, float]]:
    """The range of each parameter over a store's solved trajectories: what a map trained on it
    covers (``FlowMap(system, param_range=store_param_range(ds))``).

    A store simulated at the default parameters gives ``(default, default)`` for each: a map
    trained on it knows nothing of other parameters, and refuses them.

    Arguments
    ---------
    ds:
        A store opened with :func:`open_store`.

    Returns
    -------
    dict
        ``{name: (low, high)}`` over the trajectories whose ``status`` is OK.

    Raises
    ------
    StoreError
        A store without parameters or without any solved trajectory.

    Examples
    --------
    >>> import numpy as np, flowsim
    >>> from flowsim.data import from_arrays, store_param_range
    >>> ds = from_arrays("lotka_volterra", np.ones((2, 3, 2)), np.arange(3.0), store="/tmp/pr.zarr",
    ...                  overwrite=True)
    >>> store_param_range(ds)["alpha"]
    (1.1, 1.1)
    """
    if "params" not in ds.variables or "param" not in ds.coords:
        raise StoreError("the store holds no parameters; it was not written by flowsim")
    ok = np.asarray(ds["status"].values) == 0
    if not ok.any():
        raise StoreError("the store has no solved trajectory (every status is a failure or pending)")
    p = np.asarray(ds["params"].values, dtype=np.float64)[ok]
    names = [str(n) for n in np.asarray(ds["param"].values).tolist()]
    return {n: (float(p[:, i].min()), float(p[:, i].max())) for i, n in enumerate(names)}


def store_system(ds: xr.Dataset) -> ODESystem:
    """Rebuild the catalogue system a store was made with (name and constructor arguments).

    Arguments
    ---------
    ds:
        The store's Dataset (from :func:`open_store` or ``xarray.open_zarr``).

    Returns
    -------
    ODESystem
        The system, built with the constructor arguments recorded in ``ds.attrs``.

    Raises
    ------
    StoreError
        The system is not registered in this session (e.g. a ``from_callable`` system: pass it
        explicitly instead).

    Examples
    --------
    >>> import numpy as np, tempfile, flowsim
    >>> path = tempfile.mkdtemp() + "/s.zarr"
    >>> ds = flowsim.data.from_arrays("lotka_volterra", np.ones((3, 4, 2)), np.arange(4.0), store=path)
    >>> flowsim.data.store_system(ds).name
    'lotka_volterra'
    """
    info = json.loads(ds.attrs.get("system_json", "{}"))
    try:
        return rebuild_system(str(ds.attrs["system"]), info.get("constructor"), info.get("import_path"),
                              recorded_in="the store", sbml=info.get("sbml"))
    except FlowsimError as err:
        raise StoreError(f"cannot rebuild the store's system: {err}; pass the ODESystem explicitly") from err


def store_summary(
    path: str | os.PathLike, *, storage_options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A JSON-serialisable summary of a store (used by ``flowsim info STORE``).

    Reads only the small variables (``status``, ``params``, per-trajectory times), chunk by chunk.

    Arguments
    ---------
    path:
        The store.
    storage_options:
        fsspec options for remote stores.

    Returns
    -------
    dict
        ``system``, ``n_trajectories``, ``n_times``, ``states``, ``params`` (name → [min, max]),
        ``time`` ([first, last], units, grid), ``status`` (name → count), ``n_failed``, ``chunks``
        (size, total, completed), ``complete``, ``solver``, ``seed``, ``size_on_disk`` and
        ``nbytes`` (uncompressed ``x``), ``schema_version``, ``flowsim_version``, ``source``.

    Raises
    ------
    StoreError
        As :func:`open_store` (incomplete ensembles are summarised, not refused), or a chunk
        that cannot be decoded (named).

    Examples
    --------
    >>> import numpy as np, tempfile, flowsim
    >>> path = tempfile.mkdtemp() + "/s.zarr"
    >>> _ = flowsim.data.from_arrays("lotka_volterra", np.ones((3, 4, 2)), np.arange(4.0), store=path)
    >>> flowsim.data.store_summary(path)["status"]
    {'OK': 3}
    """
    where = StorePath(path, storage_options)
    ds = open_store(where.url, allow_incomplete=True, storage_options=storage_options)
    try:
        with local_compute():
            return _summary(ds, where)
    except FlowsimError:
        raise
    except Exception as err:  # noqa: BLE001 - a chunk that cannot be decoded
        raise unreadable_chunk_error(where, ["status", "params", "t"], err) from err


def _summary(ds: xr.Dataset, where: StorePath) -> dict[str, Any]:
    a = ds.attrs
    status = np.asarray(ds["status"].values).astype(np.int64)
    names = {STATUS_PENDING: "PENDING", **{int(s): s.name for s in Status}}
    codes, counts = np.unique(status, return_counts=True)
    status_counts = {names.get(int(c), str(int(c))): int(k) for c, k in zip(codes, counts)}
    pending = int(status_counts.get("PENDING", 0))
    n = int(ds.sizes["trajectory"])
    if "t" in ds.variables:
        t_first, t_last = float(ds["t"].min().values), float(ds["t"].max().values)
    else:
        tv = np.asarray(ds["time"].values)
        t_first, t_last = float(tv[0]), float(tv[-1])
    p_names = [str(s) for s in np.asarray(ds["param"].values).tolist()]
    ok = ds["status"] == 0
    params: dict[str, list[float]] = {}
    if p_names and int(ok.sum()) > 0:
        sel = ds["params"].where(ok)
        lo, hi = np.asarray(sel.min("trajectory").values), np.asarray(sel.max("trajectory").values)
        params = {k: [float(lo[i]), float(hi[i])] for i, k in enumerate(p_names)}
    chunk_size = int(a.get("chunk_size", ds["x"].encoding.get("chunks", (n,))[0]))
    n_chunks = -(-n // chunk_size)
    done = int(np.asarray(ds["completed"].values).sum()) if "completed" in ds.variables else n_chunks
    solver = {k: a[k] for k in ("method", "backend", "rtol", "atol") if k in a}
    return {
        "path": where.url,
        "system": str(a["system"]),
        "source": a.get("source", "unknown"),
        "n_trajectories": n,
        "n_times": int(ds.sizes["time"]),
        "states": [str(s) for s in np.asarray(ds["state"].values).tolist()],
        "params": params or {k: [] for k in p_names},
        "time": {"first": t_first, "last": t_last, "units": a.get("time_units", ""),
                 "grid": a.get("time_grid", "shared")},
        "status": status_counts,
        "n_failed": int(n - status_counts.get("OK", 0) - pending),
        "n_pending": pending,
        "chunks": {"size": chunk_size, "total": n_chunks, "completed": done},
        "complete": done == n_chunks,
        "solver": solver,
        "seed": a.get("seed"),
        "dtype": str(ds["x"].dtype),
        "nbytes": int(ds["x"].nbytes),
        "size_on_disk": where.size_on_disk(),
        "schema_version": int(a["flowsim_schema_version"]),
        "flowsim_version": str(a.get("flowsim_version", "unknown")),
    }


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def format_summary(summary: Mapping[str, Any]) -> str:
    """Render :func:`store_summary` as the text ``flowsim info`` prints.

    Arguments
    ---------
    summary:
        The dict returned by :func:`store_summary`.

    Returns
    -------
    str
        Several lines: path, system, sizes, time grid, status counts, parameter ranges, chunks.

    Examples
    --------
    >>> import numpy as np, tempfile, flowsim
    >>> path = tempfile.mkdtemp() + "/s.zarr"
    >>> _ = flowsim.data.from_arrays("lotka_volterra", np.ones((3, 4, 2)), np.arange(4.0), store=path)
    >>> print(flowsim.data.format_summary(flowsim.data.store_summary(path)).splitlines()[1])
    system:        lotka_volterra
    """
    s = summary
    tm = s["time"]
    lines = [
        f"store:         {s['path']}",
        f"system:        {s['system']}",
        f"trajectories:  {s['n_trajectories']} x {s['n_times']} times x {len(s['states'])} states "
        f"({', '.join(s['states'])}), {s['dtype']}",
        f"time:          {tm['first']:g} .. {tm['last']:g} {tm['units']}".rstrip() + f" ({tm['grid']} grid)",
    ]
    status = ", ".join(f"{k} {v}" for k, v in s["status"].items())
    lines.append(f"status:        {status}  ->  {s['n_failed']} failed")
    if s["params"]:
        rng = ", ".join(f"{k} " + (f"{v[0]:.4g}" if v and v[0] == v[1] else
                                   f"[{v[0]:.4g}, {v[1]:.4g}]" if v else "-") for k, v in s["params"].items())
        lines.append(f"parameters:    {rng}")
    ch = s["chunks"]
    state = "complete" if s["complete"] else "INCOMPLETE - rerun simulate to resume"
    lines.append(f"chunks:        {ch['completed']}/{ch['total']} of {ch['size']} trajectories ({state})")
    if s["solver"]:
        sv = s["solver"]
        lines.append(f"solver:        {sv.get('backend', '')} {sv.get('method', '')} rtol={sv.get('rtol')} "
                     f"atol={sv.get('atol')}, seed {s['seed']}")
    lines.append(f"size:          {_bytes(s['size_on_disk'])} on disk ({_bytes(s['nbytes'])} uncompressed)")
    lines.append(f"written by:    flowsim {s['flowsim_version']} ({s['source']}), "
                 f"schema v{s['schema_version']}")
    return "\n".join(lines)


def read_error(ds: xr.Dataset, err: BaseException) -> FlowsimError:
    """The error to raise when reading the arrays of ``ds`` failed with ``err`` (not a
    :class:`~flowsim.FlowsimError`): a :class:`~flowsim.StoreError` naming the damaged chunk where
    ``ds`` was opened from a store (found with :func:`verify_store`)."""
    source = getattr(ds, "encoding", {}).get("source")
    if source:
        try:
            verify_store(source)
        except StoreError as found:
            return found
        except Exception:  # noqa: BLE001 - e.g. a remote store needing options: say it plainly
            pass
    where = f" {source}" if source else ""
    return StoreError(f"cannot read the store{where}: {type(err).__name__}: {err}; a chunk is damaged "
                      "(find it with flowsim.data.verify_store)")
