"""Reference solves against analytic solutions, scipy, and with bad input."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim import Status, reference_solve


@pytest.fixture
def sho():
    return flowsim.get_system("harmonic_oscillator")


def test_harmonic_oscillator_matches_analytic(sho):
    x0 = sho.sample_initial(64, generator=1)
    p = sho.sample_params(64, generator=2)
    t = torch.linspace(0, 2 * sho.timescale, 33, dtype=torch.float64)
    sol = reference_solve(sho, x0, t, p, rtol=1e-12, atol=1e-13)
    exact = sho.exact_solution(t, x0, p)
    rel = (sol.x - exact).norm(dim=-1) / exact.norm(dim=-1)
    assert rel.max() < 1e-8
    assert sol.x.dtype == torch.float64 and sol.x.shape == (64, 33, 2)
    assert bool(sol.ok.all()) and sol.n_failed == 0
    assert int(sol.nfe[0]) > 0 and sol.wall_time > 0


def test_per_trajectory_grids_match_shared(sho):
    x0 = sho.sample_initial(6, generator=3)
    base = torch.linspace(0.0, 3.0, 7, dtype=torch.float64)
    # irregular, different per trajectory, different start times
    grids = torch.stack([base * (1 + 0.1 * i) + 0.3 * i for i in range(6)])
    grids[:, 3] += 0.05
    sol = reference_solve(sho, x0, grids, rtol=1e-12, atol=1e-13)
    exact = sho.exact_solution(grids, x0)
    assert (sol.x - exact).abs().max() < 1e-9
    assert sol.t.shape == (6, 7)


def test_non_autonomous_per_trajectory_grid():
    duff = flowsim.get_system("duffing")
    x0 = duff.sample_initial(3, generator=0)
    grids = torch.stack([torch.linspace(s, s + 2.0, 5, dtype=torch.float64)
                         for s in (0.0, 0.7, 1.9)])
    sol = reference_solve(duff, x0, grids, rtol=1e-10, atol=1e-12)
    for i in range(3):
        one = reference_solve(duff, x0[i:i + 1], grids[i], rtol=1e-10, atol=1e-12)
        assert torch.allclose(sol.x[i], one.x[0], rtol=1e-7, atol=1e-9)


def test_batch_equals_loop_and_per_sample_params():
    lv = flowsim.get_system("lotka_volterra")
    x0 = lv.sample_initial(5, generator=0)
    p = lv.default_params(5)
    p[2, 0] *= 1.3  # change one sample's first parameter
    t = torch.linspace(0, 5, 11, dtype=torch.float64)
    sol = reference_solve(lv, x0, t, p, rtol=1e-11, atol=1e-12, chunk_size=2)
    base = reference_solve(lv, x0, t, rtol=1e-11, atol=1e-12)
    for i in range(5):
        one = reference_solve(lv, x0[i:i + 1], t, p[i], rtol=1e-11, atol=1e-12)
        assert torch.allclose(sol.x[i], one.x[0], rtol=1e-8, atol=1e-10)
    changed = (sol.x - base.x).abs().amax(dim=(1, 2)) > 1e-6
    assert changed.tolist() == [False, False, True, False, False]


def test_diverging_sample_is_isolated():
    blow = flowsim.from_callable(
        lambda t, x, p: p[:, :1] * x**2, name="blowup", state_names=["x"],
        params={"k": 1.0}, autonomous=True,
    )
    x0 = torch.full((8, 1), 0.1, dtype=torch.float64)
    x0[5] = 4.0  # blows up at t = 0.25
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    sol = reference_solve(blow, x0, t, max_steps=2000)
    assert sol.status[5] != Status.OK
    assert torch.isnan(sol.x[5]).all()
    ok = torch.ones(8, dtype=torch.bool)
    ok[5] = False
    assert bool(sol.ok[ok].all())
    exact = 0.1 / (1 - 0.1 * t)  # x' = x², x(0)=0.1
    assert torch.allclose(sol.x[ok, :, 0], exact.expand(7, -1), rtol=1e-7)


def test_max_steps_status(sho):
    sol = reference_solve(sho, sho.sample_initial(2, 0), torch.linspace(0, 100, 3),
                          rtol=1e-12, atol=1e-12, max_steps=5)
    assert (sol.status == Status.MAX_STEPS).all()


def test_fixed_step_and_scipy_agree(sho):
    x0 = sho.sample_initial(3, generator=0)
    t = torch.linspace(0, 1, 5, dtype=torch.float64)
    rk4 = reference_solve(sho, x0, t, method="rk4", step_size=1e-3)
    sp = reference_solve(sho, x0, t, backend="scipy", method="DOP853", rtol=1e-12, atol=1e-12)
    exact = sho.exact_solution(t, x0)
    assert (rk4.x - exact).abs().max() < 1e-10
    assert (sp.x - exact).abs().max() < 1e-10
    assert sp.backend == "scipy" and (sp.nfe > 0).all()


def test_float32_on_request(sho):
    sol = reference_solve(sho, sho.sample_initial(2, 0), torch.linspace(0, 1, 3),
                          dtype=torch.float32, rtol=1e-5, atol=1e-6)
    assert sol.x.dtype == torch.float32


def test_stiff_robertson_scipy_radau_conserves_mass():
    rob = flowsim.get_system("robertson")
    x0 = rob.default_initial()[None]
    t = torch.logspace(-5, 3, 17, dtype=torch.float64)
    t = torch.cat([torch.zeros(1, dtype=torch.float64), t])
    sol = reference_solve(rob, x0, t, backend="scipy", method="Radau", rtol=1e-8, atol=1e-12)
    assert bool(sol.ok.all())
    mass = sol.x.sum(-1)
    assert (mass - 1).abs().max() < 1e-8


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, err",
    [
        (dict(x0=torch.zeros(3, 5)), flowsim.ShapeError),
        (dict(x0=torch.zeros(2)), flowsim.ShapeError),
        (dict(x0=torch.tensor([[float("nan"), 0.0]])), flowsim.ShapeError),
        (dict(t=torch.tensor([0.0, 2.0, 1.0])), flowsim.TimeGridError),
        (dict(t=torch.tensor([0.0, 1.0, 1.0])), flowsim.TimeGridError),
        (dict(t=torch.tensor([0.0, float("inf")])), flowsim.TimeGridError),
        (dict(t=torch.zeros(2, 2, 2)), flowsim.TimeGridError),
        (dict(t=torch.linspace(0, 1, 3).expand(5, -1)), flowsim.TimeGridError),
        (dict(method="rk99"), flowsim.SolverError),
        (dict(method="rk4"), flowsim.SolverError),
        (dict(backend="jax"), flowsim.SolverError),
        (dict(backend="scipy", method="dopri5"), flowsim.SolverError),
        (dict(rtol=-1.0), flowsim.SolverError),
        (dict(p={"omegaa": 1.0}), flowsim.ParameterError),
        (dict(p={"omega": -1.0}), flowsim.ParameterError),
        (dict(p=torch.ones(3, 4)), flowsim.ShapeError),
        (dict(p=torch.tensor([float("nan")])), flowsim.ShapeError),
    ],
)
def test_bad_input_raises_flowsim_error(sho, kwargs, err):
    args = dict(x0=sho.sample_initial(2, 0), t=torch.linspace(0, 1, 3))
    args.update(kwargs)
    x0, t = args.pop("x0"), args.pop("t")
    with pytest.raises(err) as info:
        reference_solve(sho, x0, t, **args)
    assert isinstance(info.value, flowsim.FlowsimError)
    assert len(str(info.value)) > 20


def test_unknown_system_and_param_names():
    with pytest.raises(flowsim.SystemNotFoundError, match="known systems"):
        flowsim.get_system("harmonic_oscilator")
    with pytest.raises(flowsim.ParameterError, match="omega"):
        flowsim.get_system("harmonic_oscillator", omga=2.0)


def test_a_stiff_system_gets_an_implicit_method_by_default_without_a_warning():
    import warnings

    rob = flowsim.get_system("robertson")
    x0 = rob.sample_initial(4, generator=0)
    t = torch.tensor([0.0, 1e-3, 1.0, 40.0], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol = reference_solve(rob, x0, t, rtol=1e-7, atol=1e-11)
    assert (sol.backend, sol.method) == ("scipy", "Radau") and bool(sol.ok.all())
    tight = reference_solve(rob, x0, t, backend="scipy", method="BDF", rtol=1e-11, atol=1e-15)
    rel = (sol.x - tight.x).norm(dim=-1) / tight.x.norm(dim=-1)
    assert rel.max() < 1e-5
    # naming a method keeps it, and a non-stiff system keeps dopri5
    assert reference_solve(rob, x0, t[:2], method="bosh3", rtol=1e-5, atol=1e-9).method == "bosh3"
    lv = flowsim.get_system("lotka_volterra")
    assert reference_solve(lv, lv.sample_initial(2, 0), t[:3]).method == "dopri5"
