"""One sampler for both data paths: the in-memory ``TrajectoryBank`` and the streamed
``PairSampler`` draw the same distribution of gaps, start times and early starts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from scipy.stats import ks_2samp

from flowsim.data import PairOptions, PairSampler, from_arrays, open_store
from flowsim.errors import ConfigError
from flowsim.train import TrajectoryBank

N_PER_TRAJECTORY = 400  # 48 trajectories: 19,200 pairs per path


@pytest.fixture(scope="module")
def stores(fhn_store, tmp_path_factory):
    """The FHN store (one shared grid) and the same states on grids shifted per trajectory."""
    ds = xr.open_zarr(fhn_store, consolidated=False)
    t = ds.time.values[None, :] + 0.1 * np.arange(ds.sizes["trajectory"])[:, None]
    shifted = tmp_path_factory.mktemp("sampling") / "shifted.zarr"
    from_arrays("fitzhugh_nagumo", ds.x.values, t, params=ds.params.values, store=shifted, chunk_size=16)
    return {"shared": fhn_store, "per-trajectory": shifted}


def _describe(path, s, t, p):
    """Gap, start time after the trajectory's first stored time, start index of each pair."""
    ds = open_store(path)
    times = ds["t"].values if "t" in ds else np.broadcast_to(ds["time"].values, ds["x"].shape[:2])
    params = ds["params"].values
    assert len({row.tobytes() for row in params}) == len(params)  # a trajectory's parameters name it
    row_of = {row.tobytes(): k for k, row in enumerate(params)}
    k = np.array([row_of[row.tobytes()] for row in p.numpy()])
    s, t = s.numpy(), t.numpy()
    i = np.array([np.searchsorted(times[kk], ss) for kk, ss in zip(k, s)])
    np.testing.assert_array_equal(times[k, i], s)  # starts are stored times
    return {"gap": t - s, "start": s - times[k, 0], "index": i}


def _bank_pairs(path, n, seed, **options):
    bank = TrajectoryBank.from_dataset(open_store(path))
    b = bank.sample_pairs(n, torch.Generator().manual_seed(seed), **options)
    return _describe(path, b.s, b.t, b.p)


def _streamed_pairs(path, seed, **options):
    sampler = PairSampler(path, batch_size=4096, split="all", gaps="log-uniform", seed=seed,
                          pairs_per_trajectory=N_PER_TRAJECTORY, dtype=torch.float64, **options)
    batches = list(sampler)
    cat = {k: torch.cat([b[k] for b in batches]) for k in ("s", "t", "p")}
    return _describe(path, cat["s"], cat["t"], cat["p"])


OPTIONS = [
    dict(),  # the defaults: all gaps log-uniform, uniform starts
    dict(min_gap=0.5, max_gap=5.0, log_fraction=0.2, early_fraction=0.25),  # fit's recipe
    dict(min_gap=1.0, max_gap=4.2, log_fraction=0.0, early_fraction=1.0),
    dict(max_gap=8.0, log_fraction=0.5, early_fraction=0.5),
    dict(min_gap=0.5, max_gap=5.0, log_fraction=0.2, early_fraction=1.0, initial_fraction=0.3),
]


