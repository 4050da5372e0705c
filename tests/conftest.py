"""Suite-wide settings: under pytest-xdist (``-n 2``, as CI runs the suite), each worker process,
and every process it starts (CLI runs, notebooks, Dask and ensemble workers), computes with its
share of the cores, so two workers share a 2-core machine without oversubscribing it (torch's
OpenMP threads spinning against each other slow it down many times over)."""

from __future__ import annotations

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    threads = str(max(1, (os.cpu_count() or 2) // workers))
    os.environ["OMP_NUM_THREADS"] = threads

    import torch

    torch.set_num_threads(int(threads))
