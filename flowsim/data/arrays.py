"""Stores from users' own trajectories: :func:`from_arrays` and :func:`from_dataset`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..errors import ShapeError, StoreError, TimeGridError
from ..solve import Status
from ..systems import ODESystem, get_system
from ..systems.checks import refuse_complex
from ._io import StorePath
from ._writer import create_store, write_region
from .schema import build_template
from .store import open_store

__all__ = ["from_arrays", "from_dataset"]

ArrayLike = Any  # numpy, torch, dask or xarray arrays
_RESERVED_ATTRS = ("system", "system_json", "time_grid", "time_units", "state_units", "chunk_size", "source")


def _np(a: ArrayLike) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    if isinstance(a, xr.DataArray):
        return np.asarray(a.values)
    return np.asarray(a)


def _default_chunk(n: int, n_times: int, dim: int, itemsize: int) -> int:
    per_traj = max(1, n_times * dim * itemsize)
    return int(max(1, min(n, (8 << 20) // per_traj)))


def _check_times(t: np.ndarray) -> np.ndarray:
    """Validate one block of per-trajectory grids ``(rows, time)``; returns the valid-length mask."""
    valid = np.isfinite(t)
    n_valid = valid.sum(axis=1)
    prefix = np.arange(t.shape[1])[None, :] < n_valid[:, None]
    if (valid != prefix).any():
        raise TimeGridError("per-trajectory t may end with NaN padding but must not contain NaN or "
                            "inf before its last finite time")
    if (n_valid == 0).any():
        raise TimeGridError("every trajectory needs at least one finite time in t")
    with np.errstate(invalid="ignore"):
        d = np.diff(t, axis=1)
    ok = (d > 0) | ~prefix[:, 1:]
    if not ok.all():
        rows = np.nonzero(~ok.all(axis=1))[0][:5].tolist()
        raise TimeGridError(f"per-trajectory time grids must be strictly increasing; rows {rows} (of "
                            "this block) are not — sort them and drop duplicates")
    return prefix


def from_arrays(
    system: ODESystem | str,
    x: ArrayLike,
    t: ArrayLike,
    params: ArrayLike | Mapping[str, float] | None = None,
    status: ArrayLike | None = None,
    *,
    store: str | os.PathLike,
    chunk_size: int | None = None,
    attrs: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    compressors: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Write your own trajectories (measured or simulated elsewhere) as a flowsim store.

    Arguments
    ---------
    system:
        The :class:`~flowsim.ODESystem` (or catalogue name) the trajectories belong to; it names
        the states and parameters. Wrap an unknown model with :func:`flowsim.systems.from_callable`.
    x:
        States ``(trajectory, time, state)`` — numpy, torch, Dask or xarray; float32 stays float32.
    t:
        A shared grid ``(time,)`` (strictly monotone), or per-trajectory grids ``(trajectory, time)``
        (each strictly increasing; shorter trajectories padded with trailing NaN, their ``x`` too).
    params:
        ``None`` (the system's defaults), a dict of overrides, ``(n_params,)`` or
        ``(trajectory, n_params)``.
    status:
        ``(trajectory,)`` :class:`~flowsim.Status` codes. Default: ``OK`` where the trajectory is
        finite, ``NONFINITE`` otherwise.
    store:
        Where to write (a path or fsspec URL). Written under a temporary name and renamed when
        complete, so an interrupted call leaves nothing behind.
    chunk_size:
        Trajectories per chunk (default: chunks of about 8 MB).
    attrs:
        Extra dataset attributes (JSON-compatible), e.g. provenance of the data.
    overwrite:
        Replace an existing store.
    compressors:
        zarr v3 compressor chain for the large variables.
    storage_options:
        fsspec options for a remote ``store``.

    Returns
    -------
    xarray.Dataset
        The new store, opened with :func:`open_store`.

    Raises
    ------
    ShapeError
        Wrong shapes, non-floating ``x``, or non-finite values in trajectories marked ``OK``.
    TimeGridError
        Time grids not finite or not strictly monotone.
    ParameterError
        Parameters outside their domain.
    StoreError
        ``store`` exists (without ``overwrite``).

    Examples
    --------
    >>> import numpy as np, tempfile, flowsim
    >>> x = np.random.default_rng(0).normal(size=(10, 5, 2))
    >>> t = np.sort(np.random.default_rng(1).uniform(0, 1, size=(10, 5)), axis=1)
    >>> path = tempfile.mkdtemp() + "/mine.zarr"
    >>> ds = flowsim.data.from_arrays("fitzhugh_nagumo", x, t, store=path)
    >>> ds.x.shape, ds.attrs["time_grid"]
    ((10, 5, 2), 'per-trajectory')
    """
    system = get_system(system) if isinstance(system, str) else system
    if not isinstance(system, ODESystem):
        raise ShapeError(f"system must be an ODESystem or a catalogue name, got {type(system).__name__}")
    if not hasattr(x, "shape") or len(x.shape) != 3:
        raise ShapeError(f"x must have shape (trajectory, time, state); got {getattr(x, 'shape', type(x))}")
    n, n_times, dim = (int(s) for s in x.shape)
    if dim != system.dim:
        raise ShapeError(f"x has {dim} states but {system.name} has {system.dim} {system.state_names}")
    if n == 0 or n_times == 0:
        raise ShapeError(f"x is empty (shape {tuple(x.shape)}); give at least one trajectory and time")
    x_dtype = np.dtype(str(x.dtype).replace("torch.", ""))
    if x_dtype.kind == "f" and x_dtype.itemsize in (4, 8):
        pass
    elif x_dtype.kind in "iu":
        x_dtype = np.dtype(np.float64)
    else:
        raise ShapeError(f"x must hold floating-point numbers, got dtype {x.dtype}")

    refuse_complex(t, "t", TimeGridError)
    t_arr = t if hasattr(t, "shape") else np.asarray(t, dtype=np.float64)
    if len(t_arr.shape) == 1:
        t_arr = _np(t_arr).astype(np.float64)
    shared = len(t_arr.shape) == 1
    if len(t_arr.shape) not in (1, 2) or t_arr.shape[-1] != n_times or (not shared and t_arr.shape[0] != n):
        raise TimeGridError(f"t must be (time,) = ({n_times},) or (trajectory, time) = ({n}, {n_times}); "
                            f"got {tuple(t_arr.shape)}")
    if shared:
        if not np.isfinite(t_arr).all():
            raise TimeGridError("t contains NaN or inf; give finite times")
        d = np.diff(t_arr)
        if not ((d > 0).all() or (d < 0).all()):
            raise TimeGridError("t must be strictly monotone (no repeats); sort it and drop duplicates")

    p_full = params
    if params is not None and not isinstance(params, Mapping):
        shape = tuple(params.shape) if hasattr(params, "shape") else np.shape(params)
        if len(shape) == 2 and shape[0] != n:
            raise ShapeError(f"params must be (n_params,) or (trajectory, n_params) = ({n}, "
                             f"{system.n_params}); got {shape}")
        if len(shape) == 1:
            p_full = _np(params)
    if status is not None:
        s_shape = tuple(status.shape) if hasattr(status, "shape") else np.shape(status)
        if s_shape != (n,):
            raise ShapeError(f"status must have shape (trajectory,) = ({n},); got {s_shape}")

    cs = int(chunk_size) if chunk_size else _default_chunk(n, n_times, dim, x_dtype.itemsize)
    if cs < 1:
        raise ShapeError(f"chunk_size must be a positive integer, got {chunk_size}")
    template, encoding = build_template(
        system, n, n_times, chunk_size=cs, time=t_arr if shared else None, x_dtype=x_dtype,
        attrs={"source": "from_arrays", **dict(attrs or {})}, compressors=compressors,
    )
    codes = set(int(s) for s in Status)

    def fill(group) -> None:
        for start in range(0, n, cs):
            stop = min(start + cs, n)
            xs = _np(x[start:stop]).astype(x_dtype, copy=True)
            out: dict[str, np.ndarray] = {}
            if shared:
                valid = np.ones((stop - start, n_times), dtype=bool)
            else:
                ts = _np(t_arr[start:stop]).astype(np.float64)
                valid = _check_times(ts)
                out["t"] = ts
                xs[~valid] = np.nan
            finite = np.isfinite(xs).all(axis=2) | ~valid
            ok_rows = finite.all(axis=1)
            if status is None:
                st = np.where(ok_rows, int(Status.OK), int(Status.NONFINITE)).astype(np.int8)
            else:
                st = _np(status[start:stop])
                if not np.isin(st, list(codes)).all():
                    raise ShapeError(f"status codes must be among {sorted(codes)} (flowsim.Status)")
                st = st.astype(np.int8)
                bad = (st == int(Status.OK)) & ~ok_rows
                if bad.any():
                    rows = (start + np.nonzero(bad)[0][:5]).tolist()
                    raise ShapeError(f"trajectories {rows} are marked OK but contain NaN or inf; "
                                     "give them a failure status (or let from_arrays derive it)")
            p_block = p_full if (p_full is None or isinstance(p_full, Mapping) or np.ndim(p_full) == 1) \
                else _np(p_full[start:stop])
            p = system.params_tensor(p_block, stop - start, dtype=torch.float64)
            out.update(x=xs, status=st, params=p.numpy())
            write_region(group, start, stop, out)

    where = StorePath(store, storage_options)
    create_store(template, encoding, where, overwrite=overwrite, fill=fill)
    return open_store(where.url, system, storage_options=storage_options)


