"""Systems with a numpy vector field and Jacobian (flowsim.systems.numpy_rhs): the numpy forms
equal the torch definition, and scipy's per-trajectory solves through them agree with
independent torch solves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import flowsim
from flowsim.systems.numpy_rhs import NumpyVectorField

WITH_NUMPY = [n for n in flowsim.list_systems() if isinstance(flowsim.get_system(n), NumpyVectorField)]


def test_the_stiff_catalogue_systems_have_numpy_forms():
    assert {"van_der_pol", "robertson"} <= set(WITH_NUMPY)


@pytest.mark.parametrize("name", WITH_NUMPY)
def test_numpy_forms_equal_the_torch_vector_field_and_its_jacobian(name):
    s = flowsim.get_system(name)
    g = torch.Generator().manual_seed(0)
    x, p = s.sample_initial(64, g), s.sample_params(64, g)
    t = 0.3
    f = s.vector_field(torch.tensor(t, dtype=torch.float64), x, p).numpy()
    np.testing.assert_allclose(s.vector_field_numpy(t, x.numpy(), p.numpy()), f, rtol=1e-12, atol=1e-12)

    def one(xx, pp):
        return s.vector_field(torch.tensor(t, dtype=torch.float64), xx[None], pp[None])[0]

    jac = torch.func.vmap(torch.func.jacrev(one))(x, p).numpy()
    got = s.jacobian_numpy(t, x.numpy(), p.numpy())
    assert got.shape == (64, s.dim, s.dim)
    np.testing.assert_allclose(got, jac, rtol=1e-12, atol=1e-9)


def test_per_trajectory_scipy_through_numpy_agrees_with_torchdiffeq():
    """Van der Pol (μ = 3): LSODA one trajectory at a time (numpy forms) against dopri5."""
    s = flowsim.get_system("van_der_pol", mu=3.0)
    x0 = s.sample_initial(6, torch.Generator().manual_seed(1))
    t = torch.linspace(0, s.timescale, 5, dtype=torch.float64)
    ref = flowsim.reference_solve(s, x0, t, rtol=1e-11, atol=1e-12)
    got = flowsim.reference_solve(s, x0, t, backend="scipy", method="LSODA", rtol=1e-10, atol=1e-12)
    assert bool(got.ok.all())
    assert float((got.x - ref.x).abs().max()) < 1e-6


def test_robertson_per_trajectory_through_numpy_agrees_with_the_stacked_torch_solve():
    """The per-trajectory path (numpy forms) and the stacked path (torch vector field and
    jacrev) are two independent implementations of the same Radau solve."""
    s = flowsim.get_system("robertson")
    x0 = s.sample_initial(4, torch.Generator().manual_seed(2))
    t = torch.tensor([0.0, 1e-3, 1.0, 40.0], dtype=torch.float64)
    kw = dict(backend="scipy", method="Radau", rtol=1e-10, atol=1e-14)
    one = flowsim.reference_solve(s, x0, t, **kw)
    stacked = flowsim.reference_solve(s, x0, t, solver=flowsim.SolverOptions(**kw, stacked=True))
    rel = ((one.x - stacked.x).abs() / stacked.x.abs().clamp_min(1e-12))
    assert bool(one.ok.all()) and float(rel[..., [0, 2]].max()) < 1e-6 and float(rel[..., 1].max()) < 1e-5
