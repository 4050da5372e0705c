"""Shared fixtures of the analysis tests: the harmonic oscillator, its exact flow map and
held-out reference trajectories (small, so the whole folder runs in seconds)."""

from __future__ import annotations

import math
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

import flowsim  # noqa: E402
from flowsim.analysis import ExactFlowMap  # noqa: E402

N_TIMES = 65  # stored times over one period: gap 2π/64
PERIOD = 2 * math.pi


@pytest.fixture(scope="session")
def sho() -> flowsim.ODESystem:
    return flowsim.get_system("harmonic_oscillator")


@pytest.fixture(scope="session")
def sho_ref(sho) -> flowsim.Solution:
    """24 held-out trajectories with random ω over one period, tight float64 solve."""
    x0 = sho.sample_initial(24, generator=101)
    p = sho.sample_params(24, generator=102)
    t = torch.linspace(0, PERIOD, N_TIMES, dtype=torch.float64)
    return flowsim.reference_solve(sho, x0, t, p, rtol=1e-11, atol=1e-12)


@pytest.fixture(scope="session")
def exact(sho) -> ExactFlowMap:
    return ExactFlowMap(sho)


@pytest.fixture(scope="session")
def lorenz() -> flowsim.ODESystem:
    return flowsim.get_system("lorenz63")


@pytest.fixture(scope="session")
def lorenz_ref(lorenz) -> flowsim.Solution:
    """4 trajectories, 1 time unit (≈ 0.9 Lyapunov times) after a spin-up onto the attractor."""
    x0 = lorenz.sample_initial(4, generator=7)
    spin = flowsim.reference_solve(lorenz, x0, torch.tensor([0.0, 5.0], dtype=torch.float64))
    t = torch.linspace(0, 1.0, 11, dtype=torch.float64)
    return flowsim.reference_solve(lorenz, spin.x_final, t, rtol=1e-11, atol=1e-11)