def from_dataset(
    ds: xr.Dataset,
    system: ODESystem | str | None = None,
    *,
    store: str | os.PathLike,
    chunk_size: int | None = None,
    overwrite: bool = False,
    compressors: Any = None,
    storage_options: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Write an ``xarray.Dataset`` of trajectories as a flowsim store.

    ``ds`` needs ``x`` with dims ``(trajectory, time, state)`` and either a ``time`` coordinate
    or a ``t(trajectory, time)`` variable; ``params(trajectory, param)`` and ``status(trajectory)``
    are optional. Named ``state``/``param`` coordinates are reordered to the system's order.
    Lazy (Dask-backed) datasets are written chunk by chunk, never loaded whole.

    Arguments
    ---------
    ds:
        The trajectories.
    system:
        The system; default ``ds.attrs["system"]``.
    store, chunk_size, overwrite, compressors, storage_options:
        As in :func:`from_arrays`.

    Returns
    -------
    xarray.Dataset
        The new store, opened.

    Raises
    ------
    StoreError
        Missing variables or dimensions, or no system given.
    ShapeError, TimeGridError, ParameterError
        As in :func:`from_arrays`.

    Examples
    --------
    >>> import numpy as np, xarray as xr, tempfile, flowsim
    >>> ds = xr.Dataset({"x": (("trajectory", "time", "state"), np.zeros((4, 3, 2)))},
    ...                 coords={"time": [0.0, 0.5, 1.0]})
    >>> out = flowsim.data.from_dataset(ds, "fitzhugh_nagumo", store=tempfile.mkdtemp() + "/s.zarr")
    >>> int(out.sizes["trajectory"])
    4
    """
    if system is None:
        if "system" not in ds.attrs:
            raise StoreError("from_dataset needs system=… (the dataset has no 'system' attribute)")
        system = str(ds.attrs["system"])
    system = get_system(system) if isinstance(system, str) else system
    if "x" not in ds.variables:
        raise StoreError(f"the dataset has no variable 'x'; it has {sorted(map(str, ds.variables))}")
    x = ds["x"]
    if set(x.dims) != {"trajectory", "time", "state"}:
        raise StoreError(f"'x' must have dims (trajectory, time, state); got {x.dims}")
    if "state" in ds.coords:
        names = [str(s) for s in np.asarray(ds["state"].values).tolist()]
        if sorted(names) != sorted(system.state_names):
            raise StoreError(f"the dataset's states {names} differ from {system.name}'s {system.state_names}")
        x = x.sel(state=list(system.state_names))
    x = x.transpose("trajectory", "time", "state")
    if "t" in ds.variables and ds["t"].ndim == 2:
        t = ds["t"].transpose("trajectory", "time")
    elif "time" in ds.coords:
        t = np.asarray(ds["time"].values, dtype=np.float64)
    else:
        raise StoreError("the dataset needs a 'time' coordinate or a 't(trajectory, time)' variable")
    params = None
    if "params" in ds.variables:
        params = ds["params"]
        if "param" in ds.coords:
            params = params.sel(param=list(system.param_names))
        params = params.transpose("trajectory", "param")
    status = ds["status"] if "status" in ds.variables else None
    attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float, bool, list))
             and not k.startswith("flowsim_") and k not in _RESERVED_ATTRS}
    return from_arrays(system, x, t, params, status, store=store, chunk_size=chunk_size, attrs=attrs,
                       overwrite=overwrite, compressors=compressors, storage_options=storage_options)
