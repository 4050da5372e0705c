"""One compose-N-jumps: FlowMap.odeint, FlowMapEnsemble, the exact map and analysis agree bit for bit."""

from __future__ import annotations

import math

import pytest
import torch

import flowsim
from flowsim.maps import compose_jumps, compose_on_grid, jump_times, n_jumps
from flowsim.testing import ExactFlowMap


def _old_flowmap_odeint(fm, x0, t, p_, hmax):
    """The loop FlowMap.odeint had before compose.py (per-sample grid in the map's dtype)."""
    if t.ndim == 1:
        t = t.expand(x0.shape[0], -1)
    out, x = [x0], x0
    for k in range(t.shape[1] - 1):
        a, b = t[:, k], t[:, k + 1]
        n_sub = max(1, math.ceil(float((b - a).abs().max()) / hmax - 1e-9))
        for j in range(n_sub):
            s_ = a + (b - a) * (j / n_sub)
            t_ = b if j == n_sub - 1 else a + (b - a) * ((j + 1) / n_sub)
            x = fm.forward(s_, t_, x, p_)
        out.append(x)
    return torch.stack(out, dim=0)


def _old_analysis_compose(fm, x, s, t, n, p, keep=False):
    """The loop analysis/_maps.compose had (float64 grid arithmetic, cast per jump)."""
    dt = fm.dtype
    x_, p_ = x.to(dt), p.to(dt)
    states = [x_]
    for k in range(n):
        a = s + (t - s) * (k / n)
        b = t if k == n - 1 else s + (t - s) * ((k + 1) / n)
        x_ = fm.forward(a.to(dt), b.to(dt), x_, p_)
        states.append(x_)
    return torch.stack(states, dim=1).double() if keep else x_.double()


@pytest.fixture(scope="module")
def lv():
    return flowsim.FlowMap("lotka_volterra", width=16, depth=2, seed=3, max_jump=0.7)


@pytest.fixture(scope="module")
def lv_ensemble():
    return flowsim.FlowMapEnsemble(
        [flowsim.FlowMap("lotka_volterra", width=16, depth=1, seed=k, max_jump=0.7) for k in (0, 1)])


def test_n_jumps():
    assert n_jumps(1.0, 0.3) == 4
    assert n_jumps(0.9000000000000001, 0.3) == 3  # round-off never adds a jump
    assert n_jumps(0.0, 0.3) == n_jumps(1e-9, 1.0) == 1
    assert n_jumps(-1.0, 0.5) == 2
    assert n_jumps(5.0, math.inf) == 1
    with pytest.raises(flowsim.ConfigError):
        n_jumps(1.0, 0.0)
    with pytest.raises(flowsim.ConfigError):
        n_jumps(1.0, float("nan"))
    with pytest.raises(flowsim.TimeGridError):
        n_jumps(float("inf"), 1.0)


@pytest.mark.parametrize("per_sample", [False, True])
def test_flowmap_and_ensemble_odeint_are_bitwise_the_old_loop(lv, lv_ensemble, per_sample):
    x0 = lv.system.sample_initial(6, generator=1).float()
    t = torch.tensor([0.0, 0.3, 1.7, 2.0, 4.1])
    if per_sample:
        t = t + torch.linspace(0, 0.5, 6)[:, None]
    for fm in (lv, lv_ensemble):
        p_ = fm.system.params_tensor(None, 6, dtype=fm.dtype)
        with torch.no_grad():
            new = fm.odeint(x0, t)
            old = _old_flowmap_odeint(fm, x0, t.float(), p_, fm.max_jump)
            direct = compose_on_grid(fm, x0, t, p_, max_jump=fm.max_jump)
        assert new.shape == (5, 6, 2)
        assert torch.equal(new, old) and torch.equal(new, direct)


def test_odeint_keeps_gradients(lv):
    x0 = lv.system.sample_initial(3, generator=2).float().requires_grad_()
    lv.odeint(x0, torch.tensor([0.0, 1.5])).sum().backward()
    assert x0.grad is not None and torch.isfinite(x0.grad).all()


def test_compose_jumps_is_bitwise_the_old_analysis_loop(lv):
    x = lv.system.sample_initial(5, generator=3)
    p = lv.system.params_tensor(None, 5, dtype=torch.float64)
    s = torch.linspace(0, 1, 5, dtype=torch.float64)
    t = s + 2.3
    for n, keep in ((1, False), (4, False), (7, True)):
        with torch.no_grad():
            new = compose_jumps(lv, x.float(), s, t, p.float(), n=n, keep=keep).double()
        old = _old_analysis_compose(lv, x, s, t, n, p, keep=keep)
        assert torch.equal(new.transpose(0, 1) if keep else new, old)


