"""Damaged and edited stores are refused, never read as fill values: the schema checksum, missing
and corrupted chunks, netCDF-safe attributes, file modes (issue 18)."""

from __future__ import annotations

import json
import os
import shutil
import stat

import dask
import numpy as np
import pytest
import torch
import xarray as xr
import zarr

import flowsim
from flowsim.data import (
    PairSampler,
    from_arrays,
    open_store,
    simulate_ensemble,
    store_summary,
    verify_store,
)
from flowsim.errors import StoreError
from flowsim.train import TrajectoryBank

from .conftest import FHN, assert_same_bytes, read_arrays


@pytest.fixture
def store(tmp_path, fhn_store):
    """A private copy of the complete FHN ensemble (48 trajectories, chunks of 8)."""
    path = tmp_path / "copy.zarr"
    shutil.copytree(fhn_store, path)
    return path


def _set_attr(path, key, value):
    g = zarr.open_group(str(path), mode="r+", use_consolidated=False)
    g.attrs[key] = value


# -- edited attributes -------------------------------------------------------------------------

def test_store_records_a_schema_checksum(fhn_store):
    ds = open_store(fhn_store)
    assert len(ds.attrs["schema_sha256"]) == 64


@pytest.mark.parametrize("key, value", [
    ("system", "lotka_volterra"),
    ("state_units", json.dumps(["mV", "mV"])),
    ("ensemble_json", "{}"),
    ("time_units", "s"),
])
def test_edited_root_attrs_are_refused(store, key, value):
    _set_attr(store, key, value)
    with pytest.raises(StoreError, match="attributes were edited after it was written"):
        open_store(store)


def test_a_store_claiming_another_system_is_refused_even_with_names_to_match(store):
    # the adversary edits both the name and the description; the checksum still catches it
    lv = flowsim.get_system("lotka_volterra")
    _set_attr(store, "system", "lotka_volterra")
    _set_attr(store, "system_json", json.dumps(lv.describe(), sort_keys=True))
    with pytest.raises(StoreError, match="checksum"):
        open_store(store, "lotka_volterra")


def test_resuming_an_edited_ensemble_is_refused_before_any_work(store, fhn):
    _set_attr(store, "time_units", "s")
    os.remove(store / "x" / "c" / "0" / "0" / "0")
    with pytest.raises(StoreError, match="attributes were edited"):
        simulate_ensemble(fhn, store=store, client="sync", **FHN)
    assert not (store / "x" / "c" / "0" / "0" / "0").exists()


def test_old_stores_without_checksum_and_with_list_attrs_still_open(store):
    g = zarr.open_group(str(store), mode="r+", use_consolidated=False)
    del g.attrs["schema_sha256"]
    g.attrs["state_units"] = ["", ""]  # the old, list-valued form
    ds = open_store(store, "fitzhugh_nagumo")
    assert ds.x.shape == (48, 21, 2)


def test_user_attrs_may_be_edited(store):
    _set_attr(store, "experiment", "renamed later")
    assert open_store(store).attrs["experiment"] == "renamed later"


# -- missing chunks ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, key", [("x", "x/c/2/0/0"), ("status", "status/c/2"),
                                       ("params", "params/c/2/0")])
def test_missing_chunk_of_a_written_region_is_refused(store, name, key):
    os.remove(store / key)
    with pytest.raises(StoreError, match=f"missing from disk.*{key}.*run the same simulate_ensemble"):
        open_store(store)
    with pytest.raises(StoreError, match="missing from disk"):
        PairSampler(store, batch_size=16)
    with pytest.raises(StoreError, match="missing from disk"):
        store_summary(store)
    with pytest.raises(StoreError, match="missing from disk"):
        flowsim.fit(flowsim.FlowMap("fitzhugh_nagumo", width=8, depth=1), "pairs", str(store),
                    steps=1, progress=False)


def test_resume_recomputes_a_missing_chunk_byte_for_byte(store, fhn, fhn_arrays):
    os.remove(store / "x" / "c" / "3" / "0" / "0")
    os.remove(store / "status" / "c" / "5")
    stats = {}
    simulate_ensemble(fhn, store=store, client="sync", stats=stats, **FHN)
    assert stats["chunks_run"] == 2
    assert_same_bytes(read_arrays(store), fhn_arrays)


def test_missing_chunk_of_from_arrays_store_says_recreate(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 5, 2))
    path = tmp_path / "a.zarr"
    from_arrays("fitzhugh_nagumo", x, np.arange(5.0), store=path, chunk_size=4)
    os.remove(path / "x" / "c" / "1" / "0" / "0")
    with pytest.raises(StoreError, match="recreate the store"):
        open_store(path)


