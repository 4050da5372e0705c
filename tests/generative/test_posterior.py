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