def _name(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"


@pytest.mark.parametrize("grid", ["shared", "per-trajectory"])
@pytest.mark.parametrize("options", OPTIONS, ids=_name)
def test_both_data_paths_draw_the_same_distribution(stores, grid, options):
    path = stores[grid]
    streamed = _streamed_pairs(path, seed=1, **options)
    n = len(streamed["gap"])
    assert n == 48 * N_PER_TRAJECTORY
    memory = _bank_pairs(path, n, seed=2, **options)
    # two-sample KS on gaps and start times (discrete: the test is conservative); with 19,200
    # draws a side p < 1e-3 means D > 0.02 — a shift of 2 % of the probability mass
    for key in ("gap", "start"):
        res = ks_2samp(memory[key], streamed[key])
        assert res.pvalue > 1e-3, (key, res)
    # early starts (the first stored state): binomial σ ≈ 0.003 at these shares; 0.015 is 5 σ
    first_m, first_s = (memory["index"] == 0).mean(), (streamed["index"] == 0).mean()
    assert abs(first_m - first_s) < 0.015, (first_m, first_s)
    # both stay in the limits (gaps snapped up: at most one 0.5 step past max_gap)
    for d in (memory, streamed):
        assert d["gap"].min() >= (options.get("min_gap") or 0.5) - 1e-9
        assert d["gap"].max() <= (options.get("max_gap") or 10.0) + 0.5 + 1e-9


def test_the_comparison_sees_a_different_option(stores):
    """The thresholds above are not vacuous: a different log_fraction or early_fraction on one
    path fails them by far (the streamed path ignored log_fraction before both shared a draw)."""
    path = stores["shared"]
    memory = _bank_pairs(path, 48 * N_PER_TRAJECTORY, seed=2, min_gap=0.5, max_gap=5.0, log_fraction=0.2)
    streamed = _streamed_pairs(path, seed=1, min_gap=0.5, max_gap=5.0, log_fraction=1.0)
    assert ks_2samp(memory["gap"], streamed["gap"]).pvalue < 1e-6
    early = _streamed_pairs(path, seed=1, min_gap=0.5, max_gap=5.0, log_fraction=0.2, early_fraction=0.25)
    assert ks_2samp(memory["start"], early["start"]).pvalue < 1e-6


def test_one_validation_for_both_paths(fhn_store):
    bank = TrajectoryBank.from_dataset(open_store(fhn_store))
    g = torch.Generator().manual_seed(0)
    bad = [({"log_fraction": 1.5}, "log_fraction"), ({"early_fraction": -0.1}, "early_fraction"),
           ({"min_gap": 3.0, "max_gap": 2.0}, "exceeds"), ({"max_gap": 0.0}, "positive"),
           ({"min_gap": float("nan")}, "min_gap"), ({"early_fraction": True}, "early_fraction"),
           ({"initial_fraction": 1.01}, "initial_fraction"),
           ({"initial_fraction": "0.3"}, "initial_fraction")]
    for kwargs, match in bad:
        for make in (PairOptions, lambda **kw: bank.sample_pairs(4, g, **kw),
                     lambda **kw: PairSampler(fhn_store, gaps="log-uniform", **kw)):
            with pytest.raises(ConfigError, match=match):
                make(**kwargs)
    with pytest.raises(ConfigError, match="no two stored times"):
        bank.sample_pairs(4, g, min_gap=20.0)
    with pytest.raises(ConfigError, match="no two stored times"):
        PairSampler(fhn_store, gaps="log-uniform", min_gap=20.0)
    # a jump shorter than the stored step snaps up to one step on both paths (validation uses it)
    b = bank.sample_pairs(64, g, max_gap=0.1)
    assert ((b.t - b.s) == 0.5).all()
    short = next(iter(PairSampler(fhn_store, gaps="log-uniform", max_gap=0.1, split="all")))
    assert torch.allclose(short["t"] - short["s"], torch.tensor(0.5))
    with pytest.raises(ConfigError, match="log-uniform"):  # uniform pairs take neither fraction
        PairSampler(fhn_store, log_fraction=0.2)
    assert PairSampler(fhn_store, gaps="log-uniform").options == PairOptions()


@pytest.mark.parametrize("grid", ["shared", "per-trajectory"])
def test_initial_fraction_starts_exactly_at_the_first_stored_state(stores, grid):
    """``initial_fraction`` puts that share of the starts at index 0 on top of the other draws;
    0 leaves the draw unchanged (the same pairs from the same seed)."""
    bank = TrajectoryBank.from_dataset(open_store(stores[grid]))
    n = 20_000

    def share(**options):
        b = bank.sample_pairs(n, torch.Generator().manual_seed(5), min_gap=0.5, max_gap=5.0, **options)
        return b, _describe(stores[grid], b.s, b.t, b.p)

    b0, base = share(early_fraction=1.0)
    b1, same = share(early_fraction=1.0, initial_fraction=0.0)
    assert torch.equal(b0.s, b1.s) and torch.equal(b0.x_t, b1.x_t)
    _, all_first = share(initial_fraction=1.0)
    assert (all_first["index"] == 0).all()
    _, some = share(early_fraction=1.0, initial_fraction=0.5)
    f0, f1 = (base["index"] == 0).mean(), (some["index"] == 0).mean()
    # expected f0 + 0.5 (1 - f0); binomial σ < 0.004 at n = 20,000
    assert abs(f1 - (f0 + 0.5 * (1 - f0))) < 0.02, (f0, f1)
    assert (some["gap"] >= 0.5 - 1e-9).all()
