"""Ensembles on real Dask and real disk: determinism, resuming, killed processes, failures."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from flowsim import Status
from flowsim.data import open_store, simulate_ensemble
from flowsim.errors import ConfigError, ShapeError, SolverError, StoreError

from .conftest import FHN, assert_same_bytes, poison_system, read_arrays

pytestmark = pytest.mark.filterwarnings("error")

#: Slower chunks (~0.5 s each), so that runs can be killed half-way.
SLOW = dict(n=36, t=torch.linspace(0.0, 50.0, 26), chunk_size=6, params="prior", seed=7,
            rtol=1e-9, atol=1e-11, progress=False)


@pytest.fixture(scope="module")
def slow_clean(tmp_path_factory):
    path = tmp_path_factory.mktemp("clean") / "slow.zarr"
    simulate_ensemble("fitzhugh_nagumo", store=path, client="sync", **SLOW)
    return read_arrays(path)


def _completed(path) -> np.ndarray:
    """The store's per-chunk completion flags, read while workers write (a torn chunk reads 0)."""
    try:
        flags = zarr.open_group(str(path), mode="r", use_consolidated=False)["completed"]
    except Exception:  # not created yet
        return np.zeros(0, dtype=np.uint8)
    out = np.zeros(flags.shape[0], dtype=np.uint8)
    for i in range(flags.shape[0]):
        try:
            out[i] = flags[i]
        except Exception:  # a chunk being written right now
            out[i] = 0
    return out


def test_sync_run_is_deterministic_and_complete(tmp_path, fhn_store, fhn_arrays):
    stats: dict = {}
    ds = simulate_ensemble("fitzhugh_nagumo", store=tmp_path / "again.zarr", client="sync", stats=stats,
                           **FHN)
    assert_same_bytes(read_arrays(tmp_path / "again.zarr"), fhn_arrays)
    assert stats["chunks_run"] == 6 and stats["n_failed"] == 0 and stats["solve_s"] > stats["write_s"]
    assert ds.attrs["seed"] == 3 and ds.attrs["params_mode"] == "prior"
    x0 = ds.x0.values
    np.testing.assert_allclose(ds.x.values[:, 0], x0)  # stored from t[0]
    assert len(np.unique(ds.params.values[:, 2])) == 48  # prior draws differ per trajectory

    # a finished store: rerunning does nothing; other arguments are refused, not mixed in
    stats = {}
    simulate_ensemble("fitzhugh_nagumo", store=tmp_path / "again.zarr", client="sync", stats=stats, **FHN)
    assert stats["chunks_run"] == 0
    with pytest.raises(StoreError, match="seed: stored 3 vs now 4"):
        simulate_ensemble("fitzhugh_nagumo", store=tmp_path / "again.zarr", client="sync",
                          **{**FHN, "seed": 4})
    other = simulate_ensemble("fitzhugh_nagumo", store=tmp_path / "again.zarr", client="sync",
                              overwrite=True, **{**FHN, "seed": 4})
    assert not np.array_equal(other.x0.values, x0)


def test_explicit_inputs_and_per_trajectory_grids(tmp_path, fhn):
    n = 10
    x0 = fhn.sample_initial(n, 1)
    p = fhn.default_params(n)
    p[:, 3] = torch.linspace(0.4, 0.9, n)
    t = torch.linspace(0, 5, 11).repeat(n, 1) + torch.arange(n, dtype=torch.float64)[:, None]
    ds = simulate_ensemble(fhn, n, t, x0=x0, params=p, store=tmp_path / "e.zarr", chunk_size=4,
                           client="sync", progress=False, rtol=1e-6, atol=1e-8)
    np.testing.assert_array_equal(ds.x0.values, x0.numpy())
    np.testing.assert_array_equal(ds.params.values, p.numpy())
    np.testing.assert_array_equal(ds.t.values, t.numpy())
    assert ds.attrs["time_grid"] == "per-trajectory" and ds.attrs["x0_mode"] == "given"


def test_bad_arguments_fail_before_any_work(tmp_path, fhn):
    t = torch.linspace(0, 1, 5)
    kw = dict(store=tmp_path / "bad.zarr", client="sync", progress=False)
    with pytest.raises(ConfigError):
        simulate_ensemble(fhn, 0, t, **kw)
    with pytest.raises(ConfigError, match="'default', 'prior'"):
        simulate_ensemble(fhn, 4, t, params="posterior", **kw)
    with pytest.raises(ShapeError, match="3 rows but n=4"):
        simulate_ensemble(fhn, 4, t, x0=fhn.sample_initial(3, 0), **kw)
    with pytest.raises(SolverError, match="unknown torchdiffeq method"):
        simulate_ensemble(fhn, 4, t, method="rk45", **kw)
    with pytest.raises(ConfigError, match="client"):
        simulate_ensemble(fhn, 4, t, client=3.5, store=tmp_path / "bad.zarr", progress=False)
    assert not (tmp_path / "bad.zarr").exists() or not open_store(tmp_path / "bad.zarr",
                                                                  allow_incomplete=True).completed.any()


