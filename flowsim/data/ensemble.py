"""``simulate_ensemble``: reference solves of many trajectories on Dask, into a zarr store."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import xarray as xr

from .._utils import check_int
from ..errors import ConfigError, FlowsimError, ShapeError, StoreError
from ..solve import SolverOptions, solver_options
from ..solve.validate import check_initial, check_times
from ..systems import ODESystem, get_system
from ._chunks import ChunkJob, prepare_worker, run_chunk
from ._integrity import damaged_chunks
from ._io import StorePath, open_group, open_xarray, read_flags
from ._lock import StoreLock
from ._writer import create_store
from .cluster import check_client, resolve_client
from .schema import build_template, validate_dataset
from .store import open_store

__all__ = ["simulate_ensemble", "default_chunk_size"]


def default_chunk_size(n: int, n_times: int, dim: int) -> int:
    """About 16 MiB of float64 states per chunk (a power of two in [64, 16384]), and ≥ 8 chunks."""
    per_traj = max(1, n_times * dim * 8)
    cs = 2 ** round(math.log2(max(1.0, (16 << 20) / per_traj)))
    cs = min(max(cs, 64), 16384)
    return int(max(1, min(cs, math.ceil(n / 8))))


def _digest(a: np.ndarray | torch.Tensor) -> str:
    arr = np.ascontiguousarray(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else a)
    return hashlib.sha256(arr.tobytes()).hexdigest()[:32] + f"-{arr.dtype}-{arr.shape}"


def _shown(v: Any) -> str:
    """A stored value as a reader wants it: an array digest (:func:`_digest`) as its values' shape."""
    if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{32}-\w+-\(.*\)", v):
        dtype, shape = v.split("-", 2)[1:]
        return f"{dtype} values of shape {shape} (#{v[:8]})"
    return repr(v)


def _solver_config(opts: SolverOptions) -> dict[str, Any]:
    """The solver keys of ``ensemble_json`` (those stores have always had; the newer, optional
    fields only where set, so that existing stores still resume)."""
    d = opts.to_dict()
    out = {k: d[k] for k in ("method", "rtol", "atol", "backend", "max_steps")}
    out.update({k: d[k] for k in ("step_size", "n_steps") if d[k] is not None})
    if d.get("stacked"):
        out["stacked"] = True
    return out


def _inputs(system: ODESystem, n: int, params: Any, x0: Any) -> tuple[Any, Any, dict[str, str]]:
    """Validate ``params``/``x0``; return arrays (or mode strings) and their fingerprints."""
    if isinstance(x0, str):
        if x0 != "prior":
            raise ConfigError(f"x0 must be 'prior' or an (n, dim) array, got {x0!r}")
        x0_arr, x0_key = None, "prior"
    else:
        x0_t = check_initial(system, torch.as_tensor(x0), torch.float64)
        if x0_t.shape[0] != n:
            raise ShapeError(f"x0 has {x0_t.shape[0]} rows but n={n}; give one initial state per trajectory")
        x0_arr, x0_key = x0_t.numpy(), _digest(x0_t)
    if isinstance(params, str):
        if params not in ("default", "prior"):
            raise ConfigError(f"params must be 'default', 'prior', a dict or an array, got {params!r}")
        p_arr, p_key = params, params
    else:
        p_t = system.params_tensor(params if isinstance(params, Mapping) else torch.as_tensor(params),
                                   n, dtype=torch.float64)
        p_arr, p_key = p_t.contiguous().numpy(), _digest(p_t)
    return x0_arr, p_arr, {"x0": x0_key, "params": p_key}


