"""Streaming samplers: values, counts, gaps, splits, epochs, DataLoader workers, bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import xarray as xr

from flowsim.data import PairSampler, WindowSampler, from_arrays, simulate_ensemble, split_of
from flowsim.errors import ConfigError, StoreError

from .conftest import poison_system

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def stored(fhn_store):
    ds = xr.open_zarr(fhn_store, consolidated=False)
    return ds.x.values, ds.params.values, ds.time.values


def _epoch(sampler) -> list[dict[str, torch.Tensor]]:
    return list(sampler)


def test_pairs_are_stored_states_with_the_right_counts(fhn_store, stored):
    x, p, time = stored
    sampler = PairSampler(fhn_store, batch_size=50, split="all", return_index=True, dtype=torch.float64)
    batches = _epoch(sampler)
    assert sampler.n_samples == 48 * 21 == sum(len(b["s"]) for b in batches)
    assert [len(b["s"]) for b in batches[:-1]] == [50] * (len(batches) - 1) and len(batches[-1]["s"]) == 8
    b = {k: torch.cat([bb[k] for bb in batches]).numpy() for k in batches[0]}
    i, j = np.searchsorted(time, b["s"]), np.searchsorted(time, b["t"])
    np.testing.assert_array_equal(time[i], b["s"])
    np.testing.assert_array_equal(b["x_s"], x[b["trajectory"], i])
    np.testing.assert_array_equal(b["x_t"], x[b["trajectory"], j])
    np.testing.assert_array_equal(b["p"], p[b["trajectory"]])
    assert (j > i).all() and set(b["trajectory"]) == set(range(48))
    gaps = b["t"] - b["s"]
    assert gaps.min() == 0.5 and gaps.max() > 8.0  # all gaps, from one step to nearly the whole span
    assert batches[0]["x_s"].dtype == torch.float64
    assert next(iter(PairSampler(fhn_store, split="all")))["x_s"].dtype == torch.float32


def test_gap_limits_and_log_uniform(fhn_store):
    limited = PairSampler(fhn_store, batch_size=128, split="all", min_gap=2.0, max_gap=3.0)
    gaps = torch.cat([b["t"] - b["s"] for b in limited])
    assert gaps.min() >= 2.0 - 1e-6 and gaps.max() <= 3.0 + 1e-6
    uniform = torch.cat([b["t"] - b["s"] for b in PairSampler(fhn_store, batch_size=128, split="all")])
    logu = PairSampler(fhn_store, batch_size=128, split="all", gaps="log-uniform", pairs_per_trajectory=60)
    lg = torch.cat([b["t"] - b["s"] for b in logu])
    assert len(lg) == 48 * 60 and lg.min() >= 1.0 - 1e-6 and lg.max() <= 10.0 + 1e-6
    # spread over scales, then snapped up to the 0.5 grid: P(gap <= 1.5) = P(g <= 1.5) = log(3)/log(20)
    # (gaps start at one step, 0.5, and one-step gaps have measure zero: the shortest drawn is 1.0)
    assert 0.34 < float((lg < 1.58).float().mean()) < 0.40 and float((lg >= 5.0).float().mean()) > 0.18
    assert float((lg < 1.58).float().mean()) > float((uniform < 1.58).float().mean())
    with pytest.raises(ConfigError, match="no two stored times"):
        PairSampler(fhn_store, min_gap=20.0)
    with pytest.raises(ConfigError, match="gaps"):
        PairSampler(fhn_store, gaps="linear")
    with pytest.raises(ConfigError, match="exceeds"):
        PairSampler(fhn_store, min_gap=3.0, max_gap=2.0)


def test_epochs_shuffle_reproducibly(fhn_store):
    a = PairSampler(fhn_store, batch_size=64, seed=5)
    e0, e1 = _epoch(a), _epoch(a)
    assert not torch.equal(e0[0]["x_s"], e1[0]["x_s"])  # the epoch advanced by itself
    b = PairSampler(fhn_store, batch_size=64, seed=5)
    assert all(torch.equal(u["x_s"], v["x_s"]) for u, v in zip(e0, _epoch(b)))
    b.set_epoch(1)
    assert all(torch.equal(u["t"], v["t"]) for u, v in zip(e1, _epoch(b)))


def test_splits_are_disjoint_reproducible_and_sized(fhn_store):
    codes = split_of(np.arange(20_000), (0.7, 0.2, 0.1), seed=1)
    np.testing.assert_array_equal(codes, split_of(np.arange(20_000), (0.7, 0.2, 0.1), seed=1))
    assert not np.array_equal(codes, split_of(np.arange(20_000), (0.7, 0.2, 0.1), seed=2))
    np.testing.assert_allclose(np.bincount(codes) / 20_000, [0.7, 0.2, 0.1], atol=0.01)
    np.testing.assert_array_equal(split_of(np.arange(100, 200)), split_of(np.arange(300))[100:200])

    sets = {}
    for split in ("train", "val", "test"):
        s = PairSampler(fhn_store, split=split, fractions=(0.5, 0.25, 0.25), split_seed=4, return_index=True)
        seen = set(torch.cat([b["trajectory"] for b in s]).tolist())
        assert seen == set(s.trajectories.tolist())
        sets[split] = seen
    assert not (sets["train"] & sets["val"]) and not (sets["train"] & sets["test"])
    assert not (sets["val"] & sets["test"]) and set().union(*sets.values()) == set(range(48))
    with pytest.raises(ConfigError, match="sum"):
        PairSampler(fhn_store, fractions=(0.5, 0.5, 0.5))


def test_failed_trajectories_are_skipped(tmp_path):
    path = tmp_path / "p.zarr"
    ds = simulate_ensemble(poison_system(), 32, torch.linspace(0, 1, 6), store=path, chunk_size=8,
                           client="sync", progress=False)
    ok = set(np.nonzero(ds.status.values == 0)[0].tolist())
    assert 0 < len(ok) < 32
    for sampler in (PairSampler(path, split="all", return_index=True, batch_size=16),
                    WindowSampler(path, 3, split="all", return_index=True, batch_size=16,
                                  windows_per_trajectory=20)):  # every trajectory drawn
        seen = torch.cat([b["trajectory"] for b in sampler]).tolist()
        assert set(seen) == ok and sampler.n_trajectories == len(ok)


def test_windows(fhn_store, stored):
    x, p, time = stored
    w = WindowSampler(fhn_store, 4, stride=2, batch_size=32, split="all", return_index=True,
                      dtype=torch.float64)
    batches = _epoch(w)
    assert sum(len(b["t"]) for b in batches) == w.n_samples == 48 * (21 // 4)
    b = batches[0]
    assert b["t"].shape == (32, 4) and b["x"].shape == (32, 4, 2) and b["p"].shape == (32, 4)
    np.testing.assert_allclose(b["t"].diff(dim=1).numpy(), 1.0)
    cols = np.searchsorted(time, b["t"].numpy())
    np.testing.assert_array_equal(b["x"].numpy(), x[b["trajectory"].numpy()[:, None], cols])
    with pytest.raises(ConfigError, match="spans"):
        WindowSampler(fhn_store, 12, stride=2)


@pytest.mark.slow
def test_dataloader_with_two_workers(fhn_store):
    sampler = PairSampler(fhn_store, batch_size=40, split="all", return_index=True)
    loader = sampler.loader(num_workers=2, timeout=120)
    epochs = []
    for _ in range(2):
        batches = list(loader)
        epochs.append(torch.cat([b["x_s"] for b in batches]))
        assert sum(len(b["s"]) for b in batches) == sampler.n_samples == 48 * 21
        assert set(torch.cat([b["trajectory"] for b in batches]).tolist()) == set(range(48))
    assert not torch.equal(epochs[0], epochs[1])  # persistent workers advanced their epochs


def test_incomplete_store_is_refused(tmp_path, fhn_store):
    import shutil

    import zarr

    shutil.copytree(fhn_store, tmp_path / "c.zarr")
    zarr.open_group(str(tmp_path / "c.zarr"), mode="r+", use_consolidated=False)["completed"][0] = 0
    with pytest.raises(StoreError, match="incomplete"):
        PairSampler(tmp_path / "c.zarr")


MEMORY_SCRIPT = """
import json, resource, sys, threading, time
import psutil, torch
from flowsim.data import PairSampler

