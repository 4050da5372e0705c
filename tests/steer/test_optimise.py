"""optimise: multi-start reward maximisation through a map, checked by the solver; controls; bad input."""

from __future__ import annotations

import math

import pytest
import torch

import flowsim
from flowsim.steer import Control, Variables, optimise, predictor

TARGET = torch.tensor([0.3, -0.5], dtype=torch.float64)
T = 1.5


@pytest.fixture(scope="module")
def trained_ho():
    sys_ = flowsim.get_system("harmonic_oscillator")
    sol = flowsim.reference_solve(sys_, sys_.sample_initial(64, generator=0), torch.linspace(0, 8, 41),
                                  sys_.sample_params(64, 1))
    fm = flowsim.FlowMap(sys_, width=32, depth=2, max_jump=2.0, tangent=True)
    # the optimum's start lies anywhere in the box, not mostly at initial states: starts spread
    # along the trajectories (early_fraction 0.25, initial_fraction 0; the defaults 1.0 and 0.3
    # left this tiny map 0.11 and, with early_fraction 0.25 alone, 0.14 off)
    flowsim.fit(fm, "pairs", sol, steps=1000, batch_size=256, lr=3e-3, max_jump=2.0, progress=False,
                early_fraction=0.25, initial_fraction=0.0)
    return fm


def _to_target(x, v):
    return -((x[:, -1] - TARGET.to(x)) ** 2).sum(-1)


def test_optimise_reaches_a_target_state_through_the_map(trained_ho):
    ds = optimise(trained_ho, _to_target, ["x0.q", "x0.v"], times=[T], starts=8, steps=150, lr=0.1)
    assert ds.attrs["model"] == "map" and ds.value.shape == (8, 2)
    # the map's own optimum is reached (the target is inside the initial-state box) ...
    assert float(ds.reward_model) > -1e-5
    # ... and lies within the tiny map's error (about 10 % at this jump) of the true answer:
    # the target rotated back by ω T (ω = 1)
    c, s = math.cos(T), math.sin(T)
    truth = [0.3 * c - (-0.5) * s, 0.3 * s + (-0.5) * c]
    assert abs(float(ds.best[0]) - truth[0]) < 0.08 and abs(float(ds.best[1]) - truth[1]) < 0.08
    # the solver's check is the true reward of the winner (analytic flow from best)
    q0, v0 = float(ds.best[0]), float(ds.best[1])
    end = torch.tensor([q0 * c + v0 * s, -q0 * s + v0 * c], dtype=torch.float64)
    # (dopri5 at rtol 1e-8: its global error after T reaches ~1e-7, ten times the local one, and
    # moves the reward, a squared distance of ~1e-4, by a few 1e-9)
    assert float(ds.reward_solver) == pytest.approx(-float(((end - TARGET) ** 2).sum()), abs=2e-8)
    torch.testing.assert_close(torch.as_tensor(ds.states_solver.values[-1]), end, rtol=1e-6, atol=1e-8)
    assert float(ds.history[-1]) >= float(ds.history[0])


def test_control_rollout_composes_intervals_exactly():
    """ω piecewise constant: the rollout equals the analytic composition of two rotations."""
    var = Variables("harmonic_oscillator", [Control("omega", [0.0, 1.0, 2.5])])
    vals = torch.tensor([[0.8, 1.6]], dtype=torch.float64)
    times = torch.tensor([0.5, 1.0, 2.0, 2.5], dtype=torch.float64)
    x0 = torch.tensor([1.0, 0.2], dtype=torch.float64)
    xs = var.rollout(predictor("harmonic_oscillator"), vals, times, x0=x0)

    def flow(x, w, d):
        c, s = math.cos(w * d), math.sin(w * d)
        return torch.stack([x[0] * c + x[1] / w * s, -x[0] * w * s + x[1] * c])

    x1 = flow(x0, 0.8, 1.0)
    expected = torch.stack([flow(x0, 0.8, 0.5), x1, flow(x1, 1.6, 1.0), flow(x1, 1.6, 1.5)])
    torch.testing.assert_close(xs[0], expected, rtol=1e-6, atol=1e-7)
    assert var.columns == ("omega[0]", "omega[1]")


def test_optimise_controls_through_the_solver():
    """Least ω in the first interval, the most in the second, when the reward says so."""
    def reward(x, v):
        return v["omega"][:, 1] - v["omega"][:, 0] - 0.0 * x.sum((1, 2))
    ds = optimise("harmonic_oscillator", reward, [Control("omega", [0.0, 0.5, 1.0])], times=[1.0],
                  starts=2, steps=40, lr=0.5)
    assert ds.attrs["model"] == "solver"
    assert float(ds.best[0]) < 0.55 and float(ds.best[1]) > 1.95  # prior (0.5, 2.0)
    assert float(ds.reward_solver) == pytest.approx(float(ds.reward_model), abs=1e-12)


@pytest.mark.parametrize("reward, match", [
    (lambda x, v: x[:, :, 0], "one scalar per sample"),
    (lambda x, v: x.sum(), "one scalar per sample"),
    (lambda x, v: x[:, -1, 0] * float("nan"), "NaN"),
    (lambda x, v: x[:, -1, 0].detach(), "no gradient"),
    (lambda x, v: x[:, -1, 0].detach().numpy(), "torch tensor"),
    (lambda x, v: x[:, -1, 7], r"reward\(x, v\) raised IndexError: .* \(its arguments: \(2, 1, 2\)"),
])
def test_bad_rewards_are_refused(reward, match):
    with pytest.raises(flowsim.ConfigError, match=match):
        optimise("harmonic_oscillator", reward, ["x0.q"], times=[0.5], starts=2, steps=1)


def test_bad_variables_bounds_times_and_options(trained_ho):
    r = _to_target
    with pytest.raises(flowsim.ParameterError, match="unknown variable"):
        optimise(trained_ho, r, ["nope"], times=[1.0], steps=1)
    with pytest.raises(flowsim.ParameterError, match="trained range"):
        optimise(trained_ho, r, ["omega"], times=[1.0], bounds={"omega": (0.1, 1.0)}, steps=1)
    with pytest.raises(flowsim.ParameterError, match="low < high"):
        optimise(trained_ho, r, ["omega"], times=[1.0], bounds={"omega": (1.5, 1.0)}, steps=1)
    with pytest.raises(flowsim.TimeGridError, match="increasing"):
        optimise(trained_ho, r, ["omega"], times=[1.0, 0.5], steps=1)
    with pytest.raises(flowsim.TimeGridError, match="edges"):
        optimise(trained_ho, r, [Control("omega", [0.5, 1.0])], times=[1.0], steps=1)
    with pytest.raises(flowsim.TimeGridError, match="increasing"):
        Control("omega", [1.0, 0.5])
    with pytest.raises(flowsim.ConfigError, match="starts"):
        optimise(trained_ho, r, ["omega"], times=[1.0], starts=0)
    with pytest.raises(flowsim.ConfigError, match="unknown optimise option"):
        optimise(trained_ho, r, ["omega"], times=[1.0], stepz=3)
