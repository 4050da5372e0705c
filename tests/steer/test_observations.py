"""Observations, noise models and the batched log-likelihood (against closed forms), the Theoph data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import flowsim
from flowsim.errors import ConfigError, DataError, ParameterError, ShapeError, TimeGridError
from flowsim.steer import LogLikelihood, Noise, Observations, load_theoph, theoph_observations


def _frame(**over):
    base = {"subject": ["a", "a", "b", "b"], "time": [0.5, 1.0, 0.2, 2.0],
            "observable": ["q"] * 4, "value": [0.9, 0.5, 1.0, -0.4]}
    base.update(over)
    return pd.DataFrame(base)


def test_theoph_data_are_the_132_rows_of_r():
    df = load_theoph()
    assert df.shape == (132, 5) and df["Subject"].nunique() == 12
    assert df.groupby("Subject").size().eq(11).all()
    # spot values of R's datasets::Theoph
    assert df.iloc[3].tolist() == [1, 79.6, 4.02, 1.12, 10.5]
    obs = theoph_observations()
    pad = obs.padded()
    assert pad.times.shape == (12, 11) and bool(pad.mask.all())
    assert torch.allclose(pad.x0[:, 0], torch.tensor((df.groupby("Subject")["Dose"].first()
                                                      * df.groupby("Subject")["Wt"].first()).to_numpy()))
    assert obs.covariates.loc["9", "Wt"] == 86.4


def test_ragged_subjects_are_padded_and_masked():
    obs = Observations(_frame(subject=["a", "a", "a", "b"], time=[0.2, 0.5, 1.0, 2.0]), "harmonic_oscillator")
    pad = obs.padded()
    assert pad.times.tolist() == [[0.2, 0.5, 1.0], [2.0, 2.0, 2.0]]
    assert pad.mask[..., 0].tolist() == [[True, True, True], [True, False, False]]


def test_gaussian_log_likelihood_matches_the_closed_form_and_is_batched():
    """A harmonic oscillator q(t) = cos(ω t) from (1, 0): the log-likelihood by hand."""
    obs = Observations(_frame(), "harmonic_oscillator", initial=[(1.0, 0.0), (1.0, 0.0)])
    omegas = torch.tensor([[0.8], [1.0], [1.3]], dtype=torch.float64)
    ll = LogLikelihood("harmonic_oscillator", obs, params=("omega",), noise=Noise(sigma=0.3))
    got = ll(omegas)
    t = torch.tensor([0.5, 1.0, 0.2, 2.0], dtype=torch.float64)
    y = torch.tensor([0.9, 0.5, 1.0, -0.4], dtype=torch.float64)
    r = y - torch.cos(omegas * t)
    want = (-0.5 * r**2 / 0.09 - math.log(0.3) - 0.5 * math.log(2 * math.pi)).sum(-1)
    assert got.shape == (3,) and torch.allclose(got, want, rtol=1e-7)
    # per-subject theta (batch, S, n) and the profiled sigma (MLE per subject)
    per = ll.per_subject(omegas[:, None, :].expand(-1, 2, -1))
    assert torch.allclose(per.sum(-1), want, rtol=1e-7)
    prof = LogLikelihood("harmonic_oscillator", obs, params=("omega",)).per_subject(omegas)
    var = (r.reshape(3, 2, 2) ** 2).mean(-1)
    assert torch.allclose(prof, -(torch.log(var) + 1 + math.log(2 * math.pi)), rtol=1e-7)
    # differentiable in theta
    th = omegas.clone().requires_grad_(True)
    ll(th).sum().backward()
    assert th.grad is not None and bool(torch.isfinite(th.grad).all())


def test_proportional_and_lognormal_noise():
    y = torch.tensor([[[2.0], [4.0]]], dtype=torch.float64)
    f = torch.tensor([[[[2.2], [3.6]]]], dtype=torch.float64)
    m = torch.ones_like(y, dtype=torch.bool)
    prop = Noise("proportional", sigma=0.1).log_density(y, f, m)
    z = (y - f[0]) / f[0].abs()
    want = (-0.5 * z**2 / 0.01 - math.log(0.1) - torch.log(f[0]) - 0.5 * math.log(2 * math.pi)).sum()
    assert torch.allclose(prop, want.reshape(1, 1))
    logn = Noise("lognormal", sigma=0.2).log_density(y, f, m)
    z = torch.log(y) - torch.log(f[0])
    want = (-0.5 * z**2 / 0.04 - math.log(0.2) - torch.log(y) - 0.5 * math.log(2 * math.pi)).sum()
    assert torch.allclose(logn, want.reshape(1, 1))
    with pytest.raises(DataError, match="positive"):
        Noise("lognormal").check_data(torch.zeros(1, 1, 1), torch.ones(1, 1, 1, dtype=torch.bool))
    for bad in ({"kind": "cauchy"}, {"sigma": -1.0}, {"sigma": float("nan")}, {"floor": -1.0}):
        with pytest.raises(ConfigError):
            Noise(**bad)


def test_initial_states_are_fitted_through_x0_names():
    obs = theoph_observations().select([1])
    ll = LogLikelihood("theophylline", obs, params=("ka", "x0.A_gut"), noise=Noise(sigma=1.0))
    pred = ll.predict(torch.tensor([[1.5, 320.0], [1.5, 160.0]], dtype=torch.float64))
    assert torch.allclose(pred[1], pred[0] / 2, rtol=1e-6)  # linear in the dose


@pytest.mark.parametrize(("over", "err", "match"), [
    ({"time": [0.5, np.nan, 0.2, 2.0]}, TimeGridError, "NaN"),
    ({"value": [0.9, np.nan, 1.0, 0.1]}, DataError, "NaN"),
    ({"time": [-0.5, 1.0, 0.2, 2.0]}, TimeGridError, "negative"),
    ({"time": [1.0, 0.5, 0.2, 2.0]}, TimeGridError, "not increasing"),
    ({"time": [0.5, 0.5, 0.2, 2.0]}, DataError, "two samples"),
    ({"observable": ["q", "q", "q", "energy"]}, DataError, "energy"),
    ({"value": ["a", "b", "c", "d"]}, DataError, "numbers"),
])
def test_bad_rows_are_refused(over, err, match):
    with pytest.raises(err, match=match):
        Observations(_frame(**over), "harmonic_oscillator")


def test_bad_tables_and_names_are_refused(tmp_path):
    with pytest.raises(DataError, match="lack the column"):
        Observations(_frame().drop(columns="value"), "harmonic_oscillator")
    path = tmp_path / "d.csv"
    load_theoph().drop(columns="Time").to_csv(path, index=False)
    with pytest.raises(DataError, match="Time|time"):
        Observations.from_csv(path, "theophylline", columns={"subject": "Subject", "time": "Time"},
                              observables=("conc",), observe=lambda x, p: x[..., 1:])
    with pytest.raises(DataError, match="no data file"):
        Observations.from_csv(tmp_path / "missing.csv", "theophylline")
    raw, th = load_theoph(), flowsim.get_system("theophylline")
    with pytest.raises(DataError, match=r"lack the column\(s\) \['Height'\]"):
        Observations.from_dataframe(raw, th, columns={"subject": "Subject", "time": "Time"},
                                    observables=("conc",), covariates=("Wt", "Height"),
                                    observe=th.concentration, initial=lambda c: (c["Dose"], 0.0))
    kw = dict(columns={"subject": "Subject", "time": "Time"}, observables=("conc",), covariates=("Wt",),
              observe=th.concentration)
    with pytest.raises(DataError, match=r"initial= raised KeyError: 'Height' for the covariates \['Wt'\]"):
        Observations.from_dataframe(raw, th, initial=lambda c: (c["Height"], 0.0), **kw)
    sir = pd.DataFrame([{"subject": "a", "time": 1.0, "observable": "I", "value": 0.1}])
    with pytest.raises(DataError, match=r">= 0 \(a positive system\)"):
        Observations(sir, "sir", initial=[(0.9, -0.1, 0.2)])
    with pytest.raises(DataError, match=r"lack the column\(s\) \['Tme'\]"):  # named, so it must exist
        Observations.from_dataframe(raw.rename(columns={"Time": "time"}), th,
                                    columns={"subject": "Subject", "time": "Tme"}, observables=("conc",),
                                    observe=th.concentration)
    with pytest.raises(DataError, match="unknown subjects"):
        theoph_observations().select([13])
    with pytest.raises(DataError, match="unknown subjects"):
        Observations(_frame(), "harmonic_oscillator", t0={"zz": 0.0})
    with pytest.raises(TimeGridError, match="before its start"):
        Observations(_frame(), "harmonic_oscillator", t0={"b": 0.3})
    with pytest.raises(DataError, match="vary within"):
        Observations(_frame(w=[1, 2, 3, 3]), "harmonic_oscillator", covariates=("w",))
    obs = theoph_observations()
    with pytest.raises(ParameterError, match="unknown parameter 'CL'"):
        LogLikelihood("theophylline", obs, params=("ka", "CL"))
    with pytest.raises(ParameterError, match="fixed names unknown"):
        LogLikelihood("theophylline", obs, params=("ka",), fixed={"Vd": 3.0})
    ll = LogLikelihood("theophylline", obs, params=("ka", "ke", "V"))
    with pytest.raises(ShapeError, match="theta must be"):
        ll(torch.ones(2, 4, dtype=torch.float64))


def test_trained_range_refuses_warns_or_gives_minus_inf():
    fm = flowsim.FlowMap("theophylline", width=8, depth=1, max_jump=25.0)
    obs = theoph_observations().select([1, 2])
    theta = torch.tensor([[1.5, 0.09, 32.0], [20.0, 0.09, 32.0]])
    with pytest.raises(ParameterError, match="trained range"):
        LogLikelihood(fm, obs, params=("ka", "ke", "V"), noise=Noise(sigma=1.0))(theta)
    with pytest.warns(flowsim.ExtrapolationWarning):
        flowsim.steer.check_range(fm, theta, ("ka", "ke", "V"), on_outside="warn")
    out = LogLikelihood(fm, obs, params=("ka", "ke", "V"), noise=Noise(sigma=1.0), on_outside="-inf")(theta)
    assert torch.isfinite(out[0]) and out[1] == -math.inf
    with pytest.raises(ParameterError, match="trained range"):
        flowsim.steer.resolve_bounds(fm, ["ka"], {"ka": (0.1, 5.0)})
    lo, hi = flowsim.steer.resolve_bounds("theophylline", ["ka"], {"ka": (0.1, 30.0)})  # solver: prior only
    assert hi.item() == 30.0


def test_csv_xarray_and_dataframe_give_the_same_observations(tmp_path):
    import xarray as xr

    frame = _frame()
    path = tmp_path / "d.csv"
    frame.rename(columns={"subject": "id", "time": "t"}).to_csv(path, index=False)
    a = Observations(frame, "harmonic_oscillator")
    b = Observations.from_csv(path, "harmonic_oscillator", columns={"subject": "id", "time": "t"})
    ds = xr.Dataset({"q": (("subject", "time"), [[0.9, 0.5, np.nan, np.nan], [np.nan, np.nan, 1.0, -0.4]])},
                    coords={"subject": ["a", "b"], "time": [0.5, 1.0, 0.2, 2.0]}).sortby("time")
    c = Observations.from_xarray(ds, "harmonic_oscillator")
    for o in (b, c):
        assert o.subjects == a.subjects
        for x, y in zip(o.padded(), a.padded()):
            assert torch.equal(x, y)
