"""Issue 18, maps layer: empty batches, complex times, jumps beyond what the map was trained for
(warn and compose by default, refuse in strict mode) and odeint grids that would never finish."""

from __future__ import annotations

import time
import warnings

import pytest
import torch

import flowsim
from flowsim import ConfigError, ExtrapolationWarning, ShapeError, TimeGridError
from flowsim.maps import FlowMapEnsemble, compose_jumps, compose_on_grid, n_jumps
from flowsim.maps.compose import MAX_COMPOSED_JUMPS


@pytest.fixture()
def fm():
    """A map 'trained' for jumps up to 1.0 (longest trained gap 1.1, as fit records it)."""
    m = flowsim.FlowMap("lotka_volterra", width=8, depth=1, max_jump=1.0)
    m.training_record = {"trained_max_gap": 1.1}
    return m


def _x(n=3):
    return torch.ones(n, 2) + 0.1 * torch.arange(n)[:, None]


def test_jump_limit_is_the_trained_gap_plus_five_percent(fm):
    assert fm.jump_limit == pytest.approx(1.155)
    fresh = flowsim.FlowMap("lotka_volterra", width=8, depth=1, max_jump=2.0)
    assert fresh.jump_limit == pytest.approx(2.1)  # untrained: max_jump + 5 %


def test_empty_batch_is_refused(fm):
    with pytest.raises(ShapeError, match="empty batch"):
        fm.jump(torch.zeros(0, 2), 0.0, 1.0)
    with pytest.raises(ShapeError, match="empty batch"):
        fm.odeint(torch.zeros(0, 2), torch.linspace(0, 1, 3))


def test_complex_inputs_are_refused(fm):
    with pytest.raises(ShapeError, match="x is complex"):
        fm.jump(_x().to(torch.complex64), 0.0, 1.0)
    with pytest.raises(TimeGridError, match="s is complex"):
        fm.jump(_x(), torch.tensor(1j), 1.0)
    with pytest.raises(TimeGridError, match="t is complex"):
        fm.jump(_x(), 0.0, 0.5 + 0.5j)
    with pytest.raises(TimeGridError, match="t is complex"):
        fm.odeint(_x(), torch.linspace(0, 1, 3).to(torch.complex64))
    with pytest.raises(flowsim.ParameterError, match="complex"):
        fm.jump(_x(), 0.0, 1.0, torch.ones(4, dtype=torch.complex64))
    with pytest.raises(ConfigError, match="max_jump is complex"):
        fm.odeint(_x(), torch.linspace(0, 1, 3), max_jump=1j)


def test_jump_within_the_trained_range_does_not_warn(fm):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fm.jump(_x(), 0.0, 1.15)
        fm.jump(_x(), 0.0, torch.tensor([0.1, 1.1, 0.0]))


def test_long_jump_warns_and_composes_by_default(fm):
    x = _x()
    with pytest.warns(ExtrapolationWarning, match=r"longer than this map was trained for.*composed 3"):
        out = fm.jump(x, 0.0, 2.5)
    p = fm.system.params_tensor(None, 3, dtype=fm.dtype)
    assert torch.equal(out, compose_jumps(fm, x, 0.0, 2.5, p, n=3))
    assert torch.allclose(out, fm.odeint(x, torch.tensor([0.0, 2.5]))[-1], atol=1e-6)


def test_long_jump_is_refused_in_strict_mode(fm):
    with pytest.raises(TimeGridError, match="longer than this map was trained for"):
        fm.jump(_x(), 0.0, 2.5, allow_extrapolation=False)
    with pytest.raises(TimeGridError, match="jump_limit"):
        fm.jump(_x(), torch.zeros(3), torch.tensor([0.5, 0.5, 1.6]), allow_extrapolation=False)
    fm.jump(_x(), 0.0, 1.0, allow_extrapolation=False)  # within range: fine