def test_exact_map_odeint_composes_like_a_flow_map():
    sho = flowsim.get_system("harmonic_oscillator")
    exact = ExactFlowMap(sho, max_jump=0.4)
    x0 = sho.sample_initial(4, generator=0)
    t = torch.tensor([0.0, 0.5, 1.0, 2.2], dtype=torch.float64)
    p = sho.params_tensor(None, 4)
    got = exact.odeint(x0, t)
    assert torch.equal(got, compose_on_grid(exact, x0, t, p, max_jump=0.4))
    # analytic flow: composition changes nothing beyond round-off
    torch.testing.assert_close(got[-1], exact.jump(x0, 0.0, 2.2), rtol=1e-12, atol=1e-12)
    # the number of jumps per interval is n_jumps(gap, max_jump): count forward calls
    calls = []
    compose_on_grid(lambda s, tt, x, p: calls.append(1) or exact.forward(s, tt, x, p), x0, t, p, max_jump=0.4)
    assert len(calls) == sum(n_jumps(float(b - a), 0.4) for a, b in zip(t[:-1], t[1:])) == 2 + 2 + 3


def test_analysis_error_vs_steps_uses_the_same_composition(lv):
    """error_vs_steps with N jumps equals compose_jumps / FlowMap.odeint on a grid of N + 1 points."""
    sys_ = lv.system
    x0 = sys_.sample_initial(8, generator=5)
    ref = flowsim.reference_solve(sys_, x0, torch.linspace(0, 2.8, 29, dtype=torch.float64))
    ds = flowsim.analysis.error_vs_steps(lv, ref, horizon=2.8, n_steps=[4])
    with torch.no_grad():
        pred = compose_jumps(lv, x0.float(), 0.0, 2.8, sys_.params_tensor(None, 8, dtype=torch.float32), n=4)
        via_odeint = lv.odeint(x0.float(), torch.tensor([0.0, 2.8]), max_jump=0.7)[-1]
    assert torch.equal(pred, via_odeint)
    rel = flowsim.metrics.relative_error(pred, ref.x[:, -1])
    assert float(ds.median_relative_error.sel(n_steps=4)) == flowsim.metrics.summarise_errors(rel, ())[0]


def test_bad_inputs_raise_flowsim_errors(lv):
    x = torch.ones(3, 2)
    p = lv.system.params_tensor(None, 3, dtype=torch.float32)
    with pytest.raises(flowsim.ShapeError):
        compose_jumps(lv, torch.ones(2), 0.0, 1.0, p)
    with pytest.raises(flowsim.ShapeError):
        compose_jumps(lv, x, torch.zeros(2), 1.0, p)
    with pytest.raises(flowsim.ConfigError):
        compose_jumps(lv, x, 0.0, 1.0, p, n=0)
    with pytest.raises(flowsim.ConfigError):
        compose_jumps(object(), x, 0.0, 1.0, p)
    with pytest.raises(flowsim.TimeGridError):
        compose_on_grid(lv, x, torch.zeros(2, 2, 2), p, max_jump=1.0)
    with pytest.raises(flowsim.TimeGridError):
        compose_on_grid(lv, x, torch.zeros(2, 4), p, max_jump=1.0)
    with pytest.raises(flowsim.ConfigError):
        lv.odeint(x, torch.tensor([0.0, 1.0]), max_jump=-1.0)
    with pytest.raises(flowsim.ConfigError):
        ExactFlowMap("harmonic_oscillator").odeint(torch.ones(2, 2, dtype=torch.float64),
                                                   torch.tensor([0.0, 1.0]), max_jump=0.0)


def test_jump_times_are_the_times_compose_jumps_takes():
    s = torch.tensor([0.0, 0.1, 0.2], dtype=torch.float64)
    t = s + 1.3
    grid = jump_times(s, t, 3)
    assert grid.shape == (4, 3) and torch.equal(grid[0], s) and torch.equal(grid[-1], t)
    seen = []
    compose_jumps(lambda a, b, x, p: seen.append((a, b)) or x, torch.zeros(3, 1), s, t, None, n=3)
    assert all(torch.equal(a, grid[k].float()) and torch.equal(b, grid[k + 1].float())
               for k, (a, b) in enumerate(seen))
    assert jump_times(0.0, 2.0, 2, batch=4).shape == (3, 4)
    with pytest.raises(flowsim.ConfigError):
        jump_times(0.0, 1.0, 0)
    with pytest.raises(flowsim.ShapeError):
        jump_times(torch.zeros(2), torch.ones(3), 2)
