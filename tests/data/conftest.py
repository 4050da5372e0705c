"""Fixtures for the data-layer tests: small real stores and one real Dask LocalCluster."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import flowsim
from flowsim.data import simulate_ensemble
from flowsim.systems import from_callable

#: A small FitzHugh–Nagumo ensemble: 48 trajectories in 6 chunks of 8, 21 times over [0, 10].
FHN = dict(n=48, t=torch.linspace(0.0, 10.0, 21), chunk_size=8, params="prior", seed=3,
           rtol=1e-6, atol=1e-8, progress=False)


def read_arrays(path) -> dict[str, np.ndarray]:
    """All trajectory arrays of a store, loaded (for byte comparisons)."""
    ds = xr.open_zarr(path, consolidated=False)
    names = [k for k in ("x", "params", "status", "x0", "nfe", "t", "completed") if k in ds.variables]
    ds = ds[names].compute(scheduler="threads")  # here, not on a distributed client of another test
    return {k: np.asarray(ds[k].values) for k in names}


def assert_same_bytes(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), f"{k} differs"


def poison_system():
    """A 1-state decay whose right-hand side is NaN above 1: those trajectories fail fast."""
    return from_callable(lambda t, x, p: torch.where(x > 1.0, torch.nan, -p[:, :1] * x), name="poison",
                         state_names=["x"], params={"k": 1.0}, initial_box=[(0.0, 2.0)], autonomous=True)


@pytest.fixture(scope="session")
def fhn():
    return flowsim.get_system("fitzhugh_nagumo")


@pytest.fixture(scope="session")
def fhn_store(tmp_path_factory, fhn):
    """Path of a complete FHN ensemble made in process (the clean reference run)."""
    path = tmp_path_factory.mktemp("stores") / "fhn.zarr"
    simulate_ensemble(fhn, store=path, client="sync", **FHN)
    return path


@pytest.fixture(scope="session")
def fhn_arrays(fhn_store):
    return read_arrays(fhn_store)


@pytest.fixture(scope="session")
def dask_client():
    """A real LocalCluster with 2 worker processes (flowsim's tuned set-up)."""
    from distributed import Client

    from flowsim.data import local_cluster

    with local_cluster(2) as cluster, Client(cluster) as client:
        yield client
