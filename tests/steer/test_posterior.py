"""sample_posterior (emcee) and the map check: coverage on synthetic data, re-weighting, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import flowsim
from flowsim.steer import Noise, Observations, PosteriorConfig, posterior_map_check, sample_posterior
from flowsim.testing import ExactFlowMap

TIMES = [0.4, 0.9, 1.5, 2.2, 3.0, 3.9]
SIGMA = 0.05


def _data(omega: float, q0: float, seed: int, offset: float = 0.0) -> Observations:
    """Noisy positions of the oscillator q' = v, v' = -ω² q from (q0, 0)."""
    rng = np.random.default_rng(seed)
    t = np.asarray(TIMES)
    q = q0 * np.cos(omega * t) + offset + SIGMA * rng.standard_normal(t.size)
    frame = pd.DataFrame({"subject": 1, "time": t, "observable": "q", "value": q})
    return Observations(frame, "harmonic_oscillator", initial={1: (q0, 0.0)})


def test_posterior_intervals_cover_the_truth():
    """A small coverage study: 10 data sets, 2 parameters; 95 % intervals cover the truth."""
    exact = ExactFlowMap("harmonic_oscillator")
    truth = {"omega": 1.2, "x0.q": 0.8}
    covered, widths = 0, []
    for seed in range(10):
        obs = _data(truth["omega"], truth["x0.q"], seed)
        post = sample_posterior(exact, obs, params=["omega", "x0.q"], noise=Noise(sigma=SIGMA),
                                walkers=12, steps=300, check_draws=0, seed=seed)
        s = post.summary
        for name, value in truth.items():
            covered += int(float(s["q2.5"].sel(param=name)) <= value <= float(s["q97.5"].sel(param=name)))
        widths.append(float(s["q97.5"].sel(param="omega") - s["q2.5"].sel(param="omega")))
        assert post.check is None and post.info["model"] == "map"
    # 20 intervals at 95 %: P(fewer than 16 cover) < 0.3 % for calibrated intervals
    assert covered >= 16, covered
    # and they are informative (a flat or broken likelihood gives the prior's width, 1.5)
    assert max(widths) < 0.1


def test_posterior_diagnostics_and_idata():
    obs = _data(1.0, 0.9, 0)
    post = sample_posterior(ExactFlowMap("harmonic_oscillator"), obs, params=["omega"],
                            noise=Noise(sigma=SIGMA), walkers=8, steps=600, check_draws=50)
    assert post.idata.posterior["omega"].shape == (8, 300)
    assert "lp" in post.idata.sample_stats
    s = post.summary
    assert float(s.r_hat.sel(param="omega")) < 1.1
    assert float(s.ess_bulk.sel(param="omega")) > 100
    assert abs(float(s["mean"].sel(param="omega")) - 1.0) < 3 * float(s["sd"].sel(param="omega")) + 0.01
    # an exact map: the solver agrees, nothing moves
    assert float(post.check.max_abs_shift) < 1e-4 and float(post.check.ess_fraction) > 0.999
    assert post.draws().shape == (8 * 300, 1)


def test_map_check_reweights_a_biased_map_to_the_solver_posterior():
    """A map whose q is off by 0.05 moves the posterior; the check sees it and re-weighting
    brings the mean back to the exact posterior's."""
    obs = _data(1.0, 0.9, 1)
    kw = {"params": ["omega"], "noise": Noise(sigma=SIGMA), "walkers": 8, "steps": 1000}
    exact = sample_posterior(ExactFlowMap("harmonic_oscillator"), obs, check_draws=0, **kw)
    off = ExactFlowMap("harmonic_oscillator",
                       perturbation=lambda s, t, x, p: 0.05 * torch.stack([torch.ones_like(t), 0 * t], -1))
    biased = sample_posterior(off, obs, check_draws=1000, **kw)
    sd = float(exact.summary["sd"].sel(param="omega"))
    moved = float(biased.summary["mean"].sel(param="omega")) - float(exact.summary["mean"].sel(param="omega"))
    assert abs(moved) > 0.3 * sd                       # the bias is real ...
    chk = biased.check
    # ... the check reports it (the shift the solver makes undoes the map's) ...
    assert abs(float(chk.shift_sd[0]) + moved / sd) < 0.2
    assert float(chk.ess_fraction) < 0.9
    back = float(chk.mean_solver[0]) - float(exact.summary["mean"].sel(param="omega"))
    assert abs(back) < 0.25 * sd                       # ... and re-weighting undoes it
    assert float(chk.loglik_diff_median) > 0.1


