"""Issue 18, systems layer: numbers that make no sense and user code that fails are refused
with a FlowsimError subclass that says what was wrong (never accepted, never a raw exception)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import flowsim
from flowsim import ConfigError, ParameterError, ShapeError, TimeGridError, VectorFieldError
from flowsim.systems import from_callable
from flowsim.systems.checks import estimate_timescale, is_complex, round_125


def _decay(t, x, p):
    return -p[:, :1] * x


# ---------------------------------------------------------------- parameters and priors
@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"default": 1.0, "prior": (2.0, 0.0)}, "prior low 2.0 > high 0.0"),
        ({"default": 5.0, "prior": (0.0, 1.0)}, "default 5.0 lies outside its prior"),
        ({"default": 1.0, "prior": (-6.0, 2.0), "domain": (0.0, 10.0)}, "reaches outside its domain"),
        ({"default": 1.0, "prior": (0.0, 2.0), "domain": (5.0, 1.0)}, "domain low 5.0 > high 1.0"),
        ({"default": math.nan, "prior": (0.0, 2.0)}, "must be finite"),
        ({"default": 1.0, "prior": (0.0, math.inf)}, "must be finite"),
        ({"default": 1j, "prior": (0.0, 2.0)}, "must be a real number"),
        ({"default": 1.0, "prior": 2.0}, "must be a pair"),
    ],
)
def test_parameter_refuses_nonsense(kwargs, phrase):
    with pytest.raises(ParameterError, match=phrase.replace("(", r"\(").replace(")", r"\)")):
        flowsim.Parameter("a", **kwargs)


def test_parameter_accepts_a_point_prior_and_normalises_to_floats():
    q = flowsim.Parameter("a", np.float32(1.0), prior=(1, 1))
    assert q.prior == (1.0, 1.0) and type(q.default) is float


def test_from_callable_refuses_a_bad_prior_or_default():
    with pytest.raises(ParameterError, match="prior low 2.0 > high 0.0"):
        from_callable(_decay, name="d", state_names=["x"], params={"k": 1.0}, prior={"k": (2, 0)})
    with pytest.raises(ParameterError, match="outside its prior"):
        from_callable(_decay, name="d", state_names=["x"], params={"k": 5.0}, prior={"k": (0, 1)})


# ---------------------------------------------------------------- timescales
@pytest.mark.parametrize("bad", [-1.0, 0.0, math.inf, math.nan])
def test_from_callable_refuses_a_non_positive_timescale(bad):
    with pytest.raises(ConfigError, match="timescale must be a positive finite number"):
        from_callable(_decay, name="d", state_names=["x"], params={"k": 1.0}, timescale=bad)


def test_subclass_with_a_negative_timescale_is_refused():
    class Neg(flowsim.ODESystem):
        name = "neg"
        state_names = ("x",)
        timescale = -1.0
        initial_box = ((0.0, 1.0),)

        def vector_field(self, t, x, p):
            return -x

    with pytest.raises(ConfigError, match=r"neg \(Neg\): timescale must be a positive"):
        Neg()


def test_subclass_with_an_inverted_initial_box_is_refused():
    class Box(flowsim.ODESystem):
        name = "box"
        state_names = ("x",)
        initial_box = ((1.0, 0.0),)

        def vector_field(self, t, x, p):
            return -x

    with pytest.raises(ConfigError, match="low > high"):
        Box()


def test_from_callable_estimates_the_timescale_and_records_that():
    fast = from_callable(_decay, name="fast", state_names=["x"], params={"k": 10.0})
    slow = from_callable(_decay, name="slow", state_names=["x"], params={"k": 0.1})
    assert fast.describe()["timescale_estimated"] is True
    assert slow.timescale == pytest.approx(100 * fast.timescale)  # rate ∝ k, rounded alike
    given = from_callable(_decay, name="given", state_names=["x"], params={"k": 1.0}, timescale=3.0)
    assert given.timescale == 3.0 and given.describe()["timescale_estimated"] is False
    assert fast.with_params(k=12.0).timescale == fast.timescale  # kept by with_params


def test_estimated_timescale_is_never_longer_than_the_catalogues():
    for name in ("harmonic_oscillator", "lotka_volterra", "van_der_pol", "fitzhugh_nagumo"):
        system = flowsim.get_system(name)
        est = estimate_timescale(system)
        assert system.timescale / 8 <= est <= system.timescale, name


def test_timescale_that_cannot_be_estimated_asks_for_one():
    with pytest.raises(ConfigError, match="pass timescale="):
        from_callable(lambda t, x, p: torch.zeros_like(x), name="still", state_names=["x"])


def test_round_125():
    assert [round_125(v) for v in (0.0031, 1.0, 1.99, 2.0, 4.9, 9.99, 6.3e4)] == \
        [0.002, 1.0, 1.0, 2.0, 2.0, 5.0, 5e4]


# ---------------------------------------------------------------- user code that fails
def _raises(t, x, p):
    raise KeyError("boom")


@pytest.mark.parametrize(
    ("f", "phrase"),
    [
        (_raises, "vector field of 'bad' raised KeyError: 'boom'"),
        (lambda x, p: x, "raised TypeError"),  # wrong signature
        (lambda t, x, p: x[:, :1].expand(-1, 1).sum(1), r"returned shape \(3,\)"),
        (lambda t, x, p: (-x).numpy(), "returned a ndarray"),
        (lambda t, x, p: (-x).float(), "returned torch.float32 for torch.float64 states"),
    ],
)
def test_from_callable_refuses_a_failing_function_naming_the_system(f, phrase):
    with pytest.raises(VectorFieldError, match=phrase) as info:
        from_callable(f, name="bad", state_names=["x", "y"], timescale=1.0)
    assert "must accept a batch" in str(info.value) or "dtype" in str(info.value)


def test_user_error_is_chained():
    with pytest.raises(VectorFieldError) as info:
        from_callable(_raises, name="bad", state_names=["x"], timescale=1.0)
    assert isinstance(info.value.__cause__, KeyError)


def test_function_written_for_one_state_is_detected():
    def one_state(t, x, p):  # x[0], x[1]: rows, not columns
        return torch.stack([x[1], -x[0]])

    with pytest.raises(VectorFieldError, match="f must accept a batch"):
        from_callable(one_state, name="osc", state_names=["x", "y"], timescale=1.0)

    def first_sample_params(t, x, p):  # the right shape, but every row uses p[0]
        return -p[0] * x

    with pytest.raises(VectorFieldError, match="mixes the samples of a batch"):
        from_callable(first_sample_params, name="osc", state_names=["x", "y"], params={"k": 1.0},
                      timescale=1.0)


def test_sampler_of_the_wrong_shape_is_refused():
    with pytest.raises(ShapeError, match=r"sample_initial\(n, generator\) must return \(n, dim\)"):
        from_callable(_decay, name="d", state_names=["x"], params={"k": 1.0}, timescale=1.0,
                      sample_initial=lambda n, g: torch.rand(n, 3, generator=g))


def test_not_callable_is_refused():
    with pytest.raises(ConfigError, match="must be a callable"):
        from_callable(3.0, name="x", state_names=["x"])


def test_rhs_wraps_a_failing_vector_field():
    sys_ = from_callable(_raises, name="bad", state_names=["x"], timescale=1.0, check=False)
    with pytest.raises(VectorFieldError, match="'bad' raised KeyError") as info:
        sys_.rhs(0.0, torch.ones(2, 1, dtype=torch.float64))
    assert isinstance(info.value.__cause__, KeyError)


def test_nan_returning_function_is_accepted_at_construction():
    # NaN is reported by the solvers' status codes, not refused up front
    sys_ = from_callable(lambda t, x, p: torch.where(x > 0.5, torch.nan, -x), name="nan",
                         state_names=["x"], timescale=1.0)
    assert torch.isnan(sys_.rhs(0.0, torch.tensor([[0.9]], dtype=torch.float64))).all()


# ---------------------------------------------------------------- empty batches, complex numbers
def test_rhs_refuses_an_empty_batch_and_complex_inputs():
    lv = flowsim.get_system("lotka_volterra")
    x = torch.ones(2, 2, dtype=torch.float64)
    with pytest.raises(ShapeError, match="empty batch"):
        lv.rhs(0.0, torch.zeros(0, 2, dtype=torch.float64))
    with pytest.raises(ShapeError, match="x is complex"):
        lv.rhs(0.0, x.to(torch.complex128))
    with pytest.raises(TimeGridError, match="t is complex"):
        lv.rhs(torch.tensor(1j), x)
    with pytest.raises(ParameterError, match="complex"):
        lv.rhs(0.0, x, torch.ones(4, dtype=torch.complex128))
    with pytest.raises(ParameterError, match="complex"):
        lv.rhs(0.0, x, {"alpha": 1 + 1j})
    with pytest.raises(ShapeError, match="complex"):
        lv.rhs(0.0, np.ones((2, 2), dtype=np.complex64))


def test_is_complex():
    assert is_complex(np.complex128(1)) and is_complex(np.ones(2, dtype=np.complex64))
    assert not is_complex([1.0, 2.0]) and not is_complex(torch.ones(2)) and not is_complex(None)


# ---------------------------------------------------------------- the typed spec behind from_callable
def test_from_callable_takes_a_spec_or_keywords_not_both():
    from flowsim.systems import CallableSpec

    spec = CallableSpec("decay", ["x"], params={"k": 1.0}, autonomous=True, timescale=2.0)
    a = from_callable(_decay, spec)
    b = from_callable(_decay, name="decay", state_names=["x"], params={"k": 1.0}, autonomous=True,
                      timescale=2.0)
    assert a.describe() == b.describe()
    with pytest.raises(ConfigError, match="not both"):
        from_callable(_decay, spec, timescale=3.0)
    with pytest.raises(ConfigError, match=r"unknown keyword\(s\) \['timescal'\]"):
        from_callable(_decay, name="d", state_names=["x"], timescal=1.0)
    with pytest.raises(ConfigError, match="needs state_names="):
        from_callable(_decay, name="d")
    with pytest.raises(ConfigError, match="must be a flowsim.systems.CallableSpec"):
        from_callable(_decay, {"name": "d"})


def test_initial_box_by_state_name_and_bad_boxes():
    s = from_callable(_decay, name="d", state_names=["x"], params={"k": 1.0}, initial_box={"x": (0.5, 2.0)})
    assert s.initial_box == ((0.5, 2.0),)
    for bad in ({"y": (0, 1)}, [("a", "b")], [(0, 1), (0, 1)], [(2, 1)]):
        with pytest.raises(ConfigError, match="initial_box"):
            from_callable(_decay, name="d", state_names=["x"], params={"k": 1.0}, initial_box=bad)


# ---------------------------------------------------------------- draws and positive systems
def _logistic(t, x, p):
    return p[:, :1] * x * (1 - x / p[:, 1:2])


@pytest.mark.parametrize("name", ["fitzhugh_nagumo", "kepler"])
@pytest.mark.parametrize("n", [-3, 2.5, True])
def test_a_draw_of_a_negative_or_fractional_count_is_refused(name, n):
    sys_ = flowsim.get_system(name)
    with pytest.raises(ConfigError, match="how many to draw"):
        sys_.sample_initial(n)
    with pytest.raises(ConfigError, match="how many to draw"):
        sys_.sample_params(n)
    assert sys_.sample_initial(0).shape == (0, sys_.dim)
    with pytest.raises(ConfigError, match="generator must be a torch.Generator, an int seed or None"):
        sys_.sample_initial(2, generator="x")


def test_a_positive_system_draws_positive_initial_states_by_default():
    lg = from_callable(_logistic, name="logistic", state_names=["N"], params={"r": 1.0, "K": 10.0},
                       autonomous=True, positive=True)
    x0 = lg.sample_initial(256, 0)
    assert lg.initial_box == ((0.1, 1.0),) and bool((x0 > 0).all())
    sol = flowsim.reference_solve(lg, x0, torch.linspace(0, 5, 6), lg.sample_params(256, 0))
    assert bool((sol.status == 0).all())  # the old default box [-1, 1] failed half of them


def test_a_positive_system_with_a_box_reaching_zero_is_refused():
    with pytest.raises(ConfigError, match=r"positive=True: the initial box of \['N'\] reaches 0"):
        from_callable(_logistic, name="logistic", state_names=["N"], params={"r": 1.0, "K": 10.0},
                      positive=True, initial_box={"N": (0.0, 1.0)})
