"""error_vs_jump and error_vs_steps on exact and deliberately perturbed flow maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

import flowsim
from flowsim.analysis import METRICS, ExactFlowMap, error_vs_jump, error_vs_steps

EPS = 1e-3
GAP = 2 * math.pi / 64  # stored gap of the sho_ref fixture


def _scaled(sho, eps=EPS):
    """X = (1 + ε) X_exact: relative error exactly ε per jump, (1 + ε)^N − 1 after N jumps."""
    return ExactFlowMap(sho, perturbation=lambda s, t, x, p: eps * ExactFlowMap(sho)(s, t, x, p))


def test_exact_map_has_zero_error_vs_jump(exact, sho_ref):
    ds = error_vs_jump(exact, sho_ref, n_jumps=6, n_starts=4)
    assert ds.sizes["jump"] >= 4
    for name in ("median_relative_error", "median_normalised_error"):
        assert float(ds[name].max()) <= 1e-6
    assert float(ds.relative_error_quantiles.max()) <= 1e-6
    # every result says which metric is which
    assert ds.median_relative_error.attrs["metric"] == "relative_error"
    assert ds.median_normalised_error.attrs["description"] == METRICS["normalised_error"]
    assert "metric_relative_error" in ds.attrs and ds.attrs["time_units"] == "s"
    # default grid: from ≥ 1 % of the timescale up to the largest trained/available jump
    assert float(ds.jump.min()) >= 0.01 * exact.system.timescale - 1e-12
    assert float(ds.jump.max()) == pytest.approx(exact.max_jump, rel=1e-6)


def test_relative_perturbation_gives_its_size(sho, sho_ref):
    ds = error_vs_jump(_scaled(sho), sho_ref, jumps=[0.5, 1.0, 3.0], n_starts=5)
    np.testing.assert_allclose(ds.median_relative_error.values, EPS, rtol=1e-5)
    np.testing.assert_allclose(ds.relative_error_quantiles.values, EPS, rtol=1e-5)


def test_constant_offset_gives_known_normalised_and_relative_error(sho, sho_ref):
    c = torch.tensor([1.0, -2.0], dtype=torch.float64)
    fm = ExactFlowMap(sho, perturbation=lambda s, t, x, p: EPS * c.expand_as(x))
    ds = error_vs_jump(fm, sho_ref, jumps=[GAP * 8], n_starts=None)
    sigma = sho_ref.x.reshape(-1, 2).std(dim=0)
    expected_norm = EPS * float(torch.sqrt(((c / sigma) ** 2).mean()))
    assert float(ds.median_normalised_error[0]) == pytest.approx(expected_norm, rel=1e-6)
    # relative: ε‖c‖ / ‖x_ref‖ over every stored end state 8 gaps after a start
    ends = sho_ref.x[:, 8:].reshape(-1, 2)
    expected_rel = np.median((EPS * c.norm() / ends.norm(dim=1)).numpy())
    assert float(ds.median_relative_error[0]) == pytest.approx(expected_rel, rel=1e-5)
    assert int(ds.n_samples[0]) == ends.shape[0]


def test_per_start_and_per_param(exact, sho_ref):
    ds = error_vs_jump(exact, sho_ref, jumps=[GAP, 4 * GAP], per_start=True, per_param=True,
                       n_bins=3)
    assert ds.median_relative_error_by_start.dims == ("jump", "start_bin")
    assert ds.median_relative_error_by_param.dims == ("jump", "param", "param_bin")
    np.testing.assert_array_equal(ds.n_samples_by_start.sum("start_bin"), ds.n_samples)
    np.testing.assert_array_equal(ds.n_samples_by_param.sum("param_bin").sel(param="omega"), ds.n_samples)
    assert float(ds.median_normalised_error_by_param.max()) <= 1e-6


def test_store_dataset_reference_skips_failed_trajectories(exact, sho, sho_ref):
    x = sho_ref.x.clone()
    x[3] = float("nan")
    status = sho_ref.status.clone()
    status[3] = int(flowsim.Status.NONFINITE)
    ds_ref = xr.Dataset(
        {"x": (("trajectory", "time", "state"), x.numpy()),
         "params": (("trajectory", "param"), sho_ref.p.numpy().copy()),
         "status": ("trajectory", status.numpy())},
        coords={"time": sho_ref.t.numpy().copy(), "state": list(sho.state_names),
                "param": list(sho.param_names)},
        attrs={"system": "harmonic_oscillator"},
    )
    ds = error_vs_jump(exact, ds_ref, n_jumps=4)
    assert ds.attrs["n_reference_skipped"] == 1
    assert ds.attrs["n_reference_trajectories"] == sho_ref.x.shape[0] - 1
    assert float(ds.median_relative_error.max()) <= 1e-6


def test_per_trajectory_time_grids(exact, sho):
    x0 = sho.sample_initial(6, generator=3)
    t = torch.linspace(0, 4, 41, dtype=torch.float64) + torch.arange(6, dtype=torch.float64)[:, None] * 0.37
    ref = flowsim.reference_solve(sho, x0, t, rtol=1e-11, atol=1e-12)
    ds = error_vs_jump(exact, ref, jumps=[0.5, 2.0])
    assert (ds.n_samples > 0).all()
    assert float(ds.median_relative_error.max()) <= 1e-6
    steps = error_vs_steps(exact, ref, horizon=3.0, n_steps=(1, 3))
    assert float(steps.median_relative_error.max()) <= 1e-6


def test_real_float32_flowmap_is_accepted(sho, sho_ref):
    fm = flowsim.FlowMap(sho, width=16, depth=1)
    ds = error_vs_jump(fm, sho_ref, n_jumps=3, n_starts=2)
    assert np.isfinite(ds.median_relative_error.values).all()
    assert ds.attrs["flowmap_dtype"] == "float32"


def test_exact_map_has_zero_error_vs_steps(exact, sho_ref):
    ds = error_vs_steps(exact, sho_ref, horizon=2 * math.pi, n_steps=(1, 2, 4, 8, 16, 32))
    assert ds.n_steps.values.tolist() == [1, 2, 4, 8, 16, 32]
    np.testing.assert_allclose(ds.jump.values, 2 * math.pi / ds.n_steps.values)
    assert float(ds.median_relative_error.max()) <= 1e-6
    assert float(ds.median_normalised_error.max()) <= 1e-6


def test_error_vs_steps_accumulates_a_known_per_jump_error(sho, sho_ref):
    ds = error_vs_steps(_scaled(sho), sho_ref, horizon=math.pi, n_steps=(1, 2, 4, 8))
    expected = (1 + EPS) ** ds.n_steps.values - 1
    np.testing.assert_allclose(ds.median_relative_error.values, expected, rtol=1e-5)
    assert ds.attrs["best_n_steps"] == 1


def test_error_vs_steps_default_counts_respect_max_jump(sho, sho_ref):
    fm = ExactFlowMap(sho, max_jump=1.0)
    ds = error_vs_steps(fm, sho_ref, horizon=math.pi)
    assert ds.n_steps.values.tolist() == [4, 8, 16, 32, 64, 128]


def test_float32_time_grid_gives_no_near_duplicate_jumps(sho):
    """torch.linspace's float32 grid makes equal gaps differ in their last digits."""
    x0 = sho.sample_initial(4, generator=0)
    ref = flowsim.reference_solve(sho, x0, torch.linspace(0, 4 * sho.timescale, 401))
    jumps = error_vs_jump(ExactFlowMap(sho, max_jump=sho.timescale / 2), ref).jump.values
    assert np.all(np.diff(np.log(jumps)) > 1e-3), jumps


def test_from_start_jumps_start_at_the_initial_states(sho, sho_ref):
    """A map exact for jumps from t = 0 and 10 % off elsewhere: zero error from the initial
    states, 10 % along the trajectories."""
    fm = ExactFlowMap(sho, perturbation=lambda s, t, x, p: 0.1 * (s > 0)[:, None] * x)
    start = error_vs_jump(fm, sho_ref, n_jumps=4, from_start=True)
    along = error_vs_jump(fm, sho_ref, n_jumps=4)
    assert float(start.median_relative_error.max()) < 1e-8
    # (the longest jump spans the whole stored period, so it can only start at t = 0)
    assert float(along.median_relative_error[:-1].min()) > 0.05
    assert (start.n_samples == sho_ref.x.shape[0]).all()  # one jump per trajectory
    assert start.attrs["starts"] == "initial states"