proc = psutil.Process()
sampler = PairSampler(sys.argv[1], batch_size=256, split="all", pairs_per_trajectory=4, chunks_in_memory=2)
it = iter(sampler)
count = len(next(it)["s"])  # warm-up: imports, zarr, first block
base = proc.memory_info().rss
maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
peak = [base]
stop = threading.Event()

def watch():
    while not stop.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss)
        time.sleep(0.001)

thread = threading.Thread(target=watch)
thread.start()
for batch in it:
    count += len(batch["s"])
for batch in sampler:  # a second epoch
    count += len(batch["s"])
stop.set()
thread.join()
maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if maxrss_after > maxrss_before:
    peak[0] = max(peak[0], maxrss_after)
print(json.dumps({"base": base, "peak": peak[0], "count": count}))
"""


@pytest.mark.slow
def test_sampler_memory_stays_bounded(tmp_path):
    # 20 MiB over the process's footprint after the first batch (chunks are 1.3 MB; allocator and
    # decompression caches alone have measured 10-14 MiB)
    limit = 20 << 20
    n, n_times = 3200, 128
    x = np.random.default_rng(0).normal(size=(n, n_times, 40))  # lorenz96 has 40 states
    path = tmp_path / "big.zarr"
    ds = from_arrays("lorenz96", x, np.linspace(0, 1, n_times), store=path, chunk_size=32)
    assert ds.x.nbytes >= 6 * limit  # the store is six times the limit (125 MiB vs 20 MiB)
    del x, ds
    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["count"] == 2 * n * 4
    grown = res["peak"] - res["base"]
    assert grown < limit, f"sampler grew by {grown / 2**20:.1f} MiB reading a 125 MiB store"


def test_ranks_share_the_chunks_between_them(fhn_store):
    seen = []
    for rank in range(2):
        s = PairSampler(fhn_store, split="all", rank=rank, world_size=2, return_index=True, batch_size=64)
        seen.append(set(torch.cat([b["trajectory"] for b in s.loader()]).tolist()))
    assert not (seen[0] & seen[1]) and seen[0] | seen[1] == set(range(48))
    with pytest.raises(ConfigError, match="rank"):
        PairSampler(fhn_store, rank=2, world_size=2)


@pytest.mark.parametrize("grid", ["shared", "per-trajectory"])
def test_early_fraction_starts_near_the_initial_states(fhn_store, tmp_path, grid):
    """``early_fraction`` draws starts log-uniformly in the stored index, as fit's in-memory
    sampler does: many more jumps start at the first stored state than with uniform starts."""
    path = fhn_store
    if grid == "per-trajectory":  # the same states on grids shifted per trajectory
        ds = xr.open_zarr(fhn_store, consolidated=False)
        t = ds.time.values[None, :] + 0.1 * np.arange(ds.sizes["trajectory"])[:, None]
        path = tmp_path / "shifted.zarr"
        from_arrays("fitzhugh_nagumo", ds.x.values, t, params=ds.params.values, store=path, chunk_size=16)

    def share_at_start(early):
        sampler = PairSampler(path, batch_size=256, split="all", gaps="log-uniform", return_index=True,
                              pairs_per_trajectory=200, early_fraction=early, seed=3)
        batches = _epoch(sampler)
        b = {k: torch.cat([bb[k] for bb in batches]) for k in ("s", "t", "trajectory")}
        first = 0.1 * b["trajectory"].double() if grid == "per-trajectory" else torch.zeros(len(b["s"]))
        assert (b["t"] > b["s"]).all()
        return float(((b["s"].double() - first).abs() < 1e-4).double().mean())

    uniform, early = share_at_start(0.0), share_at_start(1.0)
    # measured 0.10 and 0.29: a uniform start is the first of ~10-20 possible, a log-uniform
    # one with probability log 2 / log(count + 1)
    assert uniform < 0.15 and early > 0.22 and early > 2 * uniform, (uniform, early)
    with pytest.raises(ConfigError, match="log-uniform"):
        PairSampler(path, early_fraction=0.5)
    with pytest.raises(ConfigError, match="early_fraction"):
        PairSampler(path, gaps="log-uniform", early_fraction=1.5)
    with pytest.raises(ConfigError, match="log-uniform"):
        PairSampler(path, initial_fraction=0.5)
