"""The store schema: round trips, plain-xarray readability, and refusing bad stores."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

import flowsim
from flowsim.data import (
    SCHEMA_VERSION,
    format_summary,
    from_arrays,
    open_store,
    store_summary,
    store_system,
    validate_dataset,
)
from flowsim.errors import StoreError

pytestmark = pytest.mark.filterwarnings("error")


def _store(tmp_path, n=10, n_times=6, dtype=np.float64, **kw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, n_times, 2)).astype(dtype)
    t = np.linspace(0.0, 1.0, n_times)
    p = rng.uniform(0.6, 0.8, size=(n, 4))
    return x, t, p, from_arrays("fitzhugh_nagumo", x, t, p, store=tmp_path / "s.zarr", chunk_size=4, **kw)


def test_round_trip_shared_grid(tmp_path):
    x, t, p, ds = _store(tmp_path, dtype=np.float32, attrs={"experiment": "bench"})
    assert ds.x.dtype == np.float32 and ds.x.shape == (10, 6, 2)
    np.testing.assert_array_equal(ds.x.values, x)
    np.testing.assert_array_equal(ds.params.values, p)
    np.testing.assert_array_equal(ds.time.values, t)
    assert ds.status.dtype == np.int8 and (ds.status.values == 0).all()
    assert list(ds.state.values) == ["v", "w"] and list(ds.param.values) == ["a", "b", "eps", "I_ext"]
    a = ds.attrs
    assert a["flowsim_schema_version"] == SCHEMA_VERSION and a["system"] == "fitzhugh_nagumo"
    assert a["time_grid"] == "shared" and a["experiment"] == "bench" and a["source"] == "from_arrays"
    assert json.loads(a["system_json"])["parameters"]["eps"]["default"] == 0.08
    assert ds.x.encoding["chunks"] == (4, 6, 2)
    assert store_system(ds).name == "fitzhugh_nagumo"


def test_plain_xarray_opens_without_warnings(fhn_store):
    # the module runs with warnings as errors: any consolidated-metadata or dtype warning fails here
    ds = xr.open_zarr(fhn_store)
    validate_dataset(ds, "fitzhugh_nagumo")
    assert ds.x.dims == ("trajectory", "time", "state")
    assert ds.status.attrs["flag_meanings"].split()[:2] == ["PENDING", "OK"]
    # names are variable-length strings, not zarr's unspecified fixed-width unicode
    meta = zarr.open_group(str(fhn_store), mode="r")["state"].metadata
    assert type(meta.data_type).__name__ == "VariableLengthUTF8"


def test_missing_variable_is_refused(tmp_path):
    *_, ds = _store(tmp_path)
    shutil.rmtree(tmp_path / "s.zarr" / "x")
    with pytest.raises(StoreError, match=r"missing required variable.*'x'"):
        open_store(tmp_path / "s.zarr")


def test_wrong_schema_version_is_refused(tmp_path):
    _store(tmp_path)
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r+", use_consolidated=False)
    g.attrs["flowsim_schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(StoreError, match="schema version 2 is not supported"):
        open_store(tmp_path / "s.zarr")


def test_store_of_another_system_is_refused(tmp_path, fhn_store):
    with pytest.raises(StoreError, match="'fitzhugh_nagumo', not 'van_der_pol'"):
        open_store(fhn_store, system="van_der_pol")
    with pytest.raises(StoreError, match="not 'lotka_volterra'"):
        open_store(fhn_store, system=flowsim.get_system("lotka_volterra"))
    assert open_store(fhn_store, system="fitzhugh_nagumo").sizes["trajectory"] == 48


def test_not_a_store_and_foreign_zarr(tmp_path):
    with pytest.raises(StoreError, match="no store at"):
        open_store(tmp_path / "nothing.zarr")
    xr.Dataset({"a": ("i", np.arange(3))}).to_zarr(tmp_path / "foreign.zarr", zarr_format=3,
                                                    consolidated=False)
    with pytest.raises(StoreError, match="not a flowsim store"):
        open_store(tmp_path / "foreign.zarr")
    (tmp_path / "junk.zarr").mkdir()
    (tmp_path / "junk.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError):
        open_store(tmp_path / "junk.zarr")


def test_validate_in_memory_datasets(fhn_store):
    ds = xr.open_zarr(fhn_store, consolidated=False)
    with pytest.raises(StoreError, match="missing required variable.*status"):
        validate_dataset(ds.drop_vars("status"))
    with pytest.raises(StoreError, match="dims"):
        validate_dataset(ds.assign(status=ds.status.rename(trajectory="traj")))
    bad = ds.copy()
    bad.attrs = {k: v for k, v in ds.attrs.items() if k != "flowsim_schema_version"}
    with pytest.raises(StoreError, match="not a flowsim store"):
        validate_dataset(bad)


def test_incomplete_ensemble_is_refused_then_summarised(tmp_path, fhn_store):
    path = tmp_path / "copy.zarr"
    shutil.copytree(fhn_store, path)
    zarr.open_group(str(path), mode="r+", use_consolidated=False)["completed"][2] = 0
    with pytest.raises(StoreError, match="incomplete: 5 of 6 chunks"):
        open_store(path)
    assert open_store(path, allow_incomplete=True).sizes["trajectory"] == 48
    summary = store_summary(path)
    assert summary["complete"] is False and summary["chunks"] == {"size": 8, "total": 6, "completed": 5}
    assert "INCOMPLETE" in format_summary(summary)


def test_summary(fhn_store):
    s = store_summary(fhn_store)
    json.dumps(s)  # serialisable
    assert s["system"] == "fitzhugh_nagumo" and s["n_trajectories"] == 48 and s["n_times"] == 21
    assert s["status"] == {"OK": 48} and s["n_failed"] == 0 and s["complete"]
    assert s["time"]["first"] == 0.0 and s["time"]["last"] == 10.0
    lo, hi = s["params"]["eps"]
    assert 0.05 <= lo < hi <= 0.12  # drawn from the prior
    assert s["solver"]["method"] == "dopri5" and s["seed"] == 3 and s["size_on_disk"] > 0
    text = format_summary(s)
    assert "fitzhugh_nagumo" in text and "48 x 21 times" in text and "0 failed" in text


def test_fsspec_urls(fhn_arrays):
    import uuid

    from flowsim.data import simulate_ensemble

    from .conftest import FHN

    root = f"memory://flowsim-test-{uuid.uuid4().hex}"
    ds = from_arrays("lotka_volterra", np.ones((5, 4, 2)), np.arange(4.0), store=f"{root}/a.zarr",
                     chunk_size=2)
    assert ds.x.shape == (5, 4, 2) and store_summary(f"{root}/a.zarr")["size_on_disk"] > 0
    ens = simulate_ensemble("fitzhugh_nagumo", store=f"{root}/e.zarr", client="sync", **FHN)
    # memory:// lives in this process: read here, not on a distributed client other tests may have made
    assert np.asarray(ens.x.compute(scheduler="threads").values).tobytes() == fhn_arrays["x"].tobytes()
