"""Amortised posteriors: a linear-Gaussian simulator with an analytic posterior, and the ODE task's
exact likelihood."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim.generative import InferenceTask, fit_posterior


def test_posterior_of_a_linear_gaussian_simulator():
    # θ ~ N(0, I₂), y = A θ + ε, ε ~ N(0, σ² I₂): p(θ | y) = N(Σ Aᵀ y / σ², Σ), Σ = (I + AᵀA/σ²)⁻¹
    g = torch.Generator().manual_seed(0)
    A = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
    sigma = 0.5
    theta = torch.randn(6000, 2, generator=g)
    y = theta @ A.T + sigma * torch.randn(6000, 2, generator=g)
    gen = fit_posterior(theta, y, teacher_steps=1500, map_steps=400, width=64)
    y_o = torch.tensor([0.8, -0.6])
    cov = torch.linalg.inv(torch.eye(2) + A.T @ A / sigma**2)
    mean = cov @ A.T @ y_o / sigma**2
    post = gen.sample(4000, steps=1, condition=y_o, generator=1)
    assert float((post.mean(0) - mean).norm()) < 0.12, (post.mean(0), mean)
    sd = cov.diagonal().sqrt()
    assert float(((post.std(0) - sd) / sd).abs().max()) < 0.25, (post.std(0), sd)
    with pytest.warns(flowsim.ExtrapolationWarning):  # far outside the simulated observations
        gen.sample(4, condition=torch.tensor([40.0, 40.0]))
    with pytest.raises(flowsim.ShapeError):
        gen.sample(4, condition=torch.zeros(3))


def test_inference_task_likelihood_peaks_at_the_truth():
    task = InferenceTask("sir", times=(10.0, 20.0, 30.0, 40.0), noise=0.05, observed=(1,), log=True)
    truth = task.system.default_params()[None]
    y = task.mean_observation(truth)[0]
    other = torch.tensor([[0.45, 0.1], [0.3, 0.13]], dtype=torch.float64)
    lp = task.log_posterior(torch.cat([truth, other]), y)
    assert float(lp[0]) == pytest.approx(0.0, abs=1e-9) and bool((lp[1:] < -10).all())
    assert float(task.log_posterior(torch.tensor([[5.0, 0.1]]), y)[0]) == -float("inf")  # outside the prior
    with pytest.raises(flowsim.ConfigError):
        InferenceTask("sir", times=(10.0, 5.0), noise=0.1)
    with pytest.raises(flowsim.ShapeError):
        task.log_posterior(truth, torch.zeros(2))


def test_the_reference_posterior_uses_the_prior_the_task_simulates_from():
    # an SBML model's parameters are drawn log-uniformly; with an observation that carries no
    # information (noise 1e4) the exact posterior is that prior: median √(0.05·5) = 0.5, where a
    # uniform prior on [0.05, 5] would give 2.5
    libsbml = pytest.importorskip("libsbml")
    doc = libsbml.SBMLDocument(3, 2)
    m = doc.createModel()
    m.setId("decay")
    c = m.createCompartment()
    c.setId("c"), c.setSize(1.0), c.setConstant(True)
    s = m.createSpecies()
    s.setId("A"), s.setCompartment("c"), s.setInitialConcentration(1.0)
    s.setHasOnlySubstanceUnits(False), s.setBoundaryCondition(False), s.setConstant(False)
    k = m.createParameter()
    k.setId("k"), k.setValue(0.5), k.setConstant(True)
    r = m.createReaction()
    r.setId("R"), r.setReversible(False)
    sr = r.createReactant()
    sr.setSpecies("A"), sr.setStoichiometry(1.0), sr.setConstant(True)
    r.createKineticLaw().setMath(libsbml.parseL3Formula("k * A"))
    system = flowsim.from_sbml(doc, timescale=1.0, prior=10.0)
    lp = system.log_prior(torch.tensor([[0.1], [1.0], [6.0]], dtype=torch.float64))
    assert float(lp[0] - lp[1]) == pytest.approx(float(torch.log(torch.tensor(10.0))))
    assert float(lp[2]) == -float("inf")
    task = InferenceTask(system, times=(1.0,), noise=1e4)
    theta, y = task.simulate(2000, seed=0)
    assert 0.45 < float(theta.median()) < 0.55
    post = task.reference_posterior(y[0], n=1500, walkers=16, burn=100, seed=0)
    assert 0.38 < float(post.median()) < 0.65, float(post.median())