def test_bad_sampler_settings_and_names():
    obs = _data(1.0, 0.9, 0)
    exact = ExactFlowMap("harmonic_oscillator")
    with pytest.raises(flowsim.ConfigError, match="steps must be a positive int"):
        sample_posterior(exact, obs, params=["omega"], noise=Noise(sigma=SIGMA), steps=0)
    with pytest.raises(flowsim.ConfigError, match="walkers"):
        sample_posterior(exact, obs, params=["omega", "x0.q"], noise=Noise(sigma=SIGMA), walkers=3)
    with pytest.raises(flowsim.ConfigError, match="burn"):
        PosteriorConfig(steps=10, burn=10)
    with pytest.raises(flowsim.ConfigError, match="unknown sample_posterior option"):
        sample_posterior(exact, obs, params=["omega"], stepz=3)
    with pytest.raises(flowsim.ParameterError, match="unknown parameter"):
        sample_posterior(exact, obs, params=["nope"], noise=Noise(sigma=SIGMA))
    fm = flowsim.FlowMap("harmonic_oscillator", width=8, depth=1)
    with pytest.raises(flowsim.ParameterError, match="trained range"):
        sample_posterior(fm, obs, params=["omega"], noise=Noise(sigma=SIGMA), bounds={"omega": (0.1, 1.0)})


def test_map_check_refuses_bad_draws():
    obs = _data(1.0, 0.9, 0)
    ll = flowsim.steer.LogLikelihood("harmonic_oscillator", obs, params=["omega"],
                                     noise=Noise(sigma=SIGMA))
    with pytest.raises(flowsim.ShapeError, match="draws"):
        posterior_map_check(ll, np.ones((5, 2)))
    with pytest.raises(flowsim.ConfigError, match="n must"):
        posterior_map_check(ll, np.ones((5, 1)), n=0)
    assert math.isfinite(float(posterior_map_check(ll, np.full((3, 1), 1.0)).ess))


def test_per_subject_posterior_has_a_subject_dimension():
    rng = np.random.default_rng(3)
    t = np.asarray(TIMES)
    rows = []
    for subject, omega in (("a", 0.8), ("b", 1.4)):
        q = 0.9 * np.cos(omega * t) + SIGMA * rng.standard_normal(t.size)
        rows.append(pd.DataFrame({"subject": subject, "time": t, "observable": "q", "value": q}))
    obs = Observations(pd.concat(rows), "harmonic_oscillator", initial={"a": (0.9, 0.0), "b": (0.9, 0.0)})
    post = sample_posterior(ExactFlowMap("harmonic_oscillator"), obs, params=["omega"], per_subject=True,
                            noise=Noise(sigma=SIGMA), walkers=8, steps=300, check_draws=40)
    assert post.idata.posterior["omega"].dims == ("chain", "draw", "subject")
    means = post.summary["mean"].sel(param="omega")
    assert abs(float(means.sel(subject="a")) - 0.8) < 0.05 and abs(float(means.sel(subject="b")) - 1.4) < 0.05
    assert list(post.check.dim.values) == ["omega[a]", "omega[b]"]


def test_chains_that_have_not_mixed_are_said_to_be_so():
    obs = _data(1.0, 0.9, 0)
    with pytest.warns(UserWarning, match=r"the chains have not mixed: max R-hat \d"):
        post = sample_posterior(ExactFlowMap("harmonic_oscillator"), obs, params=["omega", "x0.q"],
                                noise=Noise(sigma=SIGMA), walkers=8, steps=12, check_draws=0)
    assert float(post.summary["r_hat"].max()) > 1.1
