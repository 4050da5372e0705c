"""SolverOptions: validation, round trips, the keyword form, and what stores record."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import flowsim
from flowsim import SolverError, SolverOptions, reference_solve
from flowsim.data import open_store, simulate_ensemble
from flowsim.solve import METHODS, integrate, solver_options


@pytest.fixture
def sho():
    return flowsim.get_system("harmonic_oscillator")


def test_defaults_per_backend():
    assert SolverOptions().method == "dopri5"
    assert SolverOptions(backend="scipy").method == "Radau"
    assert SolverOptions(backend="torchode").method == "dopri5"
    assert SolverOptions().rtol == flowsim.solve.DEFAULT_RTOL
    assert set(METHODS) == {"torchdiffeq", "scipy", "torchode"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(backend="jax"), "unknown backend"),
        (dict(backend=["scipy"]), "unknown backend"),
        (dict(method="rk99"), "unknown torchdiffeq method"),
        (dict(backend="scipy", method="dopri5"), "backend='torchdiffeq'"),
        (dict(backend="torchode", method="rk4"), "unknown torchode method"),
        (dict(method="Radau"), "backend='scipy'"),
        (dict(rtol=-1.0), "rtol"),
        (dict(atol=0.0), "atol"),
        (dict(rtol=float("nan")), "rtol"),
        (dict(rtol=True), "rtol"),
        (dict(max_steps=0), "max_steps"),
        (dict(max_steps=2.5), "max_steps"),
        (dict(max_steps=float("inf")), "max_steps"),
        (dict(method="rk4"), "needs exactly one of step_size"),
        (dict(method="rk4", step_size=0.1, n_steps=10), "got both"),
        (dict(method="rk4", step_size=-0.1), "step_size"),
        (dict(method="euler", n_steps=0), "n_steps"),
        (dict(step_size=0.1), "fixed-step methods"),
        (dict(backend="scipy", n_steps=4), "fixed-step methods"),
    ],
)
def test_invalid_options_raise_at_construction(kwargs, match):
    with pytest.raises(SolverError, match=match) as info:
        SolverOptions(**kwargs)
    assert isinstance(info.value, flowsim.FlowsimError) and len(str(info.value)) > 20


def test_frozen_and_replace_revalidates():
    opts = SolverOptions(rtol=1e-6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.rtol = 1e-3  # type: ignore[misc]
    assert dataclasses.replace(opts, method="bosh3").method == "bosh3"
    with pytest.raises(SolverError):
        dataclasses.replace(opts, method="rk4")


@pytest.mark.parametrize("opts", [
    SolverOptions(),
    SolverOptions(backend="scipy", method="LSODA", rtol=1e-5, atol=1e-7, max_steps=50),
    SolverOptions(method="rk4", step_size=0.01),
    SolverOptions(method="midpoint", n_steps=12),
    SolverOptions(backend="torchode", method="tsit5", rtol=1e-4),
])
def test_round_trip_through_json(opts):
    d = json.loads(json.dumps(opts.to_dict()))
    back = SolverOptions.from_dict(d)
    assert back == opts and hash(back) == hash(opts)
    assert SolverOptions.from_attrs({"solver_json": json.dumps(d)}) == opts


def test_from_dict_refuses_unknown_keys_and_old_attrs_still_read():
    with pytest.raises(SolverError, match="unknown solver option"):
        SolverOptions.from_dict({"method": "dopri5", "tol": 1e-3})
    old = {"method": "Radau", "backend": "scipy", "rtol": 1e-6, "atol": 1e-9, "seed": 0}
    assert SolverOptions.from_attrs(old) == SolverOptions(backend="scipy", rtol=1e-6, atol=1e-9)


def test_reference_preset():
    rob = flowsim.get_system("robertson")
    assert SolverOptions.reference(rob) == SolverOptions(backend="scipy", method="Radau")
    lv = flowsim.get_system("lotka_volterra")
    ref = SolverOptions.reference(lv, rtol=1e-10, atol=1e-10)
    assert (ref.backend, ref.method, ref.rtol) == ("torchdiffeq", "dopri5", 1e-10)


def test_keyword_and_object_forms_give_identical_solutions(sho):
    x0, t = sho.sample_initial(5, generator=4), torch.linspace(0.0, 3.0, 7)
    for kw in (dict(method="bosh3", rtol=1e-7, atol=1e-9), dict(method="rk4", step_size=0.05),
               dict(backend="scipy", method="DOP853", rtol=1e-8, atol=1e-10)):
        a = reference_solve(sho, x0, t, **kw)
        b = reference_solve(sho, x0, t, solver=SolverOptions(**kw))
        assert torch.equal(a.x, b.x) and torch.equal(a.nfe, b.nfe)
        assert a.solver == b.solver == SolverOptions(**kw)
        assert (a.method, a.backend, a.rtol) == (b.method, b.backend, b.rtol)


def test_both_forms_at_once_are_refused(sho):
    with pytest.raises(SolverError, match="not both"):
        reference_solve(sho, sho.sample_initial(2, 0), torch.linspace(0, 1, 3),
                        solver=SolverOptions(), rtol=1e-3)
    with pytest.raises(SolverError, match="SolverOptions"):
        solver_options("dopri5", {})  # type: ignore[arg-type]


def test_n_steps_takes_equal_steps_over_the_grid(sho):
    x0 = sho.sample_initial(3, generator=0).double()
    t = torch.tensor([0.0, 2.0], dtype=torch.float64)
    p = sho.default_params(3, dtype=torch.float64)
    sol = integrate(sho, x0, t, p, SolverOptions(method="rk4", n_steps=20))
    assert sol.stats["nfe_total"] == 80 and bool(sol.ok.all())
    exact = sho.exact_solution(t, x0, p)
    assert (sol.x - exact).abs().max() < 1e-5


def test_integrate_without_finite_checks_flags_diverging_rows():
    poison = flowsim.from_callable(lambda t, x, p: x**2, name="blowup", state_names=["y"])
    x0 = torch.tensor([[0.1], [5.0], [0.2]], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    p = torch.zeros(3, 0, dtype=torch.float64)
    sol = integrate(poison, x0, t, p, SolverOptions(method="rk4", n_steps=2000), check_finite=False)
    assert sol.status.tolist() == [0, int(flowsim.Status.NONFINITE), 0]
    assert bool(torch.isnan(sol.x[1]).all()) and bool(torch.isfinite(sol.x[[0, 2]]).all())


def test_store_attrs_record_the_solver_and_old_keys_still_resume(tmp_path):
    t = torch.linspace(0.0, 2.0, 5)
    kw = dict(store=tmp_path / "s.zarr", client="sync", progress=False, chunk_size=4)
    opts = SolverOptions(method="bosh3", rtol=1e-6, atol=1e-8)
    ds = simulate_ensemble("fitzhugh_nagumo", 8, t, solver=opts, **kw)
    assert SolverOptions.from_attrs(ds.attrs) == opts
    assert (ds.attrs["method"], ds.attrs["backend"], ds.attrs["rtol"]) == ("bosh3", "torchdiffeq", 1e-6)
    config = json.loads(ds.attrs["ensemble_json"])
    assert {"method", "rtol", "atol", "backend", "max_steps", "batch_size"} <= set(config)
    assert "step_size" not in config and "n_steps" not in config  # keys of existing stores unchanged
    # the keyword form describes the same ensemble: the store resumes instead of refusing
    again = simulate_ensemble("fitzhugh_nagumo", 8, t, method="bosh3", rtol=1e-6, atol=1e-8, **kw)
    assert torch.equal(torch.as_tensor(again.x.values), torch.as_tensor(ds.x.values))
    assert SolverOptions.from_attrs(open_store(tmp_path / "s.zarr").attrs) == opts
    with pytest.raises(SolverError, match="not both"):
        simulate_ensemble("fitzhugh_nagumo", 8, t, solver=opts, rtol=1e-3, **kw)
