"""Bad inputs raise FlowsimError subclasses with a message, never a bare exception."""

from __future__ import annotations

import math

import pytest
import torch
import xarray as xr

import flowsim
from flowsim import (
    CheckpointError,
    ConfigError,
    FlowsimError,
    ShapeError,
    StoreError,
    TimeGridError,
)
from flowsim.analysis import (
    ExactFlowMap,
    error_vs_jump,
    error_vs_steps,
    indicator_quality,
    normalised_error,
    relative_error,
    state_std,
)


def _store(sol, ode, **attrs):
    """The store schema, on copies (the session fixtures must stay untouched)."""
    return xr.Dataset(
        {"x": (("trajectory", "time", "state"), sol.x.numpy().copy()),
         "params": (("trajectory", "param"), sol.p.numpy().copy()),
         "status": ("trajectory", sol.status.numpy().copy())},
        coords={"time": sol.t.numpy().copy(), "state": list(ode.state_names), "param": list(ode.param_names)},
        attrs=attrs,
    )


def test_reference_of_another_system_is_refused(exact):
    pend = flowsim.get_system("pendulum")  # same dimension, different system
    sol = flowsim.reference_solve(pend, pend.sample_initial(3, 0), torch.linspace(0, 1, 11))
    with pytest.raises(CheckpointError, match="pendulum"):
        error_vs_jump(exact, sol)
    with pytest.raises(CheckpointError, match="pendulum"):
        error_vs_steps(exact, _store(sol, pend, system="pendulum"), horizon=0.5)
    with pytest.raises(CheckpointError, match="states"):  # no system attr, but other state names
        error_vs_jump(exact, _store(sol, pend))


def test_reference_of_another_dimension_is_refused(exact):
    lz = flowsim.get_system("lorenz63")
    sol = flowsim.reference_solve(lz, lz.sample_initial(2, 0), torch.linspace(0, 0.5, 6))
    ds = xr.Dataset({"x": (("trajectory", "time", "state"), sol.x.numpy())}, coords={"time": sol.t.numpy()})
    with pytest.raises(ShapeError, match="harmonic_oscillator"):
        error_vs_jump(exact, ds)


def test_jumps_beyond_trained_or_stored_range(sho, sho_ref):
    fm = ExactFlowMap(sho, max_jump=1.0)
    with pytest.raises(TimeGridError, match="max_jump"):
        error_vs_jump(fm, sho_ref, jumps=[0.5, 2.0])
    with pytest.raises(TimeGridError, match="max_jump"):
        error_vs_steps(fm, sho_ref, horizon=3.0, n_steps=(1, 4))
    long = ExactFlowMap(sho, max_jump=100.0)
    with pytest.raises(TimeGridError, match="span"):
        error_vs_jump(long, sho_ref, jumps=[10.0])
    with pytest.raises(TimeGridError, match="span"):
        error_vs_steps(long, sho_ref, horizon=10.0)
    with pytest.raises(TimeGridError, match="smallest stored gap"):
        error_vs_jump(fm, sho_ref, jumps=[1e-4])
    with pytest.raises(TimeGridError):
        error_vs_jump(fm, sho_ref, jumps=[0.5, -1.0])
    with pytest.raises(TimeGridError):  # 0.13 lies between stored gaps 0.098 and 0.196
        indicator_quality(fm, sho_ref, jumps=[0.13])


@pytest.mark.parametrize("horizon", [0.0, -1.0, math.inf, "soon"])
def test_non_positive_horizon(exact, sho_ref, horizon):
    with pytest.raises(TimeGridError):
        error_vs_steps(exact, sho_ref, horizon=horizon)


def test_other_bad_inputs(exact, sho, sho_ref):
    with pytest.raises(ConfigError, match="forward"):
        error_vs_jump(object(), sho_ref)
    with pytest.raises(ConfigError, match="Solution"):
        error_vs_jump(exact, sho_ref.x)
    with pytest.raises(ConfigError):
        error_vs_jump(exact, sho_ref, quantiles=(0.5, 1.5))
    with pytest.raises(ConfigError):
        error_vs_jump(exact, sho_ref, n_starts=0)
    with pytest.raises(ConfigError):
        error_vs_steps(exact, sho_ref, horizon=1.0, n_steps=(0, 2))
    with pytest.raises(StoreError):
        error_vs_jump(exact, xr.Dataset({"y": ("a", [1.0])}))
    failed = _store(sho_ref, sho, system="harmonic_oscillator")
    failed["status"][:] = 1
    with pytest.raises(StoreError, match="no successful"):
        error_vs_jump(exact, failed)
    with pytest.warns(UserWarning, match="trained range"):
        fm = flowsim.FlowMap(sho, width=8, depth=1)
        wide = _store(sho_ref, sho)
        wide["params"][:] = 5.0  # omega prior is [0.5, 2]
        error_vs_jump(fm, wide, n_jumps=2)


def test_metrics():
    x_ref = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64)
    x = x_ref + torch.tensor([[0.5, 0.0], [0.0, 0.1]], dtype=torch.float64)
    torch.testing.assert_close(relative_error(x, x_ref), torch.tensor([0.1, 0.1], dtype=torch.float64))
    torch.testing.assert_close(normalised_error(x, x_ref, [0.5, 0.1]),
                               torch.tensor([1.0, 1.0], dtype=torch.float64) / math.sqrt(2))
    assert state_std(x_ref).shape == (2,)
    with pytest.raises(ShapeError):
        relative_error(x, x_ref[:1])
    with pytest.raises(ShapeError):
        normalised_error(x, x_ref, [1.0, 0.0])
    with pytest.raises(FlowsimError):
        state_std(x_ref[:1])
