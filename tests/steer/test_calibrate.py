"""calibrate: synthetic recovery through a map and the solver, the polish removing a known map bias,
shared fits, the Theoph comparison with scipy least_squares over solve_ivp, bad inputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import flowsim
from flowsim.errors import ConfigError, ParameterError
from flowsim.steer import CalibrateConfig, Noise, Observations, calibrate, scipy_fit, theoph_observations
from flowsim.testing import ExactFlowMap

OMEGA = (0.8, 1.25, 1.6)
Q0 = (0.9, -0.5, 0.7)
SIGMA = 0.02


def _oscillator_data(seed: int = 0, omega=OMEGA) -> Observations:
    """q(t) = q0 cos(ω t) (v0 = 0) at 15 irregular times per subject, plus N(0, σ²) noise."""
    g = np.random.default_rng(seed)
    rows = []
    for i, (w, q0) in enumerate(zip(omega, Q0)):
        t = np.sort(g.uniform(0.1, 6.0, 15))
        y = q0 * np.cos(w * t) + SIGMA * g.standard_normal(15)
        rows += [{"subject": f"s{i}", "time": a, "observable": "q", "value": b} for a, b in zip(t, y)]
    return Observations(pd.DataFrame(rows), "harmonic_oscillator", initial=[(q, 0.0) for q in Q0])


@pytest.fixture(scope="module")
def theoph_map():
    """A tiny Theoph map (width 32, 1,000 steps: a few seconds); its bias is what the polish removes."""
    return flowsim.steer.train_theoph_map(steps=1000, width=32, n_trajectories=256)


def test_recovers_known_parameters_through_an_exact_map_and_the_solver():
    obs = _oscillator_data()
    truth = np.array([OMEGA, Q0]).T
    for model in (ExactFlowMap("harmonic_oscillator"), "harmonic_oscillator"):
        fit = calibrate(model, obs, params=("omega", "x0.q"), noise=Noise(sigma=SIGMA), n_starts=3,
                        n_candidates=16, steps=30)
        est, se = fit["estimate"].values, fit["std_error"].values
        # a broken gradient (wrong sign, wrong scale, missing chain rule) stalls far from here
        assert np.all(np.abs(est - truth) < 4 * se), (est, se)
        assert np.all(np.abs(est - truth) / np.abs(truth) < 0.03)
        assert np.all((se > 0) & (se < 0.02)) and set(fit["status"].values) <= {"converged", "max_steps"}
    assert fit.attrs["model"] == "solver" and fit.attrs["polished"] == 0


def test_the_polish_removes_a_known_map_bias_and_reports_it():
    """An exact map plus a known error: the map's optimum is biased; the solver polish undoes it."""
    obs = _oscillator_data(1).select(["s0", "s1"])
    bias = ExactFlowMap("harmonic_oscillator", perturbation=lambda s, t, x, p: 0.05 * torch.stack(
        [torch.sin(0.7 * (t - s)), torch.zeros_like(t)], -1))
    fit = calibrate(bias, obs, params=("omega",), noise=Noise(sigma=SIGMA), n_starts=2, n_candidates=8)
    ref = calibrate("harmonic_oscillator", obs, params=("omega",), noise=Noise(sigma=SIGMA), n_starts=2,
                    n_candidates=8)
    assert fit.attrs["polished"] == 1
    shift = np.abs(fit["rel_shift"].values)
    assert np.all(shift > 1e-3)                                            # the map was biased
    np.testing.assert_allclose(fit["estimate"].values, ref["estimate"].values, rtol=1e-5)
    assert np.all(fit["loss_after_polish"].values <= fit["loss_before_polish"].values + 1e-9)
    np.testing.assert_allclose(fit["shift"].values, fit["estimate"].values - fit["estimate_map"].values)
    # the perturbation does not depend on omega: the map's slopes are exact, and the check says so
    assert np.all(fit["gradient_rel_error"].values < 1e-4) and np.all(fit["gradient_cosine"].values > 0.9999)
    assert np.all(np.isnan(ref["gradient_cosine"].values))  # nothing to compare for the solver


def test_a_shared_fit_pools_the_subjects():
    obs = _oscillator_data(2, omega=(1.25,) * 3)
    fit = calibrate("harmonic_oscillator", obs, params=("omega",), per_subject=False, n_starts=2,
                    n_candidates=8, bounds={"omega": (0.6, 1.9)}, noise=Noise(sigma=SIGMA))
    alone = calibrate("harmonic_oscillator", obs, params=("omega",), n_starts=2, n_candidates=8,
                      noise=Noise(sigma=SIGMA))
    assert list(fit["subject"].values) == ["all"] and fit["estimate"].shape == (1, 1)
    # pooled: the truth within 4 SE, and a smaller SE than any subject's alone (~1/sqrt(3))
    assert abs(fit["estimate"].item() - 1.25) < 4 * fit["std_error"].item()
    assert fit["std_error"].item() < alone["std_error"].values.min()
    assert fit["lower"].item() == 0.6 and fit["upper"].item() == 1.9


