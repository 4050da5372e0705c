"""Issue 18, solve layer: empty batches, complex numbers, non-integer counts, failing user code
and NaN right-hand sides in reference solves (and the argument checks of simulate_ensemble)."""

from __future__ import annotations

import warnings

import pytest
import torch

import flowsim
from flowsim import (
    ConfigError,
    FailedTrajectoryWarning,
    ParameterError,
    ShapeError,
    SolverError,
    SolverOptions,
    Status,
    TimeGridError,
    VectorFieldError,
    reference_solve,
)
from flowsim.solve import torchode_available
from flowsim.systems import from_callable

T = torch.linspace(0, 1, 5, dtype=torch.float64)
BACKENDS = ["torchdiffeq", "scipy"] + (["torchode"] if torchode_available() else [])


@pytest.fixture(scope="module")
def lv():
    return flowsim.get_system("lotka_volterra")


def _x(n=2):
    return torch.ones(n, 2, dtype=torch.float64)


# ---------------------------------------------------------------- numbers that make no sense
@pytest.mark.parametrize("backend", ["torchdiffeq", "scipy"])
def test_empty_batch_is_refused(lv, backend):
    with pytest.raises(ShapeError, match="empty batch"):
        reference_solve(lv, torch.zeros(0, 2, dtype=torch.float64), T, backend=backend)


def test_complex_x_t_p_are_refused(lv):
    with pytest.raises(ShapeError, match="x0 is complex"):
        reference_solve(lv, _x().to(torch.complex128), T)
    with pytest.raises(TimeGridError, match="t is complex"):
        reference_solve(lv, _x(), T.to(torch.complex128))
    with pytest.raises(TimeGridError, match="t is complex"):
        reference_solve(lv, _x(), [0.0, 1j])
    with pytest.raises(ParameterError, match="complex"):
        reference_solve(lv, _x(), T, torch.ones(4, dtype=torch.complex128))


@pytest.mark.parametrize("bad", [-1, 2.5, "a", None, True])
def test_max_failed_solves_must_be_a_non_negative_integer(lv, bad):
    with pytest.raises(SolverError, match="max_failed_solves must be an integer >= 0"):
        reference_solve(lv, _x(), T, max_failed_solves=bad)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "a"])
def test_chunk_size_must_be_a_positive_integer(lv, bad):
    with pytest.raises(SolverError, match="chunk_size must be a positive integer"):
        reference_solve(lv, _x(), T, chunk_size=bad)


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"method": "rk4", "step_size": -0.1}, "step_size must be a positive finite number"),
        ({"method": "rk4", "step_size": 0.0}, "step_size must be a positive finite number"),
        ({"method": "rk4", "n_steps": 2.5}, "n_steps must be a positive integer"),
        ({"method": "rk4", "n_steps": 0}, "n_steps must be a positive integer"),
        ({"max_steps": 10.5}, "max_steps must be a positive integer"),
        ({"max_steps": -5}, "max_steps must be a positive integer"),
        ({"rtol": -1e-6}, "rtol must be a positive finite number"),
    ],
)
def test_solver_options_refuse_bad_steps(kwargs, phrase):
    with pytest.raises(SolverError, match=phrase):
        SolverOptions(**kwargs)


def test_integral_float_step_counts_are_taken_as_integers():
    assert SolverOptions(max_steps=1e3).max_steps == 1000
    assert type(SolverOptions(method="rk4", n_steps=64.0).n_steps) is int


def test_fit_config_refuses_a_non_integer_step_count():
    with pytest.raises(ConfigError, match="steps must be a positive integer"):
        flowsim.FitConfig(steps=10.5)


def test_simulate_ensemble_refuses_zero_trajectories_and_batch_size_zero(lv, tmp_path):
    from flowsim.data import simulate_ensemble

    with pytest.raises(ConfigError, match="n must be a positive integer"):
        simulate_ensemble(lv, 0, T, store=tmp_path / "a.zarr", client="sync", progress=False)
    for bad in (0, -1, 2.5):
        with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
            simulate_ensemble(lv, 4, T, store=tmp_path / "b.zarr", client="sync", progress=False,
                              batch_size=bad)
    assert not (tmp_path / "b.zarr").exists()  # refused before anything was written


