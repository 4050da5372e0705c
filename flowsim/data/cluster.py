"""Dask set-up for ensembles: :func:`local_cluster` and the worker environment.

Why a plain ``LocalCluster`` under-delivers for torch ODE solves (measured on a 2-core machine,
see ``benchmarks/ensemble.py`` and ``docs/ensembles.md``):

* **glibc malloc tuning by the nanny.** Dask's nanny exports ``MALLOC_TRIM_THRESHOLD_=65536`` to
  every worker (``distributed.nanny.pre-spawn-environ``) to hand freed memory back to the OS.
  Setting *any* malloc threshold switches off glibc's dynamic mmap threshold, so every tensor
  of 128 KiB or more is ``mmap``-ed and unmapped again — and an adaptive solver allocates a
  handful of batch-sized tensors per step. Each allocation then page-faults fresh zeroed pages:
  a solve of 10 000 FitzHugh–Nagumo trajectories ran 2.5× slower than in a plain process.
  :data:`WORKER_ENV` keeps trimming but raises the mmap threshold to 16 MiB; in workers of
  clusters flowsim did not start, :func:`tune_malloc` sets the same thresholds at run time.
* **Intra-op threads.** torch sizes its thread pool to the machine's cores in every process;
  two workers × two threads on two cores oversubscribe, and for the small per-step tensors of a
  batched ODE solve the OpenMP fork/join costs more than it gains (a 2-thread solve was up to
  10× slower here). Tasks run torch single-threaded; parallelism comes from processes.
* **Per-task overhead and balance.** Each chunk is one task; chunks of thousands of trajectories
  keep scheduling overhead negligible and a batch large enough for torch vectorisation, while
  at least a few chunks per worker keep the tail short.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dask

from ..errors import ConfigError

__all__ = ["WORKER_ENV", "default_n_workers", "local_cluster", "resolve_client", "tune_malloc"]

#: Environment for worker processes (set before they start, via the nanny's pre-spawn environ).
WORKER_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MALLOC_TRIM_THRESHOLD_": str(64 << 20),
    "MALLOC_MMAP_THRESHOLD_": str(16 << 20),
}

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
_malloc_tuned = False

#: Accepted spellings of the in-process (no cluster) mode.
SYNC_NAMES = ("sync", "synchronous", "single-threaded")


def default_n_workers() -> int:
    """One worker process per CPU core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def tune_malloc() -> bool:
    """In a worker started with the nanny's bare ``MALLOC_TRIM_THRESHOLD_``, restore fast large allocations.

    Sets glibc's mmap threshold to 16 MiB and trim threshold to 64 MiB (as :data:`WORKER_ENV`) with
    ``mallopt``, once per process. Does nothing where an mmap threshold was chosen explicitly,
    where no trim threshold is set (glibc's dynamic defaults are fine), off glibc, or when the
    environment variable ``FLOWSIM_MALLOC_TUNING=0``.

    Returns
    -------
    bool
        Whether the thresholds are tuned in this process.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return True
    env = os.environ
    if (env.get("FLOWSIM_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux")
            or "MALLOC_TRIM_THRESHOLD_" not in env or "MALLOC_MMAP_THRESHOLD_" in env):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, int(WORKER_ENV["MALLOC_MMAP_THRESHOLD_"])) == 1
        ok = ok and libc.mallopt(_M_TRIM_THRESHOLD, int(WORKER_ENV["MALLOC_TRIM_THRESHOLD_"])) == 1
    except (OSError, AttributeError):  # not glibc
        return False
    _malloc_tuned = ok
    return ok


@contextmanager
def _restore_environ(keys: Iterator[str] | list[str]) -> Iterator[None]:
    """The nanny writes its pre-spawn environment into *this* process; undo that afterwards."""
    keys = list(keys)
    saved = {k: os.environ.get(k) for k in keys}
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def local_cluster(
    n_workers: int | None = None,
    *,
    threads_per_worker: int = 1,
    env: Mapping[str, str] | None = None,
    **kwargs: Any,
):
    """A ``dask.distributed.LocalCluster`` tuned for batched torch solves.

    One single-threaded worker process per core, with :data:`WORKER_ENV` (single-threaded BLAS/
    OpenMP, a malloc set-up that does not page-fault every large tensor). Reuse one cluster for
    several ensembles by wrapping it in a ``Client`` and passing ``client=``.

    Arguments
    ---------
    n_workers:
        Worker processes (default: one per available core).
    threads_per_worker:
        Threads (concurrent chunks) per worker.
    env:
        Extra or overriding environment variables for the workers.
    **kwargs:
        Passed to ``LocalCluster`` (the dashboard, with bokeh installed, is on a free port:
        ``cluster.dashboard_link``; ``dashboard_address=":8787"`` to fix it).

    Returns
    -------
    distributed.LocalCluster

    Examples
    --------
    >>> from dask.distributed import Client
    >>> from flowsim.data import local_cluster
    >>> with local_cluster(2) as cluster, Client(cluster) as client:  # doctest: +SKIP
    ...     ds = flowsim.data.simulate_ensemble("fitzhugh_nagumo", 10_000, t, store=..., client=client)
    """
    from distributed import LocalCluster

    n_workers = default_n_workers() if n_workers is None else int(n_workers)
    if n_workers < 1 or int(threads_per_worker) < 1:
        raise ConfigError("n_workers and threads_per_worker must be positive integers")
    environ = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), **WORKER_ENV, **dict(env or {})}
    kwargs.setdefault("dashboard_address", ":0")  # the HTTP server always starts; any free port
    kwargs.setdefault("silence_logs", logging.ERROR)
    # the workers' statistical profiler samples every thread's stack every 10 ms: a few per cent
    # of a core that a CPU-bound solve on a small machine can use (the nanny passes this config on)
    tuned = {"distributed.nanny.pre-spawn-environ": environ, "distributed.worker.profile.enabled": False}
    with dask.config.set(tuned), _restore_environ(environ):
        return LocalCluster(n_workers=n_workers, threads_per_worker=int(threads_per_worker),
                            processes=True, **kwargs)


@contextmanager
def resolve_client(client: Any, n_workers: int | None = None) -> Iterator[Any]:
    """Yield a ``Client`` for ``client=`` (None → a fresh :func:`local_cluster`), or None for sync.

    Clusters and clients created here are closed on exit; a ``Client`` passed in is left open.

    Raises
    ------
    ConfigError
        ``client`` is none of: None, ``"sync"``, a scheduler address, a ``distributed.Client``.
    """
    if isinstance(client, str) and client.lower() in SYNC_NAMES:
        yield None
        return
    from distributed import Client

    if client is None:
        keys = list({**WORKER_ENV, **dask.config.get("distributed.nanny.pre-spawn-environ", {})})
        with _restore_environ(keys), local_cluster(n_workers) as cluster, Client(cluster) as c:
            yield c
        return
    if isinstance(client, str):
        try:
            c = Client(client, timeout="30s")
        except OSError as err:
            raise ConfigError(f"cannot reach a Dask scheduler at {client!r}: {err}") from err
        with c:
            yield c
        return
    if isinstance(client, Client):
        yield client
        return
    raise ConfigError(f"client must be None (start a local cluster), 'sync', a scheduler address or a "
                      f"dask.distributed.Client; got {type(client).__name__}")