def simulate_ensemble(
    system: ODESystem | str,
    n: int,
    t: Any,
    *,
    params: str | Mapping[str, float] | Any = "default",
    x0: str | Any = "prior",
    store: str | os.PathLike,
    chunk_size: int | None = None,
    client: Any = None,
    seed: int = 0,
    solver: SolverOptions | None = None,
    progress: bool = True,
    overwrite: bool = False,
    batch_size: int | None = None,
    n_workers: int | None = None,
    compressors: Any = None,
    storage_options: Mapping[str, Any] | None = None,
    stats: dict[str, Any] | None = None,
    **solver_keywords: Any,
) -> xr.Dataset:
    """Solve an ensemble of trajectories in parallel (one Dask task per chunk) into a zarr store.

    Each chunk of ``chunk_size`` trajectories is one task: it draws its initial states and
    parameters from ``(seed, chunk index)``, solves them with :func:`flowsim.reference_solve`,
    writes its chunk-aligned region and only then marks the chunk complete. Run the same call
    again after an interruption (Ctrl-C, ``kill -9``, a lost worker) and only the missing chunks
    are solved; the arrays are identical, byte for byte, to an uninterrupted run. One process
    writes a store at a time (a second is refused with :class:`~flowsim.StoreError` while the
    first writes); a finished store is only read, so any number of processes can make the same
    call on it at once (two trainings sharing their data).

    Arguments
    ---------
    system:
        An :class:`~flowsim.ODESystem` or a catalogue name.
    n:
        Number of trajectories.
    t:
        Output times: a shared grid ``(time,)`` or per-trajectory grids ``(n, time)``.
    params:
        ``"default"`` (the system's defaults), ``"prior"`` (uniform over each parameter's prior,
        drawn per chunk), a dict of overrides, ``(n_params,)`` or ``(n, n_params)``.
    x0:
        ``"prior"`` (the system's initial-state sampler, drawn per chunk) or an ``(n, dim)`` array.
    store:
        Path or fsspec URL of the store.
    chunk_size:
        Trajectories per chunk = per task = per zarr chunk (default: about 16 MiB of states, at
        least 8 chunks). The ensemble depends on it (each chunk draws its own samples).
    client:
        ``None``: start a :func:`~flowsim.data.local_cluster` (one single-threaded worker process
        per core) for this call; a ``dask.distributed.Client``; a scheduler address string; or
        ``"sync"`` to run in this process without Dask (small runs, tests, debugging).
    seed:
        Seed of the ensemble.
    solver:
        A :class:`~flowsim.SolverOptions`, passed unchanged to every chunk's
        :func:`flowsim.reference_solve` (default: ``SolverOptions()``, torchdiffeq dopri5);
        recorded in the store's ``attrs["solver_json"]``.
    progress:
        Show a progress bar (tqdm) over trajectories.
    overwrite:
        Delete an existing store first instead of resuming it.
    batch_size:
        Trajectories per torchdiffeq solve inside a chunk (default: the whole chunk).
    n_workers:
        Worker processes when ``client=None`` (default: one per core).
    compressors:
        zarr v3 compressor chain for the large variables.
    storage_options:
        fsspec options for a remote ``store``.
    stats:
        If a dict is given, it is filled with run statistics: ``chunks_run``, ``wall_s``,
        ``startup_s``, ``run_s``, ``solve_s`` and ``write_s`` (summed over chunks), ``n_failed``,
        ``workers`` (distinct worker processes).
    **solver_keywords:
        The keyword form of ``solver`` (fields of :class:`~flowsim.SolverOptions`: ``method``,
        ``rtol``, ``atol``, ``backend``, ``max_steps``, ``step_size``).

    Returns
    -------
    xarray.Dataset
        The completed store, opened with :func:`~flowsim.data.open_store`. Failed trajectories
        are NaN and keep their :class:`~flowsim.Status` code in ``status``.

    Raises
    ------
    StoreError
        ``store`` holds a different ensemble (other system, ``n``, grid, seed, chunk size, inputs
        or solver) and ``overwrite`` is false; or chunks could not be written.
    ShapeError, TimeGridError, ParameterError, SolverError, ConfigError
        Invalid inputs, checked before any work starts.

    Examples
    --------
    >>> import torch, tempfile, flowsim
    >>> ds = flowsim.data.simulate_ensemble(
    ...     "fitzhugh_nagumo", 64, torch.linspace(0, 20, 41), params="prior",
    ...     store=tempfile.mkdtemp() + "/fhn.zarr", chunk_size=32, client="sync", progress=False)
    >>> ds.x.shape, int((ds.status != 0).sum())
    ((64, 41, 2), 0)
    """
    t_call = time.perf_counter()
    system = get_system(system) if isinstance(system, str) else system
    if not isinstance(system, ODESystem):
        raise ConfigError(f"system must be an ODESystem or a catalogue name, got {type(system).__name__}")
    n = check_int(n, "n", ConfigError)
    t_arr = check_times(torch.as_tensor(t), n, torch.float64, torch.device("cpu")).numpy()
    n_times = int(t_arr.shape[-1])
    cs = default_chunk_size(n, n_times, system.dim) if chunk_size is None else chunk_size
    cs = check_int(cs, "chunk_size", ConfigError)
    if batch_size is not None:
        check_int(batch_size, "batch_size", ConfigError)  # or None: the whole chunk
    opts = solver_options(solver, solver_keywords, system)
    check_client(client)  # a typo refused before the store is written
    x0_arr, p_arr, keys = _inputs(system, n, params, x0)
    config = {
        "system": system.name, "constructor": system.constructor_kwargs(), "n": n, "chunk_size": cs,
        "t": _digest(t_arr), "seed": int(seed), **keys, **_solver_config(opts),
        "batch_size": int(batch_size or cs),
    }
    config = json.loads(json.dumps(config, default=str))
    where = StorePath(store, storage_options)
    with StoreLock(where) as lock:  # one writer per store; released on any exit
        if where.exists() and overwrite:
            lock.acquire()  # not while another process writes it
            where.remove()
            lock.held = None
        if where.exists():
            _check_resume(where, config)
            # a finished store nobody writes is only read, without the writer lock: several
            # processes (two trainings on one store) may open it at once
            if lock.taken() or not _finished(where):
                lock.acquire()
        else:
            attrs = {"source": "simulate_ensemble", "method": opts.method, "backend": opts.backend,
                     "rtol": opts.rtol, "atol": opts.atol, "solver_json": json.dumps(opts.to_dict()),
                     "seed": int(seed),
                     "params_mode": params if isinstance(params, str) else "given",
                     "x0_mode": x0 if isinstance(x0, str) else "given",
                     "ensemble_json": json.dumps(config, sort_keys=True)}
            template, encoding = build_template(
                system, n, n_times, chunk_size=cs, time=t_arr if t_arr.ndim == 1 else None,
                extra=("x0", "nfe", "completed"), attrs=attrs, compressors=compressors)
            try:
                create_store(template, encoding, where, lock=lock)
            except StoreError:
                if not where.exists():
                    raise
                lock.acquire()  # another process created it meanwhile: refused while it writes
                _check_resume(where, config)
        done = _done_flags(where)
        jobs = []
        for c in np.nonzero(done == 0)[0].tolist():
            a, b = c * cs, min((c + 1) * cs, n)
            jobs.append(ChunkJob(
                store=where, chunk=c, start=a, stop=b, system=system,
                t=t_arr if t_arr.ndim == 1 else t_arr[a:b], x0=None if x0_arr is None else x0_arr[a:b],
                params=p_arr if isinstance(p_arr, str) else p_arr[a:b], seed=int(seed),
                solver={"solver": opts, "chunk_size": int(batch_size or cs)}))
        n_done = n - sum(j.stop - j.start for j in jobs)
        reports = _execute(jobs, client, n_workers, progress, total=n, initial=n_done, name=system.name,
                           timing=stats)
        final = read_flags(open_group(where)["completed"])
        if not final.all():
            raise StoreError(f"{int((final == 0).sum())} chunks of {where.url} were not written; "
                             "run the same call again to resume")
    if stats is not None:
        stats.update(
            chunks_run=len(reports), solve_s=sum(r["solve_s"] for r in reports),
            write_s=sum(r["write_s"] for r in reports), n_failed=sum(r["n_failed"] for r in reports),
            workers=len({r["pid"] for r in reports}), wall_s=time.perf_counter() - t_call)
    return open_store(where.url, system, storage_options=storage_options)