# ---------------------------------------------------------------- user code that fails
def _boom(t, x, p):
    raise KeyError("boom")


@pytest.mark.parametrize("backend", BACKENDS)
def test_raising_vector_field_is_a_vector_field_error(backend):
    sys_ = from_callable(_boom, name="bad", state_names=["x"], timescale=1.0, check=False)
    with pytest.raises(VectorFieldError, match="vector field of 'bad' raised KeyError") as info:
        reference_solve(sys_, torch.ones(2, 1, dtype=torch.float64), T, backend=backend)
    assert isinstance(info.value.__cause__, KeyError)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vector_field_failing_mid_solve_is_a_vector_field_error(backend):
    def late(t, x, p):  # fine at the start, raises once the state has decayed below 0.5
        if bool((x < 0.5).any()):
            raise ValueError("state too small for my model")
        return -x

    sys_ = from_callable(late, name="late", state_names=["x"], initial_box=[(1.0, 2.0)],
                         timescale=1.0)
    with pytest.raises(VectorFieldError, match="during the solve") as info:
        reference_solve(sys_, torch.ones(3, 1, dtype=torch.float64), torch.linspace(0, 2, 3),
                        backend=backend)
    assert isinstance(info.value.__cause__, ValueError)


def test_unbatched_subclass_is_caught_before_the_solve():
    class OneState(flowsim.ODESystem):  # written for one state: x[0], x[1] are rows
        name = "one_state"
        state_names = ("x", "y")
        initial_box = ((-1.0, 1.0), (-1.0, 1.0))

        def vector_field(self, t, x, p):
            return torch.stack([x[1], -x[0]])

    with pytest.raises(VectorFieldError, match="f must accept a batch"):
        reference_solve(OneState(), torch.rand(2, 2, dtype=torch.float64), T)
    with pytest.raises(VectorFieldError, match="f must accept a batch"):
        reference_solve(OneState(), torch.rand(5, 2, dtype=torch.float64), T)


def test_wrong_dtype_is_caught_before_the_solve():
    class Single(flowsim.ODESystem):
        name = "single"
        state_names = ("x",)
        initial_box = ((0.0, 1.0),)

        def vector_field(self, t, x, p):
            return (-x).float()

    with pytest.raises(VectorFieldError, match="returned torch.float32 for torch.float64"):
        reference_solve(Single(), torch.ones(2, 1, dtype=torch.float64), T)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_vector_field_gives_status_codes_and_names_the_rows(backend):
    nan = from_callable(lambda t, x, p: torch.where(x > 0.5, torch.nan, -x), name="nan",
                        state_names=["x"], timescale=1.0)
    x0 = torch.tensor([[0.1], [0.9], [0.2], [0.7], [0.3]], dtype=torch.float64)
    with pytest.warns(FailedTrajectoryWarning, match=r"2 of 5 trajectories failed.*NONFINITE rows \[1, 3\]"):
        sol = reference_solve(nan, x0, T, backend=backend)
    assert sol.status.tolist() == [0, int(Status.NONFINITE), 0, int(Status.NONFINITE), 0]
    assert torch.isnan(sol.x[[1, 3]]).all() and torch.isfinite(sol.x[[0, 2, 4]]).all()


def test_failure_warning_lists_the_first_five_rows():
    nan = from_callable(lambda t, x, p: torch.where(x > 0.5, torch.nan, -x), name="nan",
                        state_names=["x"], timescale=1.0)
    x0 = torch.full((8, 1), 0.9, dtype=torch.float64)
    with pytest.warns(FailedTrajectoryWarning, match=r"rows \[0, 1, 2, 3, 4\] and 3 more"):
        reference_solve(nan, x0, T)


def test_successful_solve_does_not_warn(lv):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bool(reference_solve(lv, lv.sample_initial(3, 0), T).ok.all())


def test_params_given_by_another_name_points_to_p():
    sys_ = flowsim.get_system("lotka_volterra")
    with pytest.raises(SolverError, match=r"parameters as p="):
        flowsim.reference_solve(sys_, sys_.sample_initial(2, 0), torch.linspace(0, 1, 3),
                                params=sys_.sample_params(2, 0))