def test_failed_trajectories_keep_their_status(tmp_path):
    poison = poison_system()
    ds = simulate_ensemble(poison, 24, torch.linspace(0, 1, 5), store=tmp_path / "p.zarr", chunk_size=8,
                           client="sync", progress=False)
    status = ds.status.values
    x0 = ds.x0.values[:, 0]
    assert ((status == Status.NONFINITE) == (x0 > 1.0)).all() and (status == Status.OK).any()
    assert np.isnan(ds.x.values[status != 0]).all() and np.isfinite(ds.x.values[status == 0]).all()


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_is_byte_identical(tmp_path, slow_clean):
    path = tmp_path / "killed.zarr"
    script = (
        "import sys, torch\n"
        "from flowsim.data import simulate_ensemble\n"
        f"simulate_ensemble('fitzhugh_nagumo', store=sys.argv[1], client='sync', n={SLOW['n']}, "
        f"t=torch.linspace(0.0, 50.0, 26), chunk_size={SLOW['chunk_size']}, params='prior', "
        f"seed={SLOW['seed']}, rtol={SLOW['rtol']}, atol={SLOW['atol']}, progress=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)])
    try:
        deadline = time.monotonic() + 120
        while _completed(path).sum() < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "run ended before it could be killed"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    done = _completed(path)
    assert proc.returncode == -signal.SIGKILL and 2 <= done.sum() < done.size
    stats: dict = {}
    simulate_ensemble("fitzhugh_nagumo", store=path, client="sync", stats=stats, **SLOW)
    assert stats["chunks_run"] == done.size - done.sum()  # only the missing chunks
    assert_same_bytes(read_arrays(path), slow_clean)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary stores left


@pytest.mark.slow
def test_dask_cluster_matches_sync(tmp_path, dask_client, fhn_arrays):
    stats: dict = {}
    simulate_ensemble("fitzhugh_nagumo", store=tmp_path / "d.zarr", client=dask_client, stats=stats, **FHN)
    assert stats["workers"] == 2  # both worker processes took chunks
    assert_same_bytes(read_arrays(tmp_path / "d.zarr"), fhn_arrays)


@pytest.mark.slow
def test_tuned_cluster_workers_run_without_the_profiler(dask_client):
    """Dask's stack sampler costs CPU a solve could use; flowsim's clusters switch it off."""
    import dask

    on = dask_client.run(lambda: dask.config.get("distributed.worker.profile.enabled"))
    assert set(on.values()) == {False}
    assert dask.config.get("distributed.worker.profile.enabled") is True  # ours is untouched


@pytest.mark.slow
def test_default_local_cluster_restores_environment(tmp_path, fhn_arrays):
    before = {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")}
    simulate_ensemble("fitzhugh_nagumo", store=tmp_path / "l.zarr", client=None, n_workers=2, **FHN)
    assert_same_bytes(read_arrays(tmp_path / "l.zarr"), fhn_arrays)
    assert {k: os.environ.get(k) for k in before} == before


@pytest.mark.slow
def test_killing_a_worker_loses_nothing(tmp_path, dask_client, slow_clean):
    path = tmp_path / "w.zarr"
    pids = dask_client.run(os.getpid)
    victim = sorted(pids.values())[0]
    killed = threading.Event()

    def killer() -> None:
        deadline = time.monotonic() + 120
        while _completed(path).sum() < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        done = _completed(path)
        if 0 < done.sum() < done.size:
            os.kill(victim, signal.SIGKILL)
            killed.set()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    stats: dict = {}
    simulate_ensemble("fitzhugh_nagumo", store=path, client=dask_client, stats=stats, **SLOW)
    thread.join(timeout=5)
    assert killed.is_set(), "the run finished before a worker could be killed"
    assert _completed(path).all()
    assert_same_bytes(read_arrays(path), slow_clean)
    assert victim not in dask_client.run(os.getpid).values()  # the nanny replaced the dead worker
    assert Path(path).exists()


@pytest.mark.slow
def test_tune_malloc_only_undoes_the_nanny_trap():
    script = (
        "import os\n"
        "from flowsim.data.cluster import tune_malloc\n"
        "os.environ.pop('MALLOC_TRIM_THRESHOLD_', None); os.environ.pop('MALLOC_MMAP_THRESHOLD_', None)\n"
        "a = tune_malloc()\n"  # glibc's dynamic defaults: leave them
        "os.environ['MALLOC_TRIM_THRESHOLD_'] = '65536'; os.environ['FLOWSIM_MALLOC_TUNING'] = '0'\n"
        "b = tune_malloc()\n"  # opted out
        "del os.environ['FLOWSIM_MALLOC_TUNING']\n"
        "c = tune_malloc()\n"  # the nanny's bare trim threshold: tuned
        "print(a, b, c, tune_malloc())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    expected = "False False True True" if sys.platform.startswith("linux") else "False False False False"
    assert out.stdout.split("\n")[-2] == expected


@pytest.mark.slow
def test_progress_false_never_imports_tqdm(tmp_path):
    """tqdm.auto warns in notebooks without ipywidgets; progress=False must not touch it."""
    store = str(tmp_path / "s.zarr")
    code = ("import sys, torch; from flowsim.data import simulate_ensemble; "
            f"simulate_ensemble('fitzhugh_nagumo', 8, torch.linspace(0, 1, 3), store={store!r}, "
            "client='sync', progress=False); print('tqdm.auto' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
