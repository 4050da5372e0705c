"""Which data a map is trained on (private): refusing data of another system, and a cheap
fingerprint of the training data recorded with the trainer state (a resumed run must continue on
the same data)."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

from ..data.schema import list_attr
from ..data.store import read_error
from ..errors import ConfigError, StoreError
from ..solve.solution import Solution
from ..systems.base import ODESystem
from .bank import TrajectoryBank

__all__ = ["check_belongs", "fingerprint", "fingerprint_diff"]

#: trajectories of a store whose states enter the fingerprint (at most this many chunks are read)
_STORE_SAMPLE = 3
#: elements of an in-memory array that enter the fingerprint (evenly strided)
_MEMORY_SAMPLE = 1 << 16


def _names(ds: Any, coord: str) -> list[str] | None:
    return [str(s) for s in np.asarray(ds[coord].values).tolist()] if coord in ds.coords else None


def _dataset_problems(system: ODESystem, ds: Any) -> list[str]:
    a = ds.attrs
    out = []
    if "system" in a and str(a["system"]) != system.name:
        out.append(f"system {a['system']!r}, not {system.name!r}")
        return out
    for coord, want in (("state", system.state_names), ("param", system.param_names)):
        names = _names(ds, coord)
        if names is not None and names != list(want):
            out.append(f"{coord}s {names}, not {list(want)}")
    units = list_attr(a, "state_units")
    units = None if units is None else [str(u) for u in units]
    if units is not None and units != list(system.units):
        out.append(f"state units {units}, not {list(system.units)}")
    if "time_units" in a and str(a["time_units"]) != system.time_units:
        out.append(f"time units {a['time_units']!r}, not {system.time_units!r}")
    if "x" in ds.variables and "state" in ds["x"].dims and ds.sizes["state"] != system.dim:
        out.append(f"{ds.sizes['state']} states, not {system.dim}")
    if "params" in ds.variables and "param" in ds["params"].dims and ds.sizes["param"] != system.n_params:
        out.append(f"{ds.sizes['param']} parameters, not {system.n_params}")
    return out


def check_belongs(system: ODESystem, data: Any, what: str = "data") -> None:
    """Refuse trajectories (a store's Dataset, a Solution, a bank) of another system than the map's:
    by system name, state and parameter names and units (as far as ``data`` records them), and by
    the numbers of states and parameters. (Constructor arguments are not compared: a store of
    ``system.with_params(…)`` holds its parameters explicitly and trains the plain system's map.)"""
    if data is None:
        return
    if isinstance(data, Solution):
        problems = [] if data.system == system.name else [f"system {data.system!r}, not {system.name!r}"]
        x, p = data.x, data.p
    elif isinstance(data, TrajectoryBank):
        problems, x, p = [], data.x, data.p
    elif hasattr(data, "data_vars"):
        problems, x, p = _dataset_problems(system, data), None, None
    else:
        return
    if x is not None and not problems:
        if x.shape[-1] != system.dim:
            problems.append(f"{x.shape[-1]} states, not {system.dim}")
        if p.ndim == 2 and p.shape[-1] != system.n_params:
            problems.append(f"{p.shape[-1]} parameters, not {system.n_params}")
    if problems:
        error = StoreError if hasattr(data, "data_vars") else ConfigError
        src = getattr(data, "encoding", {}).get("source") if hasattr(data, "data_vars") else None
        where = f" ({src})" if src else ""
        raise error(
            f"the {what}{where} do not belong to this {system.name} map: they have "
            + "; ".join(problems)
            + f". Train a map of the data's system on them, or give trajectories of {system.name}")


def _digest(*arrays: Any) -> str:
    h = hashlib.sha256()
    for a in arrays:
        arr = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        arr = np.ascontiguousarray(arr.astype(np.float64, copy=False))
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:32]


def _strided(t: torch.Tensor) -> torch.Tensor:
    flat = t.reshape(-1)
    step = max(1, flat.numel() // _MEMORY_SAMPLE)
    return flat[::step]


def fingerprint(data: Any) -> dict[str, Any] | None:
    """A cheap fingerprint of training data: kind, system, shapes, and a digest of the small
    arrays and of a strided sample of the states (a store: its parameters, status, times, a few
    trajectories, and its schema checksum; never the whole store)."""
    if data is None:
        return None
    if isinstance(data, (Solution, TrajectoryBank)):
        kind = "solution" if isinstance(data, Solution) else "bank"
        system = data.system if isinstance(data, Solution) else None
        return {"kind": kind, "system": system, "shape": list(data.x.shape),
                "values": _digest(_strided(data.x), _strided(data.t), _strided(data.p))}
    if hasattr(data, "data_vars"):
        n = int(data.sizes.get("trajectory", 0))
        rows = sorted({int(i) for i in np.linspace(0, max(n - 1, 0), min(n, _STORE_SAMPLE))})
        try:
            with _threads():
                small = [data[k].values for k in ("params", "status", "time") if k in data.variables]
                x = data["x"].isel(trajectory=rows).values if rows else np.zeros(0)
                t = data["t"].isel(trajectory=rows).values if "t" in data.variables and rows else np.zeros(0)
        except Exception as err:  # noqa: BLE001 - a damaged chunk
            raise read_error(data, err) from err
        return {"kind": "dataset", "system": data.attrs.get("system"),
                "shape": [int(s) for s in data["x"].shape] if "x" in data.variables else [],
                "store": data.attrs.get("schema_sha256"), "values": _digest(*small, x, t)}
    return {"kind": type(data).__name__}


def _threads() -> Any:
    import dask

    return dask.config.set(scheduler="threads")


def fingerprint_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    """What differs between two fingerprints, in words (empty: the same data)."""
    if old == new:
        return []
    if old is None or new is None:
        return [f"data {'none' if old is None else old.get('kind')} then "
                f"{'none' if new is None else new.get('kind')}"]
    return [f"{k}: checkpoint {old.get(k)!r}, now {new.get(k)!r}"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