def _finished(where: StorePath) -> bool:
    """Every chunk flagged complete, with its files on disk (reads only)."""
    group = open_group(where)
    done = read_flags(group["completed"])
    return bool(done.all()) and not damaged_chunks(where, group, done)


def _done_flags(where: StorePath) -> np.ndarray:
    """The chunks to skip: flagged complete, with their chunk files on disk. A flagged chunk
    whose files are missing (deleted, lost) is unflagged here, so that it is solved again."""
    group = open_group(where, mode="r+")
    done = read_flags(group["completed"])
    for c in damaged_chunks(where, group, done):
        group["completed"][c] = 0
        done[c] = 0
    return done


def _check_resume(where: StorePath, config: dict[str, Any]) -> None:
    attrs = dict(open_group(where).attrs)
    stored = attrs.get("ensemble_json")
    if stored is None:
        raise StoreError(f"{where.url} exists and is not a flowsim ensemble; choose another path or "
                         "pass overwrite=True")
    # attributes edited since the store was written: refused before any work
    validate_dataset(open_xarray(where), allow_incomplete=True, where=where.url)
    old = json.loads(stored)
    diff = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
    if diff:
        detail = ", ".join(f"{k}: stored {_shown(old.get(k))} vs now {_shown(config.get(k))}"
                           for k in diff[:4])
        raise StoreError(f"{where.url} holds a different ensemble ({detail}); rerun with the original "
                         "arguments to resume it, or pass overwrite=True to start over")