def test_theoph_two_subjects_agree_with_scipy_within_one_percent(theoph_map):
    obs = theoph_observations().select([1, 7])
    ref = scipy_fit(obs, ("ka", "ke", "V"))
    fit = calibrate(theoph_map, obs, params=("ka", "ke", "V"))
    rel = np.abs(fit["estimate"].values / ref["estimate"].values - 1)
    assert rel.max() < 0.01, (fit["estimate"].values, ref["estimate"].values)
    before = np.abs(fit["estimate_map"].values / ref["estimate"].values - 1)
    assert before.max() > rel.max()  # the tiny map's own answer is worse: the polish did the work
    assert np.all(np.isfinite(fit["std_error"].values)) and np.all(fit["std_error"].values > 0)
    assert np.all(fit["gradient_cosine"].values > 0.9) and np.all(fit["gradient_rel_error"].values < 0.5)
    # the fitted noise level is the residual SD of the fit (profiled sigma)
    assert np.all((fit["sigma"].values > 0.05) & (fit["sigma"].values < 2.0))


def test_synthetic_theoph_recovery_through_the_map(theoph_map):
    """Data simulated from known parameters with noise: map + polish lands within 3 SE of the truth."""
    truth = torch.tensor([[1.5, 0.08, 30.0], [0.7, 0.12, 40.0]], dtype=torch.float64)
    obs = theoph_observations().select([3, 5])
    ll = flowsim.steer.LogLikelihood("theophylline", obs, params=("ka", "ke", "V"))
    clean = ll.predict(truth[None])[0, :, :, 0].numpy()
    g = np.random.default_rng(4)
    frame = obs.frame.copy()
    frame["value"] = (clean + 0.3 * g.standard_normal(clean.shape)).reshape(-1)
    frame["Subject"], frame["Time"], frame["conc"] = frame["subject"], frame["time"], frame["value"]
    syn = flowsim.steer.theoph_observations(frame[["Subject", "Wt", "Dose", "Time", "conc"]])
    fit = calibrate(theoph_map, syn, params=("ka", "ke", "V"), noise=Noise(sigma=0.3))
    z = np.abs(fit["estimate"].values - truth.numpy()) / fit["std_error"].values
    assert z.max() < 3.5, (fit["estimate"].values, fit["std_error"].values)


def test_bad_calibrations_are_refused():
    fm = flowsim.FlowMap("theophylline", width=8, depth=1, max_jump=25.0)
    obs = theoph_observations().select([1])
    with pytest.raises(ParameterError, match="trained range"):
        calibrate(fm, obs, params=("ka",), bounds={"ka": (0.1, 5.0)})
    with pytest.warns(flowsim.ExtrapolationWarning):
        calibrate(fm, obs, params=("ka",), bounds={"ka": (0.2, 5.0)}, on_outside="warn", polish=False,
                  n_starts=1, n_candidates=2, steps=1)
    with pytest.raises(ParameterError, match="unknown parameter 'CL'"):
        calibrate(fm, obs, params=("ka", "CL"))
    with pytest.raises(ParameterError, match="not fitted"):
        calibrate(fm, obs, params=("ka",), bounds={"V": (20.0, 30.0)})
    with pytest.raises(ConfigError, match="unknown calibrate option"):
        calibrate(fm, obs, n_start=3)
    for bad in ({"n_starts": 0}, {"steps": 1.5}, {"n_candidates": 2, "n_starts": 4}, {"tol": 0.0},
                {"on_outside": "ignore"}, {"prior": {"ka": (1.0, -1.0)}}, {"noise": "gaussian"},
                {"solver": flowsim.SolverOptions(backend="scipy", method="LSODA")}):
        with pytest.raises(ConfigError):
            CalibrateConfig(**bad)
    with pytest.raises(ConfigError, match="Observations"):
        calibrate(fm, obs.frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(flowsim.steer.log_likelihood(fm, obs, torch.tensor([[1.5, 0.09, 32.0]])).item())


def test_noise_that_cannot_describe_the_data_is_refused_in_words():
    th = ExactFlowMap("theophylline")
    obs = theoph_observations().select([1, 2])  # samples at the dose time, where the model predicts 0
    theta = torch.tensor([[1.5, 0.09, 32.0]], dtype=torch.float64)
    with pytest.raises(ConfigError, match=r"proportional noise with floor=0: the model predicts exactly 0"):
        flowsim.steer.log_likelihood(th, obs, theta, noise=Noise("proportional"))
    with pytest.raises(ConfigError, match=r"proportional noise with floor=0"):
        calibrate(th, obs, params=("ka", "ke", "V"), noise=Noise("proportional"), n_starts=1,
                  n_candidates=2, steps=2, polish=False)
    ok = flowsim.steer.log_likelihood(th, obs, theta, noise=Noise("proportional", floor=0.1))
    assert bool(torch.isfinite(ok).all())
    with pytest.raises(ConfigError, match=r"sigma has 2 values for 1 observable"):
        flowsim.steer.log_likelihood(th, obs, theta, noise=Noise(sigma=(0.1, 0.2)))
    bad = Observations(obs.frame, "theophylline", initial=obs.x0.numpy(),
                       observe=lambda x, p: x[..., 5][..., None])
    with pytest.raises(ConfigError, match=r"observe\(x, p\) raised IndexError"):
        flowsim.steer.log_likelihood(th, bad, theta)
