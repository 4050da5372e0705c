"""The ODESystem contract, the registry and from_callable."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim.systems import from_callable


def test_catalogue_has_the_17_systems():
    wanted = {"harmonic_oscillator", "pendulum", "duffing", "van_der_pol", "lorenz63", "lorenz96",
              "kepler", "double_pendulum", "lotka_volterra", "sir", "seir", "fitzhugh_nagumo",
              "hodgkin_huxley", "repressilator", "brusselator", "goodwin", "selkov", "robertson"}
    assert wanted <= set(flowsim.list_systems())


@pytest.mark.parametrize("name", flowsim.list_systems())
def test_contract(name):
    sys = flowsim.get_system(name)
    assert sys.dim == len(sys.state_names) == len(sys.units) == len(sys.default_x0)
    assert sys.timescale > 0 and sys.description and sys.citation
    x = sys.sample_initial(7, generator=3)
    assert x.shape == (7, sys.dim) and x.dtype == torch.float64
    assert torch.equal(x, sys.sample_initial(7, generator=3))
    p = sys.sample_params(7, generator=4)
    out = sys.rhs(torch.zeros(7, dtype=torch.float64), x, p)
    assert out.shape == (7, sys.dim) and torch.isfinite(out).all()
    # a single per-sample row equals the shared-parameter call
    one = sys.rhs(0.0, x[:1], p[0])
    assert torch.allclose(one, out[:1])
    for q in sys.parameters:
        assert q.prior[0] <= q.default <= q.prior[1]
    import json

    json.dumps(sys.describe())


def test_overrides_recentre_prior_and_rebuild():
    vdp = flowsim.get_system("van_der_pol", mu=1000.0)
    assert vdp.stiff and vdp.defaults == {"mu": 1000.0}
    assert vdp.parameters[0].prior[0] > 100
    assert flowsim.get_system(vdp) is vdp
    assert flowsim.get_system(vdp, mu=2.0).defaults["mu"] == 2.0


def test_from_callable_in_a_few_lines():
    def logistic(t, x, p):
        r, k = p[:, :1], p[:, 1:2]
        return r * x * (1 - x / k)

    sys = from_callable(logistic, name="logistic", state_names=["N"], params={"r": 1.0, "K": 2.0},
                        initial_box=[(0.1, 0.5)], autonomous=True, positive=True)
    x0 = sys.sample_initial(4, generator=0)
    t = torch.linspace(0, 3, 7, dtype=torch.float64)
    sol = flowsim.reference_solve(sys, x0, t, rtol=1e-11, atol=1e-12)
    exact = 2.0 / (1 + (2.0 / x0 - 1) * torch.exp(-t))
    assert torch.allclose(sol.x[..., 0], exact, rtol=1e-8)
    assert sys.with_params(r=2.0).defaults == {"r": 2.0, "K": 2.0}


def test_from_callable_bad_output_shape():
    with pytest.raises(flowsim.VectorFieldError, match="must return"):
        from_callable(lambda t, x, p: x[:, :1], name="bad", state_names=["a", "b"])


def test_rhs_bad_inputs():
    sys = flowsim.get_system("lorenz63")
    with pytest.raises(flowsim.ShapeError):
        sys.rhs(0.0, torch.zeros(4, 2))
    with pytest.raises(flowsim.ShapeError):
        sys.rhs(torch.zeros(3), torch.zeros(4, 3))
    with pytest.raises(flowsim.ParameterError, match="rho"):
        sys.rhs(0.0, torch.zeros(1, 3), {"r": 1.0})


def test_errors_are_flowsim_errors_and_not_builtins():
    import builtins

    for name in flowsim.errors.__all__:
        assert not hasattr(builtins, name)
        cls = getattr(flowsim.errors, name)
        if issubclass(cls, Warning):  # the module's warnings: filterable as UserWarning
            assert issubclass(cls, UserWarning) and name.endswith("Warning")
        else:
            assert issubclass(cls, flowsim.FlowsimError)


def test_legacy_rhs_subclass_still_works_with_a_deprecation_warning():
    import warnings

    import torch

    from flowsim import ODESystem, Parameter

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        class Decay(ODESystem):
            name = "legacy_decay"
            state_names = ("x",)
            parameters = (Parameter("k", 1.0, (0.5, 2.0)),)
            initial_box = ((0.5, 1.5),)
            timescale = 1.0

            def _rhs(self, t, x, p):
                return -p[:, :1] * x

    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    x = torch.ones(3, 1, dtype=torch.float64)
    assert torch.allclose(Decay().rhs(0.0, x), -x)
