"""Gradient fidelity: sensitivities against analytic ones, gradient_check on exact, perturbed and
trained maps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import flowsim
from flowsim.steer import gradient_check, sensitivities
from flowsim.steer.gradients import GRADIENT_SOLVER
from flowsim.testing import ExactFlowMap


def _decay_system():
    return flowsim.from_callable(lambda t, x, p: -p[:, :1] * x, name="decay_grad", state_names=["x"],
                                 params={"k": 0.5}, prior={"k": (0.2, 1.0)}, initial_box=[(0.5, 2.0)],
                                 autonomous=True, timescale=2.0)


def _ho_analytic(x0, d, w):
    """Flow of q' = v, v' = -w² q and its Jacobians in (q0, v0) and w."""
    q0, v0 = x0[:, 0], x0[:, 1]
    c, s = torch.cos(w * d), torch.sin(w * d)
    q = q0 * c + v0 / w * s
    v = -q0 * w * s + v0 * c
    jx = torch.stack([torch.stack([c, s / w], -1), torch.stack([-w * s, c], -1)], 1)
    dq = -q0 * d * s + v0 * (d * c / w - s / w**2)
    dv = -q0 * (s + w * d * c) - v0 * d * s
    return torch.stack([q, v], -1), jx, torch.stack([dq, dv], -1)[:, :, None]


@pytest.fixture(scope="module")
def trained_ho():
    sys_ = flowsim.get_system("harmonic_oscillator")
    sol = flowsim.reference_solve(sys_, sys_.sample_initial(64, generator=0), torch.linspace(0, 8, 41),
                                  sys_.sample_params(64, 1))
    fm = flowsim.FlowMap(sys_, width=32, depth=2, max_jump=2.0, tangent=True)
    flowsim.fit(fm, "pairs", sol, steps=1000, batch_size=256, lr=3e-3, max_jump=2.0, progress=False)
    return fm


def test_solver_sensitivities_match_analytic_decay():
    sys_ = _decay_system()
    x0 = torch.tensor([[0.7], [1.3], [2.0]], dtype=torch.float64)
    k = torch.tensor([[0.3], [0.6], [0.9]], dtype=torch.float64)
    z = torch.zeros(3, dtype=torch.float64)
    d = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    pred = flowsim.steer.SolverPredictor(sys_, GRADIENT_SOLVER)
    x1, jx, jp = sensitivities(pred, x0, z, d, k)
    e = torch.exp(-k[:, 0] * d)
    torch.testing.assert_close(x1[:, 0], x0[:, 0] * e, rtol=1e-9, atol=0)
    torch.testing.assert_close(jx[:, 0, 0], e, rtol=1e-8, atol=0)
    torch.testing.assert_close(jp[:, 0, 0], -d * x0[:, 0] * e, rtol=1e-8, atol=0)


def test_solver_and_exact_map_sensitivities_match_analytic_oscillator():
    sys_ = flowsim.get_system("harmonic_oscillator")
    x0 = sys_.sample_initial(5, generator=3)
    w = torch.tensor([[0.6], [0.9], [1.2], [1.5], [1.9]], dtype=torch.float64)
    z = torch.zeros(5, dtype=torch.float64)
    d = torch.tensor([0.3, 1.0, 2.0, 4.0, 6.0], dtype=torch.float64)
    x_ref, jx_ref, jp_ref = _ho_analytic(x0, d, w[:, 0])
    for model in (flowsim.steer.SolverPredictor(sys_, GRADIENT_SOLVER), ExactFlowMap(sys_, max_jump=7.0)):
        x1, jx, jp = sensitivities(model, x0, z, d, w)
        torch.testing.assert_close(x1, x_ref, rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(jx, jx_ref, rtol=1e-7, atol=1e-9)
        torch.testing.assert_close(jp, jp_ref, rtol=1e-7, atol=1e-9)


def test_gradient_check_exact_and_perturbed_maps():
    exact = ExactFlowMap("harmonic_oscillator", max_jump=2.0)
    ds = gradient_check(exact, n=8, jumps=[0.25, 1.0, 2.0])
    assert list(ds.jump.values) == [0.25, 1.0, 2.0]
    assert float(ds.rel_error_x0.max()) < 1e-7 and float(ds.rel_error_p.max()) < 1e-7
    assert float(ds.cosine_p.min()) > 1 - 1e-10
    # a known error in the state Jacobian only: X + 0.01 x gives J_x + 0.01 I, J_p unchanged
    off = ExactFlowMap("harmonic_oscillator", max_jump=2.0, perturbation=lambda s, t, x, p: 0.01 * x)
    dp = gradient_check(off, n=8, jumps=[0.25, 1.0, 2.0])
    assert float(dp.rel_error_p.max()) < 1e-7
    # ‖0.01 I‖_F / ‖J‖_F with ‖J‖_F between 1 and 2.5 for ω in the prior at these jumps
    assert 0.003 < float(dp.rel_error_x0.min()) and float(dp.rel_error_x0.max()) < 0.015
    assert float(dp.cosine_x0.min()) < 1 - 1e-6


def test_gradient_check_trained_map(trained_ho):
    ds = gradient_check(trained_ho, n=32, jumps=[0.0625, 0.25, 1.0])
    # slopes close at short jumps, and their error grows with the jump as the values' does
    assert float(ds.cosine_x0[0]) > 0.999 and float(ds.cosine_p[0]) > 0.99
    assert float(ds.rel_error_x0[0]) < 0.02 and float(ds.rel_error_p[0]) < 0.15
    assert bool(np.all(np.diff(ds.rel_error_p.values) > 0))
    # in this map, as in most, the parameter slope is worse than the values
    assert float(ds.rel_error_p[0]) > float(ds.value_rel_error[0])


@pytest.mark.parametrize("jumps", [[-1.0], [0.0], [math.nan], [100.0], []])
def test_gradient_check_refuses_bad_jumps(jumps):
    with pytest.raises(flowsim.TimeGridError, match="jumps"):
        gradient_check(ExactFlowMap("harmonic_oscillator", max_jump=2.0), n=2, jumps=jumps)


def test_gradient_check_refuses_bad_n_and_models():
    with pytest.raises(flowsim.ConfigError, match="n must"):
        gradient_check(ExactFlowMap("harmonic_oscillator"), n=0)
    with pytest.raises(flowsim.ConfigError, match="flow map"):
        gradient_check("harmonic_oscillator")
