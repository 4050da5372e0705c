"""Users' own trajectories: from_arrays / from_dataset, irregular grids, and bad input."""

from __future__ import annotations

import os

import dask.array as da
import numpy as np
import pytest
import torch
import xarray as xr

from flowsim import Status
from flowsim.data import PairSampler, from_arrays, from_dataset, open_store
from flowsim.errors import ShapeError, StoreError, TimeGridError

pytestmark = pytest.mark.filterwarnings("error")


def _irregular(n=9, n_times=7, seed=0):
    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0.0, 5.0, size=(n, n_times)), axis=1)
    x = rng.normal(size=(n, n_times, 2))
    t[1, 5:] = np.nan  # a shorter trajectory, padded
    x[1, 5:] = np.nan
    return x, t


def test_irregular_grids_round_trip(tmp_path):
    x, t = _irregular()
    x[4, 2, 0] = np.inf  # a broken trajectory: flagged, not refused
    ds = from_arrays("fitzhugh_nagumo", torch.from_numpy(x), t, store=tmp_path / "irr.zarr", chunk_size=4)
    assert ds.attrs["time_grid"] == "per-trajectory" and "time" not in ds.coords
    assert ds.t.dims == ("trajectory", "time")
    np.testing.assert_array_equal(ds.t.values, t)
    np.testing.assert_array_equal(ds.x.values[0], x[0])
    assert np.isnan(ds.x.values[1, 5:]).all()
    status = ds.status.values
    assert status[4] == Status.NONFINITE and (np.delete(status, 4) == Status.OK).all()
    np.testing.assert_array_equal(ds.params.values, np.tile([0.7, 0.8, 0.08, 0.5], (9, 1)))

    # the sampler reads per-trajectory times and never pairs padded or failed samples
    sampler = PairSampler(tmp_path / "irr.zarr", split="all", batch_size=5, return_index=True)
    for batch in sampler:
        idx = batch["trajectory"].numpy()
        assert not (idx == 4).any()
        assert torch.isfinite(batch["x_t"]).all() and (batch["t"] > batch["s"]).all()
        rows = np.nonzero(idx == 1)[0]
        assert (batch["t"][rows] <= float(np.nanmax(t[1])) + 1e-6).all()


def test_status_given_and_params_per_trajectory(tmp_path):
    x, t = _irregular()
    x[2] = np.nan
    status = np.zeros(9, dtype=np.int8)
    status[2] = Status.MAX_STEPS
    p = np.tile([0.7, 0.8, 0.08, 0.5], (9, 1))
    p[:, 2] = np.linspace(0.06, 0.1, 9)
    ds = from_arrays("fitzhugh_nagumo", x, t, params=p, status=status, store=tmp_path / "s.zarr")
    assert ds.status.values[2] == Status.MAX_STEPS
    np.testing.assert_array_equal(ds.params.values, p)
    status[2] = Status.OK
    with pytest.raises(ShapeError, match=r"trajectories \[2\] are marked OK but contain NaN"):
        from_arrays("fitzhugh_nagumo", x, t, status=status, store=tmp_path / "t.zarr")
    assert not (tmp_path / "t.zarr").exists()


def test_from_dataset_lazy_and_reordered(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 5, 2))
    src = xr.Dataset(
        {"x": (("trajectory", "time", "state"), da.from_array(x[:, :, ::-1], chunks=(5, 5, 2))),
         "params": (("trajectory", "param"), np.tile([0.5, 0.08, 0.8, 0.7], (12, 1)))},
        coords={"time": np.linspace(0, 1, 5), "state": ["w", "v"], "param": ["I_ext", "eps", "b", "a"]},
        attrs={"system": "fitzhugh_nagumo", "lab": "wet"},
    )
    ds = from_dataset(src, store=tmp_path / "d.zarr", chunk_size=5)
    np.testing.assert_array_equal(ds.x.values, x)  # states back in the system's order
    np.testing.assert_array_equal(ds.params.values[0], [0.7, 0.8, 0.08, 0.5])
    assert ds.attrs["lab"] == "wet"
    again = from_dataset(open_store(tmp_path / "d.zarr"), store=tmp_path / "e.zarr")
    np.testing.assert_array_equal(again.x.values, x)


def test_bad_input(tmp_path):
    x = np.zeros((4, 5, 2))
    t = np.linspace(0, 1, 5)
    with pytest.raises(ShapeError, match="3 states"):
        from_arrays("fitzhugh_nagumo", np.zeros((4, 5, 3)), t, store=tmp_path / "a.zarr")
    with pytest.raises(ShapeError, match="floating"):
        from_arrays("fitzhugh_nagumo", x.astype(bool), t, store=tmp_path / "a.zarr")
    with pytest.raises(TimeGridError, match="strictly monotone"):
        from_arrays("fitzhugh_nagumo", x, t[[0, 2, 1, 3, 4]], store=tmp_path / "a.zarr")
    with pytest.raises(TimeGridError, match=r"\(time,\) = \(5,\)"):
        from_arrays("fitzhugh_nagumo", x, t[:4], store=tmp_path / "a.zarr")
    t2 = np.tile(t, (4, 1))
    t2[3, 1] = np.nan
    with pytest.raises(TimeGridError, match="padding"):
        from_arrays("fitzhugh_nagumo", x, t2, store=tmp_path / "a.zarr", chunk_size=2)
    with pytest.raises(ShapeError, match="params"):
        from_arrays("fitzhugh_nagumo", x, t, params=np.zeros((3, 4)), store=tmp_path / "a.zarr")
    with pytest.raises(StoreError, match="needs system"):
        from_dataset(xr.Dataset({"x": (("trajectory", "time", "state"), x)}), store=tmp_path / "a.zarr")
    # nothing half-written was left behind, not even temporary stores
    assert os.listdir(tmp_path) == []


def test_existing_store_needs_overwrite(tmp_path):
    x, t = np.ones((3, 4, 2)), np.arange(4.0)
    from_arrays("fitzhugh_nagumo", x, t, store=tmp_path / "s.zarr")
    with pytest.raises(StoreError, match="already exists"):
        from_arrays("fitzhugh_nagumo", x, t, store=tmp_path / "s.zarr")
    ds = from_arrays("fitzhugh_nagumo", 2 * x, t, store=tmp_path / "s.zarr", overwrite=True)
    assert float(ds.x.max()) == 2.0


def test_complex_times_are_refused(tmp_path):
    with pytest.raises(TimeGridError, match="complex"):
        from_arrays("lotka_volterra", np.ones((2, 3, 2)), np.arange(3) + 0j, store=tmp_path / "c.zarr")
    assert not (tmp_path / "c.zarr").exists()