def _execute(jobs: list[ChunkJob], client: Any, n_workers: int | None, progress: bool, *, total: int,
             initial: int, name: str, timing: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Run the chunk jobs on Dask (or in process) with a progress bar; return their reports."""
    if progress:  # tqdm.auto warns in notebooks without ipywidgets: import it only when asked
        from tqdm.auto import tqdm
    else:
        from tqdm import tqdm  # disabled below; the plain module never touches IPython

    reports: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    if not jobs:
        if timing is not None:
            timing.update(startup_s=0.0, run_s=0.0)
        return reports
    with resolve_client(client, n_workers) as c, tqdm(
        total=total, initial=initial, unit="traj", desc=f"{name} ensemble", disable=not progress,
        dynamic_ncols=True,
    ) as bar:
        if c is not None:
            c.run(prepare_worker)  # imports torch & flowsim on every worker: start-up, not run time
        t1 = time.perf_counter()
        if c is None:
            for job in jobs:
                reports.append(run_chunk(job))
                bar.update(job.stop - job.start)
        else:
            reports = _run_dask(c, jobs, bar)
        if timing is not None:
            timing.update(startup_s=t1 - t0, run_s=time.perf_counter() - t1)
    return reports


def _run_dask(client: Any, jobs: list[ChunkJob], bar: Any, rounds: int = 3) -> list[dict[str, Any]]:
    """Submit one task per chunk; resubmit chunks whose task failed (e.g. lost workers)."""
    from distributed import as_completed

    reports: list[dict[str, Any]] = []
    pending = jobs
    last_error: BaseException | None = None
    for _ in range(rounds):
        futures = {client.submit(run_chunk, job, pure=False, retries=1): job for job in pending}
        failed: list[ChunkJob] = []
        try:
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    rep = fut.result()
                except FlowsimError:
                    raise  # bad input or solver misuse: retrying would not help
                except Exception as err:  # lost workers, I/O hiccups: retry the chunk
                    failed.append(job)
                    last_error = err
                    continue
                reports.append(rep)
                bar.update(job.stop - job.start)
                bar.set_postfix(failed=sum(r["n_failed"] for r in reports), refresh=False)
        except BaseException:
            client.cancel(list(futures))
            raise
        if not failed:
            return reports
        pending = failed
    raise StoreError(f"{len(pending)} chunks failed {rounds} times (last error: {last_error!r}); "
                     "run the same call again to resume")