def test_long_jump_extrapolates_silently_when_allowed(fm):
    x = _x()
    p = fm.system.params_tensor(None, 3, dtype=fm.dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = fm.jump(x, 0.0, 2.5, allow_extrapolation=True)
    assert torch.equal(out, fm(torch.zeros(3), torch.full((3,), 2.5), x, p))


def test_allow_extrapolation_must_be_none_or_a_bool(fm):
    with pytest.raises(ConfigError, match="allow_extrapolation must be None, True or False"):
        fm.jump(_x(), 0.0, 1.0, allow_extrapolation="yes")


def test_parameters_outside_the_prior_still_refused_by_default(fm):
    with pytest.raises(flowsim.ParameterError, match="allow_extrapolation=True"):
        fm.jump(_x(), 0.0, 1.0, torch.full((4,), 100.0))


def test_odeint_with_a_max_jump_beyond_training(fm):
    t = torch.linspace(0, 4, 3)
    with pytest.warns(ExtrapolationWarning, match="max_jump=2 is longer"):
        fm.odeint(_x(), t, max_jump=2.0)
    with pytest.raises(TimeGridError, match="max_jump=2 is longer"):
        fm.odeint(_x(), t, max_jump=2.0, allow_extrapolation=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fm.odeint(_x(), t, max_jump=2.0, allow_extrapolation=True)
        fm.odeint(_x(), t)  # its own max_jump: no warning


def test_ensemble_composes_long_jumps_too():
    members = []
    for k in range(2):
        m = flowsim.FlowMap("lotka_volterra", width=8, depth=1, max_jump=1.0, seed=k)
        m.training_record = {"trained_max_gap": 1.1}
        with torch.no_grad():  # an untrained head is zero: make the members differ
            for w in m.parameters():
                w.add_(0.1 * torch.randn(w.shape, generator=torch.Generator().manual_seed(k)))
        members.append(m)
    ens = FlowMapEnsemble(members)
    assert ens.jump_limit == pytest.approx(1.155)
    x = _x()
    with pytest.warns(ExtrapolationWarning):
        X, spread = ens.jump_with_spread(x, 0.0, 2.5)
    with pytest.warns(ExtrapolationWarning):
        assert torch.allclose(X, ens.jump(x, 0.0, 2.5))
    assert spread.shape == (3,) and bool((spread > 0).all())
    with pytest.raises(TimeGridError):
        ens.jump_with_spread(x, 0.0, 2.5, allow_extrapolation=False)


@pytest.mark.timeout(60)
def test_odeint_that_would_take_over_1e7_jumps_is_refused_at_once(fm):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"would take 1e\+09 jumps"):
        fm.odeint(_x(), torch.tensor([0.0, 1e9]), allow_extrapolation=True)
    with pytest.raises(ConfigError, match="would take"):
        fm.odeint(_x(), torch.tensor([0.0, 1.0]), max_jump=1e-12)
    with pytest.raises(ConfigError, match="would take inf jumps"):
        fm.odeint(_x(), torch.tensor([0.0, 1.0]), max_jump=1e-320)
    with pytest.raises(ConfigError, match="too small"):
        n_jumps(1.0, 1e-320)  # the count itself overflows (a raw OverflowError before)
    assert time.perf_counter() - start < 5  # refused before the first jump
    assert MAX_COMPOSED_JUMPS == 10**7


def test_compose_on_grid_counts_the_jumps_of_all_intervals():
    step = lambda s, t, x, p: x  # noqa: E731
    x0 = torch.ones(2, 1, dtype=torch.float64)
    grid = torch.linspace(0, 1, 11, dtype=torch.float64)  # 10 intervals of 0.1
    assert compose_on_grid(step, x0, grid, torch.zeros(2, 0), max_jump=0.1).shape == (11, 2, 1)
    with pytest.raises(ConfigError, match="would take 1.1e\\+07 jumps"):
        compose_on_grid(step, x0, grid, torch.zeros(2, 0), max_jump=1e-7 / 1.1)


def test_a_log_standardised_state_refuses_zero_and_data_do_not_log_a_state_that_starts_at_zero():
    """SIR's recovered class starts at 0: fit must not log-standardise it however its data span,
    and a map that logs a state refuses a zero there instead of jumping from log(0)."""
    sys_ = flowsim.get_system("sir")
    x = sys_.sample_initial(16, generator=0)
    x[0, 2] = 1e-4                          # R spans four decades in the data
    sol = flowsim.reference_solve(sys_, x, torch.linspace(0, 40, 21))
    fm = flowsim.FlowMap(sys_, width=8, depth=1)
    flowsim.fit(fm, "pairs", sol, steps=2, batch_size=32, progress=False)
    assert fm.state_transform.log_mask.tolist()[2] is False
    x0 = torch.tensor([[0.99, 0.01, 0.0]])
    assert torch.isfinite(fm.jump(x0, 0.0, 5.0)).all()
    logged = flowsim.FlowMap(sys_, width=8, depth=1, log_states=[False, True, True])
    with pytest.raises(ShapeError, match="state R = 0 .* log-standardises R"):
        logged.jump(x0, 0.0, 5.0)


def test_states_far_from_those_the_map_was_fitted_for_are_an_extrapolation():
    fm = flowsim.FlowMap("fitzhugh_nagumo", width=8, depth=1, seed=0)
    x = fm.system.sample_initial(4, 0).float()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fm.jump(x, 0.0, 1.0)  # the initial-state prior itself: nothing to say
    far = x.clone()
    far[2] *= 100
    with pytest.warns(flowsim.ExtrapolationWarning, match=r"row 2; 1 of 4 rows\) lies more than 10 "):
        fm.jump(far, 0.0, 1.0)
    with pytest.raises(flowsim.ShapeError, match="standard deviations"):
        fm.jump(far, 0.0, 1.0, allow_extrapolation=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fm.jump(far, 0.0, 1.0, allow_extrapolation=True)


def test_velocity_is_checked_like_jump_and_times_must_be_numbers():
    fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1, seed=0)
    x = fm.system.sample_initial(5, 1).float()
    p = fm.system.default_params(5).float()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.func's deprecation chatter is not the user's
        v = fm.velocity(torch.zeros(5), x, p)
    assert torch.equal(fm.velocity(0.0, x), v) and torch.equal(fm.velocity(0.0, x, p[0]), v)
    with pytest.raises(flowsim.ShapeError, match="computes in torch.float32"):
        fm.velocity(torch.zeros(5), x.double(), p.double())
    with pytest.raises(flowsim.ParameterError, match="trained range"):
        fm.velocity(0.0, x, p * 100)
    for bad in ("0", None):
        with pytest.raises(flowsim.TimeGridError, match="must be a number or a"):
            fm.jump(x, bad, 1.0)


def test_log_states_the_user_chose_survive_training_and_a_checkpoint(tmp_path):
    """``log_states=False`` on a positive system is kept by ``fit`` (which otherwise logs states
    whose data span two decades) and by a save/load round trip; ``"auto"`` still logs them."""
    sys_ = flowsim.get_system("repressilator")
    sol = flowsim.reference_solve(sys_, sys_.sample_initial(8, generator=0), torch.linspace(0, 20, 11))
    auto = flowsim.FlowMap(sys_, width=8, depth=1)
    linear = flowsim.FlowMap(sys_, width=8, depth=1, log_states=False)
    for fm in (auto, linear):
        flowsim.fit(fm, "pairs", sol, steps=2, batch_size=32, progress=False)
    assert auto.state_transform.log_mask.all() and not auto.config.log_states_fixed
    assert not linear.state_transform.log_mask.any() and linear.config.log_states == [False] * 6
    flowsim.save(linear, tmp_path / "m")
    back = flowsim.load(tmp_path / "m")
    assert back.config.log_states_fixed and not back.state_transform.log_mask.any()
    flowsim.fit(back, "pairs", sol, steps=2, batch_size=32, progress=False)
    assert not back.state_transform.log_mask.any()
    flowsim.save(auto, tmp_path / "a")
    assert not flowsim.load(tmp_path / "a").config.log_states_fixed
