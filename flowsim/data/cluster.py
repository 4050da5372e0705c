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

import ast
import ctypes
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dask

from ..errors import ConfigError

__all__ = ["WORKER_ENV", "check_client", "default_n_workers", "local_cluster", "resolve_client",
           "tune_malloc", "unguarded_script", "warn_unguarded"]

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


def _is_main_guard(test: ast.expr) -> bool:
    """``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
            and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))


def _guarded_lines(path: str) -> list[tuple[int, int]] | None:
    """Line ranges of the ``if __name__ == "__main__":`` blocks of a file (None: unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    return [(node.lineno, node.end_lineno or node.lineno) for node in ast.walk(tree)
            if isinstance(node, ast.If) and _is_main_guard(node.test)]


def unguarded_script() -> bool:
    """Whether this call runs in a script's top-level code outside ``if __name__ == "__main__":``.

    Worker processes started with ``spawn`` or ``forkserver`` (Dask's nanny, a
    ``ProcessPoolExecutor``) run the main script again as ``__mp_main__``; a script that starts
    them from its unguarded top level would start them again in every child, which Dask reports
    as "Nanny failed to start" and multiprocessing as a bootstrapping ``RuntimeError``. True when
    the main module is a file (not a notebook, ``python -c`` or an interactive prompt) whose
    module-level code is on the call stack at a line outside any ``if __name__ == "__main__":``
    block, or when this process is itself such a re-run.
    """
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path:
        return False  # notebooks, python -c, the REPL: spawned children do not rerun them
    try:
        target = os.path.realpath(path)
    except (OSError, TypeError, ValueError):
        return False
    frame = sys._getframe(1)
    outer = None
    while frame is not None:  # the outermost frame running the main file's module-level code
        code = frame.f_code
        if (code.co_name == "<module>" and frame.f_globals.get("__name__") in ("__main__", "__mp_main__")
                and os.path.realpath(code.co_filename) == target):
            outer = frame
        frame = frame.f_back
    if outer is None:
        return False
    if outer.f_globals.get("__name__") == "__mp_main__":
        return True  # a spawned child re-running the script's top level
    ranges = _guarded_lines(target)
    if ranges is None:
        return False
    line = outer.f_lineno
    return not any(a <= line <= b for a, b in ranges)


def warn_unguarded(what: str, instead: str) -> None:
    """The one-line notice for :func:`unguarded_script`: a ``UserWarning`` pointing at the
    user's line (the first frame outside flowsim)."""
    level, frame = 2, sys._getframe(1)
    inside = ("flowsim", "contextlib")
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] in inside:
        level, frame = level + 1, frame.f_back
    warnings.warn(
        f"flowsim: {what} called at the top level of a script without "
        f"`if __name__ == \"__main__\":`; {instead}. Put the call under "
        f"`if __name__ == \"__main__\":` to use worker processes.", UserWarning, stacklevel=level)


def check_client(client: Any) -> None:
    """Refuse a ``client=`` string that is neither a sync name nor a scheduler address (a typo
    such as ``"synch"``), before anything is written.

    >>> check_client("sync"), check_client("tcp://10.0.0.1:8786")
    (None, None)
    """
    if isinstance(client, str) and client.lower() not in SYNC_NAMES \
            and not re.fullmatch(r"(\w+://)?[^\s/:]+:\d{1,5}/?", client):
        raise ConfigError(f"client={client!r} is neither 'sync' nor a scheduler address "
                          f"('tcp://host:port'); the choices are None (a local cluster), 'sync', "
                          f"an address or a dask.distributed.Client")


@contextmanager
def resolve_client(client: Any, n_workers: int | None = None) -> Iterator[Any]:
    """Yield a ``Client`` for ``client=`` (None → a fresh :func:`local_cluster`), or None for sync.

    Clusters and clients created here are closed on exit; a ``Client`` passed in is left open.
    ``client=None`` at the unguarded top level of a script (:func:`unguarded_script`), where
    worker processes would run the script again, gives None (in-process) with a one-line
    ``UserWarning`` instead of a cluster.

    Raises
    ------
    ConfigError
        ``client`` is none of: None, ``"sync"``, a scheduler address, a ``distributed.Client``.
    """
    if isinstance(client, str) and client.lower() in SYNC_NAMES:
        yield None
        return
    from distributed import Client

    if client is None and unguarded_script():
        warn_unguarded("simulate_ensemble", "running the chunks one after another in this "
                       "process instead of on Dask worker processes")
        yield None
        return
    if client is None:
        keys = list({**WORKER_ENV, **dask.config.get("distributed.nanny.pre-spawn-environ", {})})
        with _restore_environ(keys), local_cluster(n_workers) as cluster, Client(cluster) as c:
            yield c
        return
    if isinstance(client, str):
        check_client(client)
        try:
            c = Client(client, timeout="30s")
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot reach a Dask scheduler at {client!r}: {err}") from err
        with c:
            yield c
        return
    if isinstance(client, Client):
        yield client
        return
    raise ConfigError(f"client must be None (start a local cluster), 'sync', a scheduler address or a "
                      f"dask.distributed.Client; got {type(client).__name__}")
