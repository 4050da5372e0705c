"""The steering guards a review found missing: the data's initial states and fixed values against
the map's trained range, long jumps with on_outside="warn", the parameters held fixed in the
report's curves, the prior of a posterior, the solver check acted on, and bad small inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import flowsim
from flowsim.steer import (
    Noise,
    Observations,
    PosteriorConfig,
    calibrate,
    fitted_curves,
    optimise,
    sample_posterior,
    theoph_observations,
)
from flowsim.testing import ExactFlowMap

THETA = torch.tensor([[1.5, 0.09, 32.0]], dtype=torch.float64)


def _doubled_dose() -> Observations:
    raw = flowsim.steer.load_theoph()
    raw = raw[raw.Subject == 1]
    return theoph_observations(raw.assign(Dose=raw.Dose * 2))


def test_the_datas_initial_states_must_lie_in_the_maps_trained_box():
    fm = flowsim.FlowMap("theophylline", width=8, depth=1)
    obs = _doubled_dose()                      # A_gut(0) ≈ 640 mg; the maps train from 250–350
    assert float(obs.x0[0, 0]) > 350
    with pytest.raises(flowsim.ParameterError, match=r"the data's initial states \['x0.A_gut'\]"):
        flowsim.steer.LogLikelihood(fm, obs, params=("ka", "ke", "V"), noise=Noise(sigma=0.7))
    with pytest.warns(flowsim.ExtrapolationWarning, match="initial states"):
        flowsim.steer.LogLikelihood(fm, obs, params=("ka", "ke", "V"), noise=Noise(sigma=0.7),
                                    on_outside="warn")
    # fitting the initial state itself: theta carries it, the data's value is not used
    flowsim.steer.LogLikelihood(fm, obs, params=("ka", "x0.A_gut"), noise=Noise(sigma=0.7))
    # the reference solver has no trained range
    ll = flowsim.steer.log_likelihood("theophylline", obs, THETA, params=("ka", "ke", "V"),
                                      noise=Noise(sigma=0.7))
    assert bool(torch.isfinite(ll).all())


def test_a_fitted_parameter_may_default_outside_a_narrow_trained_range():
    # ka's default (1.5) lies outside this map's range; it is fitted, so only theta matters
    fm = flowsim.FlowMap("theophylline", width=8, depth=1, param_range={"ka": (2.0, 12.0)})
    obs = theoph_observations().select([1])
    ll = flowsim.steer.LogLikelihood(fm, obs, params=("ka", "ke", "V"), noise=Noise(sigma=0.7))
    assert ll(torch.tensor([[3.0, 0.09, 32.0]])).shape == (1,)
    with pytest.raises(flowsim.ParameterError, match=r"fixed parameters \['ka'\]"):
        flowsim.steer.LogLikelihood(fm, obs, params=("ke", "V"), noise=Noise(sigma=0.7))


def test_accepting_parameters_outside_the_range_still_composes_long_jumps():
    fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1, max_jump=1.0)
    x0, p = torch.full((2, 2), 1.0), fm.sample_params(2, generator=0)
    times = torch.tensor([[0.5, 3.0], [1.0, 2.5]])
    with pytest.warns(flowsim.ExtrapolationWarning, match="composed 3 jumps"):
        warn_mode = flowsim.steer.MapPredictor(fm, allow_extrapolation=True)(x0, torch.zeros(2), times, p)
    with pytest.warns(flowsim.ExtrapolationWarning, match="composed 3 jumps"):
        default = flowsim.steer.MapPredictor(fm)(x0, torch.zeros(2), times, p)
    assert torch.allclose(warn_mode, default, rtol=1e-6, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")         # short jumps: one evaluation, no warning
        flowsim.steer.MapPredictor(fm, allow_extrapolation=True)(x0, torch.zeros(2), times / 4, p)


def test_fitted_curves_use_the_parameters_held_fixed():
    obs = theoph_observations().select([1])
    fit = calibrate("theophylline", obs, params=("ka", "ke"), fixed={"V": 45.0},
                    noise=Noise(sigma=0.7), n_starts=1, n_candidates=4, steps=15)
    assert fit["fixed"].sel(fixed_param="V").item() == 45.0
    curves = fitted_curves(fit, obs, n_points=5)
    est = fit["estimate"].values[0]
    pad = obs.padded()
    times = torch.as_tensor(curves["time"].values)
    p = torch.tensor([[est[0], est[1], 45.0]], dtype=torch.float64)
    x = flowsim.steer.SolverPredictor("theophylline")(pad.x0, pad.t0, times, p)
    want = obs.observe(x, p).double().numpy()
    assert np.allclose(curves.values, want, rtol=1e-6, atol=1e-9)


def test_the_posteriors_prior_is_the_systems_within_the_maps_range():
    # a map trained over a wider ka range than the system's prior (0.3–12): the sampler's
    # box is their intersection, as documented
    fm = flowsim.FlowMap("theophylline", width=8, depth=1, param_range={"ka": (0.1, 20.0)})
    obs = theoph_observations().select([1])
    post = sample_posterior(fm, obs, params=["ka"], noise=Noise(sigma=0.7), walkers=4, steps=8,
                            check_draws=0)
    draws = post.draws()[:, 0]
    lo, hi = flowsim.get_system("theophylline").parameters[0].prior
    assert draws.min() >= lo and draws.max() <= hi


def test_a_posterior_the_solver_disagrees_with_is_said_to_be_unusable():
    t = np.array([0.4, 0.9, 1.5, 2.2, 3.0, 3.9])
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"subject": 1, "time": t, "observable": "q",
                          "value": 0.9 * np.cos(t) + 0.05 * rng.standard_normal(t.size)})
    obs = Observations(frame, "harmonic_oscillator", initial={1: (0.9, 0.0)})
    off = ExactFlowMap("harmonic_oscillator",
                       perturbation=lambda s, t, x, p: 0.3 * torch.stack([torch.ones_like(t), 0 * t], -1))
    with pytest.warns(UserWarning, match="the reference solver disagrees with the map's posterior"):
        post = sample_posterior(off, obs, params=["omega"], noise=Noise(sigma=0.05), walkers=8,
                                steps=400, check_draws=200)
    assert float(post.check.max_abs_shift) > 0.5 or float(post.check.ess_fraction) < 0.1


def test_optimise_checks_its_fixed_start_and_the_solvers_verdict():
    fm = flowsim.FlowMap("theophylline", width=8, depth=1)

    def reward(x, v):
        return x[:, -1, 1]

    kw = {"times": [2.0], "starts": 2, "steps": 2}
    with pytest.raises(flowsim.ParameterError, match="the fixed initial state"):
        optimise(fm, reward, ["ka"], x0=[640.0, 0.0], **kw)
    with pytest.raises(flowsim.ShapeError, match="x0 must be 2 numbers"):
        optimise(fm, reward, ["ka"], x0=[300.0, 0.0, 1.0], **kw)
    with pytest.raises(flowsim.ShapeError, match="finite"):
        optimise(fm, reward, ["ka"], x0=[float("nan"), 0.0], **kw)
    with pytest.raises(flowsim.TimeGridError, match="t0 must be finite"):
        optimise(fm, reward, ["ka"], t0=float("nan"), **kw)
    # an untrained map's optimum is not the solver's: said in words
    with pytest.warns(UserWarning, match="the reference solver disagrees with the map at the optimum"):
        optimise(fm, reward, ["ka"], x0=[300.0, 0.0], **kw)


def test_small_bad_inputs_get_flowsim_errors():
    with pytest.raises(flowsim.ConfigError, match="draw"):
        PosteriorConfig(steps=20, thin=50)
    assert Noise(sigma=np.float32(0.5)).sigma == 0.5 and Noise(sigma=torch.tensor(0.5)).sigma == 0.5
    with pytest.raises(flowsim.ConfigError):
        Noise(sigma="a")
    frame = pd.DataFrame({"subject": 1, "time": [0.5, 1.0, 1.5], "observable": "q",
                          "value": [0.88, 0.54, 0.07]})
    with pytest.raises(flowsim.TimeGridError, match="t0 must be a number"):
        Observations(frame, "harmonic_oscillator", initial={1: (1.0, 0.0)}, t0="abc")
    obs = theoph_observations().select([1])    # a sample at the dose time, where the model predicts 0
    with pytest.raises(flowsim.ConfigError, match="log-normal noise: the model predicts 0"):
        flowsim.steer.log_likelihood(ExactFlowMap("theophylline"), obs, THETA, noise=Noise("lognormal"))
    one = Observations(frame, "harmonic_oscillator", initial={1: (1.0, 0.0)})
    with pytest.raises(flowsim.ConfigError, match="the model is of theophylline, the observations of"):
        calibrate(ExactFlowMap("theophylline"), one, params=("omega",))
    post = sample_posterior(ExactFlowMap("harmonic_oscillator"), one, params="omega",
                            noise=Noise(sigma=0.05), walkers=4, steps=8, check_draws=0)
    assert list(post.summary["param"].values) == ["omega"]


def test_a_shared_fits_sigma_is_the_pooled_level_and_its_report_says_shared(tmp_path):
    rng = np.random.default_rng(3)
    rows = []
    for subj, noise in (("a", 0.02), ("b", 0.08)):
        t = np.linspace(0.3, 5.0, 12)
        rows += [{"subject": subj, "time": a, "observable": "q", "value": b}
                 for a, b in zip(t, np.cos(t) + noise * rng.standard_normal(t.size))]
    obs = Observations(pd.DataFrame(rows), "harmonic_oscillator", initial=[(1.0, 0.0), (1.0, 0.0)])
    exact = ExactFlowMap("harmonic_oscillator")
    fit = calibrate(exact, obs, params=("omega",), per_subject=False, n_starts=1, n_candidates=8,
                    steps=20, polish=False)
    est = torch.as_tensor(fit["estimate"].values)                     # (1, 1)
    pred = flowsim.steer.LogLikelihood(exact, obs, params=("omega",)).predict(est)[0, :, :, 0]
    pad = obs.padded()
    res = (pad.values[..., 0] - pred)[pad.mask[..., 0]]
    assert float(fit["sigma"].values[0, 0]) == pytest.approx(float(res.pow(2).mean().sqrt()), rel=1e-9)
    out = flowsim.steer.calibration_report(fit, obs, tmp_path / "report")
    assert "one parameter vector shared by 2 subject(s)" in (out / "report.md").read_text()