def test_an_all_failed_chunk_has_no_x_file_and_is_not_damage(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 5, 2))
    x[4:] = np.nan  # the second chunk failed entirely: zarr writes no x chunk for it
    path = tmp_path / "a.zarr"
    from_arrays("fitzhugh_nagumo", x, np.arange(5.0), store=path, chunk_size=4)
    assert not (path / "x" / "c" / "1" / "0" / "0").exists()
    ds = open_store(path)
    assert int((ds.status != 0).sum()) == 4


# -- corrupted chunks --------------------------------------------------------------------------

def _truncate(path, key, size=20):
    with open(path / key, "r+b") as f:
        f.truncate(size)


def test_truncated_x_chunk_is_named_by_every_reader(store):
    key = "x/c/1/0/0"
    _truncate(store, key)
    ds = open_store(store)  # metadata and chunk listing only: opens
    with pytest.raises(StoreError, match=f"{key}.*corrupted or truncated"):
        verify_store(store)
    with pytest.raises(StoreError, match=f"{key}.*corrupted or truncated"):
        TrajectoryBank.from_dataset(ds)
    sampler = PairSampler(store, batch_size=64, shuffle=False)
    with pytest.raises(StoreError, match=f"{key}.*corrupted or truncated"):
        for _ in sampler:
            pass


def test_corrupted_status_chunk_is_named(store):
    with open(store / "status" / "c" / "4", "r+b") as f:
        f.seek(0)
        f.write(b"\xff" * 16)
    with pytest.raises(StoreError, match="status/c/4"):
        store_summary(store)
    with pytest.raises(StoreError, match="status/c/4"):
        PairSampler(store, batch_size=16)


# -- attributes a netCDF file can hold ---------------------------------------------------------

def test_store_converts_to_netcdf(tmp_path, fhn_store):
    ds = open_store(fhn_store)
    assert ds.attrs["Conventions"].startswith("CF-")
    assert "flowsim" in ds.attrs["history"]
    assert ds["x"].attrs["units"] == "1"  # FitzHugh–Nagumo's states are dimensionless
    for v in [*ds.attrs.values(), *(a for var in ds.variables.values() for a in var.attrs.values())]:
        assert isinstance(v, (str, int, float, np.number)) or all(
            isinstance(e, (int, float)) for e in v), v
    out = tmp_path / "fhn.nc"
    with dask.config.set(scheduler="synchronous"):  # scipy's writer refuses a distributed client
        ds.drop_vars([]).to_netcdf(out, engine="scipy")
    back = xr.open_dataset(out, engine="scipy")
    np.testing.assert_array_equal(back["x"].values, ds["x"].values)
    assert back.attrs["system"] == "fitzhugh_nagumo"


def test_user_list_attrs_are_stored_netcdf_safe(tmp_path):
    x = np.zeros((3, 4, 2))
    ds = from_arrays("fitzhugh_nagumo", x, np.arange(4.0), store=tmp_path / "a.zarr",
                     attrs={"tags": ["a", "b"], "weights": [1.0, 2.0], "flag": True})
    assert json.loads(ds.attrs["tags"]) == ["a", "b"]
    assert list(ds.attrs["weights"]) == [1.0, 2.0] and ds.attrs["flag"] == 1
    with dask.config.set(scheduler="synchronous"):
        ds.to_netcdf(tmp_path / "a.nc", engine="scipy")


# -- file modes --------------------------------------------------------------------------------

def test_store_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        from_arrays("fitzhugh_nagumo", np.zeros((3, 4, 2)), np.arange(4.0), store=tmp_path / "a.zarr")
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(os.stat(os.path.join(r, f)).st_mode)
             for r, _, files in os.walk(tmp_path / "a.zarr") for f in files}
    assert modes == {0o644}


def test_simulated_store_opens_as_before(fhn_store):
    ds = open_store(fhn_store, "fitzhugh_nagumo")
    assert int((ds.status == 0).sum()) == 48
    assert torch.isfinite(torch.as_tensor(ds.x.values)).all()


def test_history_is_appended_when_a_store_is_rewritten(tmp_path, fhn_store):
    from flowsim.data import from_dataset

    out = from_dataset(open_store(fhn_store), store=tmp_path / "again.zarr")
    lines = out.attrs["history"].splitlines()
    assert len(lines) == 2 and "simulate_ensemble" in lines[0] and "from_arrays" in lines[1]
    assert open_store(tmp_path / "again.zarr", "fitzhugh_nagumo").attrs["schema_sha256"] != \
        open_store(fhn_store).attrs["schema_sha256"]


def test_analysis_names_a_truncated_chunk(store):
    from flowsim.analysis import error_vs_jump

    _truncate(store, "x/c/3/0/0")
    fm = flowsim.FlowMap("fitzhugh_nagumo", width=8, depth=1)
    with pytest.raises(StoreError, match="x/c/3/0/0.*corrupted or truncated"):
        error_vs_jump(fm, open_store(store))
