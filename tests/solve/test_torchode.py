"""The torchode backend: agreement with torchdiffeq and exact solutions, status codes, grids."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim import SolverOptions, Status, reference_solve
from flowsim.solve import torchode_available

pytestmark = pytest.mark.skipif(not torchode_available(), reason="torchode not installed")

TORCHODE = SolverOptions(backend="torchode", rtol=1e-10, atol=1e-12)


def test_exact_solution_and_torchdiffeq_agree():
    sho = flowsim.get_system("harmonic_oscillator")
    assert sho.has_exact_solution
    x0, p = sho.sample_initial(16, generator=1), sho.sample_params(16, generator=2)
    t = torch.linspace(0, 2 * sho.timescale, 17, dtype=torch.float64)
    sol = reference_solve(sho, x0, t, p, solver=TORCHODE)
    assert sol.backend == "torchode" and sol.solver == TORCHODE
    assert bool(sol.ok.all()) and int(sol.nfe.min()) > 0 and sol.x.shape == (16, 17, 2)
    exact = sho.exact_solution(t, x0, p)
    assert ((sol.x - exact).norm(dim=-1) / exact.norm(dim=-1)).max() < 1e-8


@pytest.mark.parametrize("name", ["lotka_volterra", "fitzhugh_nagumo"])
def test_catalogue_systems_match_torchdiffeq(name):
    sys_ = flowsim.get_system(name)
    x0, p = sys_.sample_initial(8, generator=3), sys_.sample_params(8, generator=4)
    t = torch.linspace(0, sys_.timescale, 9, dtype=torch.float64)
    a = reference_solve(sys_, x0, t, p, solver=TORCHODE)
    b = reference_solve(sys_, x0, t, p, rtol=1e-10, atol=1e-12)
    assert bool(a.ok.all()) and bool(b.ok.all())
    scale = b.x.abs().amax(dim=(0, 1))
    assert ((a.x - b.x).abs() / scale).max() < 1e-6


def test_per_trajectory_grids_and_tsit5():
    sho = flowsim.get_system("harmonic_oscillator")
    x0 = sho.sample_initial(4, generator=5)
    base = torch.linspace(0.0, 2.0, 5, dtype=torch.float64)
    grids = torch.stack([base * (1 + 0.2 * i) + 0.5 * i for i in range(4)])
    sol = reference_solve(sho, x0, grids, solver=SolverOptions(backend="torchode", method="tsit5",
                                                               rtol=1e-10, atol=1e-12))
    assert (sol.x - sho.exact_solution(grids, x0)).abs().max() < 1e-7


def test_max_steps_status_and_isolation():
    sho = flowsim.get_system("harmonic_oscillator")
    x0 = sho.sample_initial(4, generator=6)
    t = torch.linspace(0, 50, 3)
    sol = reference_solve(sho, x0, t, solver=SolverOptions(backend="torchode", max_steps=5))
    assert (sol.status == int(Status.MAX_STEPS)).all() and sol.n_failed == 4
    assert bool(torch.isnan(sol.x).all())


def test_one_diverging_trajectory_does_not_sink_the_others():
    blowup = flowsim.from_callable(lambda t, x, p: x**2, name="blowup", state_names=["y"])
    x0 = torch.tensor([[0.1], [5.0], [0.2], [-0.3]], dtype=torch.float64)
    t = torch.linspace(0.0, 1.0, 4, dtype=torch.float64)
    sol = reference_solve(blowup, x0, t, solver=SolverOptions(backend="torchode", rtol=1e-9, atol=1e-9,
                                                              max_steps=2000))
    assert sol.status[1] != 0 and sol.status[[0, 2, 3]].tolist() == [0, 0, 0]
    exact = x0 / (1 - x0 * t)  # x' = x², x(t) = x0 / (1 − x0 t)
    ok = [0, 2, 3]
    assert (sol.x[ok, :, 0] - exact[ok]).abs().max() < 1e-7
    # without retries the unfinished rest is flagged too (a single plain solve)
    p = torch.zeros(4, 0, dtype=torch.float64)
    flat = flowsim.solve.integrate(blowup, x0, t, p, sol.solver, max_failed_solves=0)
    assert flat.n_failed == 4


def test_stiff_warning_and_unavailable_message(monkeypatch):
    rob = flowsim.get_system("robertson")
    with pytest.warns(UserWarning, match="stiff"):
        reference_solve(rob, rob.sample_initial(1, 0), torch.linspace(0, 1e-3, 2),
                        solver=SolverOptions(backend="torchode"))
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "torchode":
            raise ImportError("no torchode")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    assert not torchode_available()
    sho = flowsim.get_system("harmonic_oscillator")
    with pytest.raises(flowsim.SolverError, match="pip install"):
        reference_solve(sho, sho.sample_initial(2, 0), torch.linspace(0, 1, 3),
                        solver=SolverOptions(backend="torchode"))
