"""The trajectory store's layout (schema version 1) and its validation.

One ``xarray.Dataset`` per ensemble, stored as zarr v3:

========================  ==============================  ==========================================
name                      dims                            meaning
========================  ==============================  ==========================================
``x``                     (trajectory, time, state)       states; NaN rows for failed trajectories
``params``                (trajectory, param)             parameters of each trajectory (float64)
``status``                (trajectory)                    int8 :class:`~flowsim.Status` code;
                                                          ``-1`` = not simulated yet
``time`` (coordinate)     (time)                          the shared output grid, **or**
``t`` (coordinate)        (trajectory, time)              per-trajectory grids (trailing NaN pads
                                                          shorter trajectories)
``state``, ``param``      (state), (param)                names (variable-length strings)
``trajectory``            (trajectory)                    0 … n-1
``x0``, ``nfe``           (trajectory, state), (trajectory)  optional: initial states, solver cost
``completed``             (chunk)                         optional (ensembles): 1 once a chunk of
                                                          ``chunk_size`` trajectories is written
========================  ==============================  ==========================================

Attributes: ``flowsim_schema_version``, ``flowsim_version``, ``system`` (name), ``system_json``
(the system's :meth:`~flowsim.ODESystem.describe`, as JSON), ``time_grid`` (``"shared"`` or
``"per-trajectory"``), ``time_units``, ``state_units``, ``source``, and for ensembles the solver
(``method``, ``backend``, ``rtol``, ``atol``, and the whole :class:`~flowsim.SolverOptions` as
``solver_json``, which older stores lack), seed and ``chunk_size``.

Attributes are netCDF-safe (strings, numbers, lists of numbers; lists of strings such as
``state_units`` are JSON-encoded; older stores hold plain lists, still read) and CF-style
(``Conventions``, ``history``, ``units="1"`` for dimensionless variables), so
``open_store(path).to_netcdf(...)`` works. ``schema_sha256`` is a checksum of flowsim's own
attributes and the state and parameter names, written with the store: a store whose attributes
were edited afterwards is refused (older stores without it open unchecked).
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import StoreError
from ..solve import Status
from ..systems import ODESystem, get_system
from ._integrity import CHECKSUM_ATTR, check_schema_checksum, schema_checksum
from ._io import default_compressors, local_values

__all__ = [
    "SCHEMA_VERSION",
    "REQUIRED_VARIABLES",
    "OPTIONAL_VARIABLES",
    "STATUS_PENDING",
    "build_template",
    "flowsim_version",
    "list_attr",
    "netcdf_attr",
    "validate_dataset",
]

#: Version of the store layout; bumped on incompatible changes.
SCHEMA_VERSION = 1

#: ``{name: dims}`` every store must have.
REQUIRED_VARIABLES: dict[str, tuple[str, ...]] = {
    "x": ("trajectory", "time", "state"),
    "params": ("trajectory", "param"),
    "status": ("trajectory",),
}
#: ``{name: dims}`` a store may have.
OPTIONAL_VARIABLES: dict[str, tuple[str, ...]] = {
    "t": ("trajectory", "time"),
    "x0": ("trajectory", "state"),
    "nfe": ("trajectory",),
    "completed": ("chunk",),
}
#: ``status`` of a trajectory whose chunk has not been written yet.
STATUS_PENDING = -1


def flowsim_version() -> str:
    """The installed flowsim version."""
    from .._version import __version__

    return __version__


def netcdf_attr(value: Any) -> Any:
    """``value`` as a netCDF-safe attribute: strings, numbers and lists of numbers stay, booleans
    become 0/1, anything else (lists of strings, dicts) is JSON-encoded."""
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (str, numbers.Number)):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)
        if items and all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in items):
            return items
    return json.dumps(value, default=str)


def list_attr(attrs: Mapping[str, Any], key: str) -> list[Any] | None:
    """A list-valued attribute, JSON-encoded (this schema) or a plain list (older stores)."""
    value = attrs.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
    return list(np.asarray(value).tolist()) if isinstance(value, np.ndarray) else list(value)


def _units(units: tuple[str, ...] | list[str]) -> str | None:
    """CF ``units`` of a variable whose columns have ``units``: the common unit, ``"1"`` when
    all are dimensionless, ``None`` when they differ (see the per-column attribute)."""
    distinct = set(units)
    if not distinct or distinct == {""}:
        return "1"
    return distinct.pop() if len(distinct) == 1 else None


def _with_units(attrs: dict[str, Any], per_column: tuple[str, ...] | list[str], key: str) -> dict[str, Any]:
    unit = _units(per_column)
    if unit is not None:
        attrs["units"] = unit
    attrs[key] = json.dumps(list(per_column))
    return attrs


def _status_attrs() -> dict[str, Any]:
    codes = {STATUS_PENDING: "PENDING", **Status.describe()}
    return {
        "long_name": "outcome of the trajectory's solve",
        "flag_values": list(codes),
        "flag_meanings": " ".join(codes.values()),
    }


def build_template(
    system: ODESystem,
    n: int,
    n_times: int,
    *,
    chunk_size: int,
    time: np.ndarray | None,
    x_dtype: np.dtype | type = np.float64,
    extra: tuple[str, ...] = (),
    attrs: Mapping[str, Any] | None = None,
    compressors: Any = None,
) -> tuple[xr.Dataset, dict[str, Any]]:
    """A lazy dataset with the store's layout, and the zarr encoding to write it with.

    Arguments
    ---------
    system:
        The system the trajectories belong to (names, units, description).
    n, n_times:
        Numbers of trajectories and of output times.
    chunk_size:
        Trajectories per zarr chunk (the unit of writing and of streaming).
    time:
        The shared grid ``(n_times,)``, or ``None`` for per-trajectory grids (variable ``t``).
    x_dtype:
        Floating dtype of ``x``.
    extra:
        Optional variables to include: any of ``"x0"``, ``"nfe"``, ``"completed"``.
    attrs:
        Additional dataset attributes (JSON-compatible scalars, strings and lists).
    compressors:
        zarr v3 compressor chain for the large variables (default Blosc/zstd with shuffle).

    Returns
    -------
    (Dataset, encoding)
        Data variables are Dask-backed zeros: writing with ``compute=False`` creates them
        without writing chunks.
    """
    cs = int(chunk_size)
    dim, n_params = system.dim, system.n_params
    comp = default_compressors() if compressors is None else compressors

    def lazy(shape: tuple[int, ...], dtype: Any) -> da.Array:
        chunks = (cs,) + tuple(max(s, 1) for s in shape[1:])
        return da.zeros(shape, dtype=dtype, chunks=chunks)

    data_vars: dict[str, Any] = {
        "x": (REQUIRED_VARIABLES["x"], lazy((n, n_times, dim), x_dtype),
              _with_units({"long_name": "state"}, system.units, "units_per_state")),
        "params": (REQUIRED_VARIABLES["params"], lazy((n, n_params), np.float64),
                   _with_units({"long_name": "parameters",
                                "defaults": [float(q.default) for q in system.parameters]},
                               [q.units for q in system.parameters], "units_per_param")),
        "status": (REQUIRED_VARIABLES["status"], lazy((n,), np.int8), _status_attrs()),
    }
    coords: dict[str, Any] = {
        "trajectory": ("trajectory", np.arange(n, dtype=np.int64)),
        "state": ("state", np.array(list(system.state_names), dtype=object)),
        "param": ("param", np.array(list(system.param_names), dtype=object)),
    }
    if time is None:
        coords["t"] = (OPTIONAL_VARIABLES["t"], lazy((n, n_times), np.float64),
                       {"long_name": "time of each sample", "units": system.time_units})
    else:
        coords["time"] = ("time", np.asarray(time, dtype=np.float64),
                          {"long_name": "time", "units": system.time_units})
    if "x0" in extra:
        data_vars["x0"] = (OPTIONAL_VARIABLES["x0"], lazy((n, dim), np.float64),
                           _with_units({"long_name": "initial state"}, system.units, "units_per_state"))
    if "nfe" in extra:
        data_vars["nfe"] = (OPTIONAL_VARIABLES["nfe"], lazy((n,), np.int64),
                            {"long_name": "right-hand-side evaluations of the trajectory's solve",
                             "units": "1"})
    n_chunks = -(-n // cs)
    if "completed" in extra:
        data_vars["completed"] = (
            OPTIONAL_VARIABLES["completed"], np.zeros(n_chunks, dtype=np.uint8),
            {"long_name": f"1 once trajectories [i*{cs}, (i+1)*{cs}) are written", "units": "1"},
        )
    ds = xr.Dataset(data_vars, coords=coords)
    given = {k: netcdf_attr(v) for k, v in dict(attrs or {}).items() if k != CHECKSUM_ATTR}
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    line = f"{stamp}: written by flowsim {flowsim_version()} ({given.get('source', 'build_template')})"
    history = f"{given.pop('history')}\n{line}" if isinstance(given.get("history"), str) else line
    ds.attrs = {
        "Conventions": "CF-1.10",
        "flowsim_schema_version": SCHEMA_VERSION,
        "flowsim_version": flowsim_version(),
        "system": system.name,
        "system_json": json.dumps(system.describe(), sort_keys=True, default=str),
        "time_grid": "per-trajectory" if time is None else "shared",
        "time_units": system.time_units,
        "state_units": json.dumps(list(system.units)),
        "chunk_size": cs,
        **given,
        "history": history,
    }
    ds.attrs[CHECKSUM_ATTR] = schema_checksum(ds.attrs, system.state_names, system.param_names)
    encoding: dict[str, Any] = {
        "x": {"compressors": comp},
        "params": {"compressors": comp},
        "status": {"_FillValue": None, "fill_value": STATUS_PENDING},
    }
    if time is None:
        encoding["t"] = {"compressors": comp}
    if "x0" in extra:
        encoding["x0"] = {"compressors": comp}
    if "nfe" in extra:
        encoding["nfe"] = {"_FillValue": None, "fill_value": 0}
    if "completed" in extra:
        encoding["completed"] = {"chunks": (1,), "_FillValue": None, "fill_value": 0}
    return ds, encoding


def _fail(msg: str, where: str | None) -> StoreError:
    return StoreError(f"{where}: {msg}" if where else msg)


def validate_dataset(
    ds: xr.Dataset,
    system: ODESystem | str | None = None,
    *,
    allow_incomplete: bool = False,
    where: str | None = None,
) -> None:
    """Check that ``ds`` follows the flowsim store schema.

    Arguments
    ---------
    ds:
        A dataset, typically opened from a store.
    system:
        If given (name or :class:`~flowsim.ODESystem`), the store must hold this system's
        trajectories, with the same state and parameter names.
    allow_incomplete:
        Accept an ensemble whose chunks are not all written yet.
    where:
        A path to name in error messages.

    Raises
    ------
    StoreError
        Wrong or missing schema version, missing variables, wrong dimensions, another system,
        or (unless ``allow_incomplete``) an unfinished ensemble.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from flowsim.data import validate_dataset
    >>> try:
    ...     validate_dataset(xr.Dataset())
    ... except Exception as err:
    ...     print(type(err).__name__)
    StoreError
    """
    version = ds.attrs.get("flowsim_schema_version")
    if version is None:
        raise _fail("not a flowsim store (no 'flowsim_schema_version' attribute); create stores "
                    "with flowsim.data.simulate_ensemble or flowsim.data.from_arrays", where)
    if int(version) != SCHEMA_VERSION:
        raise _fail(f"store schema version {version} is not supported by this flowsim "
                    f"(schema version {SCHEMA_VERSION}); convert it with the flowsim version "
                    f"that wrote it ({ds.attrs.get('flowsim_version', 'unknown')})", where)
    missing = [k for k in REQUIRED_VARIABLES if k not in ds.variables]
    if "time" not in ds.coords and "t" not in ds.variables:
        missing.append("time (or t)")
    if missing:
        raise _fail(f"the store is missing required variable(s) {missing}; it is incomplete or "
                    "was modified — recreate it", where)
    for name, dims in {**REQUIRED_VARIABLES, **OPTIONAL_VARIABLES}.items():
        if name in ds.variables and tuple(ds[name].dims) != dims:
            raise _fail(f"variable {name!r} has dims {tuple(ds[name].dims)}, expected {dims}", where)
    if not np.issubdtype(ds["x"].dtype, np.floating):
        raise _fail(f"'x' must be floating point, got {ds['x'].dtype}", where)
    if not np.issubdtype(ds["status"].dtype, np.integer):
        raise _fail(f"'status' must be integer codes, got {ds['status'].dtype}", where)
    if "system" not in ds.attrs:
        raise _fail("the store has no 'system' attribute", where)
    check_schema_checksum(ds.attrs, _names(ds, "state"), _names(ds, "param"), where)
    if system is not None:
        _check_system(ds, system, where)
    if "completed" in ds.variables and not allow_incomplete:
        try:
            done = local_values(ds["completed"])
        except Exception as err:  # noqa: BLE001 - a flag chunk torn or corrupted
            raise _fail(f"the ensemble's 'completed' flags cannot be read ({err}); rerun "
                        "simulate_ensemble with the same arguments: it recomputes unflagged chunks",
                        where) from err
        if not done.all():
            raise _fail(f"the ensemble is incomplete: {int(done.sum())} of {done.size} chunks written; "
                        "rerun simulate_ensemble with the same arguments to finish it", where)


def _check_system(ds: xr.Dataset, system: ODESystem | str, where: str | None) -> None:
    stored = str(ds.attrs["system"])
    if isinstance(system, str):
        system = get_system(system)
    if stored != system.name:
        raise _fail(f"the store holds trajectories of system {stored!r}, not {system.name!r}", where)
    states = _names(ds, "state")
    if states != list(system.state_names):
        raise _fail(f"the store's states {states} differ from {system.name}'s "
                    f"{list(system.state_names)}", where)
    params = _names(ds, "param")
    if params != list(system.param_names):
        raise _fail(f"the store's parameters {params} differ from {system.name}'s "
                    f"{list(system.param_names)}", where)
    units = list_attr(ds.attrs, "state_units")
    if units is not None and [str(u) for u in units] != list(system.units):
        raise _fail(f"the store's state units {units} differ from {system.name}'s "
                    f"{list(system.units)}", where)
    if "time_units" in ds.attrs and str(ds.attrs["time_units"]) != system.time_units:
        raise _fail(f"the store's time units {ds.attrs['time_units']!r} differ from {system.name}'s "
                    f"{system.time_units!r}", where)


def _names(ds: xr.Dataset, coord: str) -> list[str]:
    return [str(s) for s in np.asarray(ds[coord].values).tolist()] if coord in ds.coords else []
