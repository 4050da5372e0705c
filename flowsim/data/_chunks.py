"""One ensemble chunk: draw its inputs from ``(seed, chunk)``, solve, write its region (private).

This is the function each Dask task runs, so it only takes picklable plain data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._utils import disk_full, full_disk_error
from ..errors import StoreError
from ..solve import reference_solve
from ..systems import ODESystem
from ._io import StorePath, open_group
from ._writer import mark_completed, write_region
from .cluster import tune_malloc

__all__ = ["ChunkJob", "chunk_seed", "make_inputs", "prepare_worker", "run_chunk"]


def chunk_seed(seed: int, chunk: int, stream: int) -> int:
    """A 63-bit seed for one random stream (0: initial states, 1: parameters) of one chunk."""
    words = np.random.SeedSequence(int(seed), spawn_key=(int(chunk), int(stream))).generate_state(2)
    return (int(words[0]) << 31) ^ int(words[1])


@dataclass
class ChunkJob:
    """Everything one task needs: where to write, which trajectories, and how to make them."""

    store: StorePath
    chunk: int
    start: int
    stop: int
    system: ODESystem
    t: np.ndarray  # shared (time,) or this chunk's (m, time)
    x0: np.ndarray | None  # this chunk's initial states, or None to sample the prior
    params: np.ndarray | str  # this chunk's (m, n_params), or "default" / "prior"
    seed: int
    solver: dict[str, Any] = field(default_factory=dict)


@contextmanager
def _single_threaded() -> Iterator[None]:
    """torch on one thread: parallelism comes from processes, and results do not depend on threads."""
    in_worker = False
    try:
        from distributed import get_worker

        get_worker()
        in_worker = True
    except (ImportError, ValueError):
        pass
    if in_worker:
        tune_malloc()  # a cluster flowsim did not start: undo the nanny's malloc set-up
    old = torch.get_num_threads()
    if old != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if old != 1 and not in_worker:  # a worker process stays single-threaded
            torch.set_num_threads(old)


def prepare_worker() -> int:
    """Run on each Dask worker before the chunks: import the solver stack, torch on one thread."""
    torch.set_num_threads(1)
    tune_malloc()
    return os.getpid()


def make_inputs(job: ChunkJob) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunk's initial states and parameters, deterministic in ``(seed, chunk)``."""
    m = job.stop - job.start
    system = job.system
    if job.x0 is None:
        x0 = system.sample_initial(m, chunk_seed(job.seed, job.chunk, 0), dtype=torch.float64)
    else:
        x0 = torch.as_tensor(job.x0, dtype=torch.float64)
    if isinstance(job.params, str):
        if job.params == "prior":
            p = system.sample_params(m, chunk_seed(job.seed, job.chunk, 1), dtype=torch.float64)
        else:
            p = system.default_params(m, dtype=torch.float64)
    else:
        p = torch.as_tensor(job.params, dtype=torch.float64)
    return x0, p


def run_chunk(job: ChunkJob) -> dict[str, Any]:
    """Solve and write one chunk; mark it complete only once its data is written.

    Returns timings and counts: ``chunk``, ``n``, ``n_failed``, ``solve_s``, ``write_s``, ``pid``.
    """
    with _single_threaded():
        t0 = time.perf_counter()
        x0, p = make_inputs(job)
        t = torch.as_tensor(job.t, dtype=torch.float64)
        sol = reference_solve(job.system, x0, t, p, **job.solver)
        t1 = time.perf_counter()
        arrays = {
            "x": sol.x.numpy(),
            "params": sol.p.numpy(),
            "status": sol.status.numpy(),
            "x0": x0.numpy(),
            "nfe": sol.nfe.numpy(),
        }
        if t.ndim == 2:
            arrays["t"] = t.numpy()
        try:
            group = open_group(job.store, mode="r+")
            write_region(group, job.start, job.stop, arrays)
            mark_completed(group, job.chunk)
        except Exception as err:
            if disk_full(err):
                raise full_disk_error(job.store.url, err, StoreError,
                                      "the chunks written before are kept: then run the same call "
                                      "again to resume") from err
            raise
        t2 = time.perf_counter()
    return {"chunk": job.chunk, "n": job.stop - job.start, "n_failed": sol.n_failed,
            "solve_s": t1 - t0, "write_s": t2 - t1, "pid": os.getpid()}
