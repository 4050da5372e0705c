"""scipy's implicit methods on a whole batch at once: one stacked system, sparse (Radau, BDF) or
banded (LSODA) Jacobian."""

import pytest
import torch

import flowsim
from flowsim import SolverError, SolverOptions, Status
from flowsim.metrics import relative_error


@pytest.mark.parametrize("name", [pytest.param("robertson", marks=pytest.mark.slow), "lotka_volterra"])
@pytest.mark.parametrize("method", ["Radau", "BDF", "LSODA"])
def test_stacked_agrees_with_the_tight_reference(name, method):
    s = flowsim.get_system(name)
    x0, p = s.sample_initial(6, 0), s.sample_params(6, 0)
    t = torch.linspace(0, 0.5 * s.timescale, 4, dtype=torch.float64)
    ref = flowsim.reference_solve(s, x0, t, p, SolverOptions.reference(s, rtol=1e-10, atol=1e-12))
    sol = flowsim.reference_solve(s, x0, t, p, SolverOptions(backend="scipy", method=method, rtol=1e-8,
                                                              atol=1e-10, stacked=True))
    assert sol.ok.all() and sol.x.shape == ref.x.shape
    # shared steps, RMS error control over the batch: still far below 1e-5 at rtol 1e-8
    assert relative_error(sol.x[:, -1], ref.x[:, -1]).max() < 1e-5
    assert sol.nfe.min() > 0


def test_stacked_options_are_checked_and_recorded():
    with pytest.raises(SolverError, match="stacked=True is for the scipy"):
        SolverOptions(stacked=True)
    with pytest.raises(SolverError, match="True or False"):
        SolverOptions(backend="scipy", stacked="yes")
    opts = SolverOptions(backend="scipy", method="BDF", stacked=True)
    assert SolverOptions.from_dict(opts.to_dict()) == opts and "stacked" in opts.describe()


def test_stacked_reports_a_failure_through_the_status():
    s = flowsim.get_system("robertson")
    x0 = s.sample_initial(4, 0)
    t = torch.linspace(0, s.timescale, 3, dtype=torch.float64)
    sol = flowsim.reference_solve(s, x0, t, solver=SolverOptions(backend="scipy", method="BDF", max_steps=1,
                                                                 stacked=True))
    assert not sol.ok.any() and (sol.status == int(Status.MAX_STEPS)).all()


def test_stacked_lsoda_agrees_with_radau_on_a_stiff_batch():
    """LSODA stacked over a stiff 3-state batch (banded block-diagonal Jacobian) agrees with Radau."""
    s = flowsim.get_system("robertson")
    x0, p = s.sample_initial(5, 1), s.sample_params(5, 1)
    t = torch.linspace(0, 0.05 * s.timescale, 3, dtype=torch.float64)
    opts = dict(backend="scipy", rtol=1e-8, atol=1e-12, stacked=True)
    lsoda = flowsim.reference_solve(s, x0, t, p, SolverOptions(method="LSODA", **opts))
    radau = flowsim.reference_solve(s, x0, t, p, SolverOptions(method="Radau", **opts))
    assert lsoda.ok.all() and radau.ok.all()
    assert relative_error(lsoda.x[:, -1], radau.x[:, -1]).max() < 1e-5
