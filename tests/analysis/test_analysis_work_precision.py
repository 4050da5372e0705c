"""work_precision on a tiny case; speedup_at_matched_error and break-even on hand-made data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr

import flowsim
from flowsim import CheckpointError, ConfigError, ShapeError, SolverError, TimeGridError
from flowsim.analysis import (
    SOLVERS,
    ExactFlowMap,
    break_even_trajectories,
    speedup_at_matched_error,
    work_precision,
)
from flowsim.solve import torchode_available

VARIABLES = ("wall_time", "wall_time_per_trajectory", "nfe", "median_relative_error",
             "median_normalised_error", "n_failed", "n_timed", "scaled")


@pytest.fixture(scope="module")
def tiny(exact, sho):
    x0 = sho.sample_initial(6, generator=11)
    return work_precision(exact, sho, x0, {"omega": 1.2}, horizon=2.0, n_jumps=(1, 2),
                          tolerances=(1e-3, 1e-6), rk4_steps=(8, 32), repeats=1,
                          training_time=30.0)


def test_tiny_work_precision(tiny):
    ds = tiny
    for name in VARIABLES:
        assert name in ds and ds[name].dims == ("setting",)
    methods = set(ds.method.values.tolist())
    expected = {"flowmap", "dopri5", "bosh3", "rk4", "scipy_lsoda", "scipy_radau", "scipy_bdf"}
    if torchode_available():
        expected.add("torchode")
    else:
        assert any("torchode" in s for s in ds.attrs["skipped_solvers"])
    assert methods == expected
    fm = ds.where(ds.method == "flowmap", drop=True)
    assert fm.setting_value.values.tolist() == [1.0, 2.0]
    assert float(fm.median_relative_error.max()) <= 1e-6  # exact map vs the 1e-10 reference
    np.testing.assert_array_equal(fm.nfe.values, [1.0, 2.0])
    dop = ds.where(ds.method == "dopri5", drop=True).sortby("setting_value")
    assert float(dop.median_relative_error[0]) < float(dop.median_relative_error[1])  # tighter is better
    assert (dop.nfe > 0).all() and (dop.n_failed == 0).all()
    rk4 = ds.where(ds.method == "rk4", drop=True).sortby("setting_value")
    np.testing.assert_array_equal(rk4.nfe.values, [32.0, 128.0])  # 4 evaluations per step
    sci = ds.where(ds.method == "scipy_lsoda", drop=True)
    # stacked over the whole batch (banded Jacobian): timed on every state, nothing scaled up
    assert not bool(sci.scaled.any()) and (sci.n_timed == 6).all() and (sci.n_failed == 0).all()
    assert "stacked" in ds.attrs["scipy_note"]
    assert ds.attrs["n_states"] == 6 and ds.attrs["horizon"] == 2.0 and ds.attrs["training_time"] == 30.0
    assert "dopri5" in ds.attrs["reference"]
    assert (ds.wall_time > 0).all()
    res = speedup_at_matched_error(ds)
    assert res.matched is False and math.isnan(res.speedup)  # no dopri5 setting reaches ~1e-10
    assert "no dopri5 setting" in res.note


def test_given_reference_and_subset(exact, sho):
    x0 = sho.sample_initial(4, generator=12)
    sol = flowsim.reference_solve(sho, x0, torch.linspace(0, 1.5, 4, dtype=torch.float64), rtol=1e-11,
                                  atol=1e-12)
    ds = work_precision(exact, sho, x0, horizon=1.5, n_jumps=(1,), tolerances=(1e-4,), solvers=("rk4",),
                        rk4_steps=(4,), reference=sol, repeats=1)
    assert ds.attrs["reference"].startswith("given Solution")
    ds2 = work_precision(exact, sho, x0, horizon=1.5, n_jumps=(1,), tolerances=(1e-4,), solvers=("rk4",),
                         rk4_steps=(4,), reference=sol.x[:2, -1], repeats=1)
    assert ds2.attrs["n_reference"] == 2
    assert float(ds2.median_relative_error[0]) <= 1e-8
    with pytest.raises(TimeGridError):
        work_precision(exact, sho, x0, horizon=2.0, n_jumps=(1,), solvers=("rk4",), rk4_steps=(4,),
                       reference=sol, repeats=1)
    with pytest.raises(ShapeError):
        work_precision(exact, sho, x0, horizon=1.5, n_jumps=(1,), solvers=("rk4",), rk4_steps=(4,),
                       reference=torch.zeros(5, 2), repeats=1)


def test_work_precision_bad_inputs(exact, sho):
    x0 = sho.sample_initial(2, generator=0)
    kw = dict(n_jumps=(1,), tolerances=(1e-3,), solvers=("rk4",), rk4_steps=(4,), repeats=1)
    with pytest.raises(CheckpointError):
        work_precision(exact, "pendulum", x0, **kw)
    for h in (0.0, -2.0):
        with pytest.raises(TimeGridError):
            work_precision(exact, sho, x0, horizon=h, **kw)
    with pytest.raises(TimeGridError, match="max_jump"):
        work_precision(ExactFlowMap(sho, max_jump=1.0), sho, x0, horizon=3.0, **kw)
    with pytest.raises(SolverError):
        work_precision(exact, sho, x0, **{**kw, "solvers": ("dopri5", "euler_forward")})
    with pytest.raises(ConfigError):
        work_precision(exact, sho, x0, **{**kw, "tolerances": (1e-3, -1.0)})
    with pytest.raises(ConfigError):
        work_precision(exact, sho, x0, training_time=-1.0, **kw)
    assert "torchode" in SOLVERS


def _hand_made(training_time=None):
    attrs = {"n_states": 1000}
    if training_time is not None:
        attrs["training_time"] = training_time
    return xr.Dataset(
        {"wall_time": ("setting", [0.02, 0.01, 0.5, 0.3, 0.9, 5.0, 8.0]),
         "median_relative_error": ("setting", [3e-4, 2e-3, 1e-3, 1e-4, 2e-4, 1e-5, 2e-3]),
         "median_normalised_error": ("setting", [1e-4, 1e-3, 1e-3, 5e-5, 9e-5, 1e-6, 1e-3])},
        coords={"method": ("setting", ["flowmap", "flowmap", "dopri5", "dopri5", "dopri5", "dopri5",
                                       "scipy_lsoda"]),
                "setting_name": ("setting", ["n_jumps", "n_jumps"] + ["tolerance"] * 5),
                "setting_value": ("setting", [4, 1, 1e-3, 1e-5, 1e-4, 1e-6, 1e-3])},
        attrs=attrs,
    )


def test_speedup_at_matched_error_on_hand_made_data():
    res = speedup_at_matched_error(_hand_made(training_time=60.0))
    assert res.matched and res.flowmap_error == 3e-4 and res.flowmap_n_jumps == 4
    # settings at least as accurate as 3e-4: 1e-4 (0.3 s), 2e-4 (0.9 s), 1e-5 (5 s) → cheapest 0.3 s
    assert res.solver_setting_value == 1e-5 and res.solver_wall_time == 0.3
    assert res.speedup == pytest.approx(0.3 / 0.02)
    assert res.break_even_trajectories == pytest.approx(60.0 / (0.3 / 1000 - 0.02 / 1000))
    assert res.to_dict()["solver"] == "dopri5"
    res_n = speedup_at_matched_error(_hand_made(), metric="normalised_error")
    assert res_n.flowmap_error == 1e-4 and res_n.solver_wall_time == 0.3 and math.isnan(
        res_n.break_even_trajectories)


def test_speedup_reports_no_match_honestly():
    res = speedup_at_matched_error(_hand_made(), solver="scipy_lsoda")
    assert not res.matched
    assert math.isnan(res.speedup) and math.isnan(res.solver_wall_time) and res.solver_setting_name is None
    assert "2e-03" in res.note or "0.002" in res.note
    with pytest.raises(ConfigError, match="no rows for solver"):
        speedup_at_matched_error(_hand_made(), solver="torchode")
    with pytest.raises(ConfigError):
        speedup_at_matched_error(_hand_made(), metric="max_error")
    with pytest.raises(ConfigError):
        speedup_at_matched_error(xr.Dataset())


def test_a_setting_that_fails_on_any_state_is_not_a_match():
    ds = _hand_made()
    # the cheapest accurate dopri5 setting (1e-5, 0.3 s) failed on one state: the next one counts
    ds["n_failed"] = ("setting", [0, 0, 0, 1, 0, 0, 0])
    res = speedup_at_matched_error(ds)
    assert res.matched and res.solver_setting_value == 1e-4 and res.solver_wall_time == 0.9
    ds["n_failed"] = ("setting", [0, 0, 0, 1, 3, 2, 0])
    res = speedup_at_matched_error(ds)
    assert not res.matched and "failed" in res.note and "no speed-up" in res.summary()
    # every dopri5 setting failed (an explicit solver on a stiff system): no match, not an error
    ds["n_failed"] = ("setting", np.where(ds.method.values == "dopri5", 5, 0))
    res = speedup_at_matched_error(ds)
    assert not res.matched and "failed" in res.note


def test_an_error_above_ten_percent_is_never_matched():
    ds = _hand_made()
    ds["median_relative_error"] = ("setting", [0.78, 0.9, 1.0, 1e-4, 0.2, 1e-5, 2e-3])
    res = speedup_at_matched_error(ds)
    assert not res.matched and math.isnan(res.speedup)
    assert "not usable" in res.note and "0.78" in res.note
    assert speedup_at_matched_error(ds, max_error=1.0).matched
    with pytest.raises(ConfigError, match="max_error"):
        speedup_at_matched_error(ds, max_error=0)


def test_one_jump_and_plain_words():
    res = speedup_at_matched_error(_hand_made(), at="one_jump")
    assert res.flowmap_n_jumps == 1 and res.flowmap_error == 2e-3
    # the cheapest dopri5 setting at least as accurate as 2e-3 takes 0.3 s: 30x faster, in words
    assert res.speedup == pytest.approx(30.0) and "30.0x faster than dopri5" in res.summary()
    slow = _hand_made()
    slow["wall_time"] = ("setting", [2.0, 1.0, 0.5, 0.3, 0.9, 5.0, 8.0])
    text = speedup_at_matched_error(slow, at="one_jump").summary()
    assert "3.3x slower than dopri5" in text and "0.0x" not in text  # 1.0 s against 0.3 s
    assert speedup_at_matched_error(_hand_made()).to_dict()["summary"].startswith("at matched median")


def test_break_even_trajectories():
    assert break_even_trajectories(100.0, 1e-5, 1e-3) == pytest.approx(100.0 / (1e-3 - 1e-5))
    assert break_even_trajectories(100.0, 1e-3, 1e-3) == math.inf
    assert break_even_trajectories(0.0, 1e-5, 1e-3) == 0.0
    for bad in ((-1.0, 1e-5, 1e-3), (1.0, float("nan"), 1e-3), (1.0, 1e-5, "x")):
        with pytest.raises(ConfigError):
            break_even_trajectories(*bad)


def test_effort_cap_truncates_sweeps_loosest_first(exact, sho):
    x0 = sho.sample_initial(4, generator=3)
    ds = work_precision(exact, sho, x0, horizon=1.0, n_jumps=(1,), tolerances=(1e-3, 1e-5, 1e-7),
                        rk4_steps=(8, 16), solvers=("dopri5", "rk4"), repeats=1, max_seconds=1e-9)
    dop = ds.where(ds.method == "dopri5", drop=True)
    assert dop.setting_value.values.tolist() == [1e-3]  # only the loosest ran
    rk4 = ds.where(ds.method == "rk4", drop=True)
    assert rk4.setting_value.values.tolist() == [8.0]  # only the cheapest ran
    notes = ds.attrs["truncated_sweeps"]
    assert len(notes) == 2 and "dopri5" in notes[0] and "1e-05" in notes[0]
    full = work_precision(exact, sho, x0, horizon=1.0, n_jumps=(1,), tolerances=(1e-3, 1e-5),
                          solvers=("dopri5",), repeats=1, max_seconds=None)
    assert full.attrs["truncated_sweeps"] == [] and (full.method == "dopri5").sum() == 2
    with pytest.raises(ConfigError, match="max_seconds"):
        work_precision(exact, sho, x0, horizon=1.0, n_jumps=(1,), solvers=("dopri5",), max_seconds=-1)


def test_speedup_at_best_speedup_picks_the_jump_count_that_pays_most():
    res = speedup_at_matched_error(_hand_made(), at="best_speedup")
    # 1 jump (2e-3, 0.01 s) is matched by dopri5 at 0.3 s: 30x, beating 4 jumps' 15x
    assert res.matched and res.flowmap_n_jumps == 1 and res.speedup == pytest.approx(30.0)
    assert "at 1 jumps" in res.note
    assert speedup_at_matched_error(_hand_made()).speedup == pytest.approx(15.0)
    # lsoda (2e-3, 8 s) never reaches the 4-jump error but does match the 1-jump one
    lsoda = speedup_at_matched_error(_hand_made(), solver="scipy_lsoda", at="best_speedup")
    assert lsoda.matched and lsoda.speedup == pytest.approx(800.0)
    with pytest.raises(ConfigError, match="at must be"):
        speedup_at_matched_error(_hand_made(), at="fastest")


def test_sweep_object_and_keywords_are_one_thing(exact, sho):
    from flowsim.analysis import Sweep

    x0 = sho.sample_initial(4, generator=3)
    sweep = Sweep(n_jumps=(1,), tolerances=(1e-4,), solvers=("dopri5",), repeats=1)
    a = work_precision(exact, sho, x0, horizon=1.0, sweep=sweep)
    b = work_precision(exact, sho, x0, horizon=1.0, n_jumps=(1,), tolerances=(1e-4,), solvers=("dopri5",),
                       repeats=1)
    assert a.method.values.tolist() == b.method.values.tolist()
    assert a.median_relative_error.values.tolist() == b.median_relative_error.values.tolist()
    with pytest.raises(ConfigError, match="unknown work_precision option"):
        work_precision(exact, sho, x0, horizon=1.0, tolerance=(1e-4,))
    with pytest.raises(ConfigError, match="sequence of names"):
        Sweep(solvers="dopri5")


def _blow_up(t, x, p):
    return p[:, :1] * x * x


def test_one_failing_state_fails_alone_not_the_whole_batch():
    """x' = k x² blows up at t = 1/(k x0): the state starting at 3 fails within the horizon 1, the
    others do not. Bisecting the failed solve isolates it; without retries all 6 fail."""
    import warnings

    sys_ = flowsim.from_callable(_blow_up, name="blow_up", state_names=["x"], params={"k": 1.0},
                                 prior={"k": (0.5, 1.5)}, initial_box={"x": (0.1, 0.2)}, timescale=1.0)
    fm = flowsim.FlowMap(sys_, width=8, depth=1, max_jump=1.0)
    x0 = torch.tensor([[0.1], [0.15], [3.0], [0.2], [0.12], [0.18]], dtype=torch.float64)
    kw = dict(horizon=1.0, n_jumps=(1,), tolerances=(1e-6,), solvers=("dopri5",), repeats=1,
              max_steps=2000, n_reference=2)  # the reference of the first two states only
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = work_precision(fm, sys_, x0, {"k": 1.0}, **kw)
        whole = work_precision(fm, sys_, x0, {"k": 1.0}, max_failed_solves=0, **kw)
    row = ds.isel(setting=int(np.flatnonzero(ds.method.values == "dopri5")[0]))
    assert int(row.n_failed) == 1 and float(row.median_relative_error) < 1e-4
    other = whole.isel(setting=int(np.flatnonzero(whole.method.values == "dopri5")[0]))
    assert int(other.n_failed) == 6
    assert "bisect" in ds.attrs["failure_isolation"]


def test_n_scipy_is_ignored_where_scipy_is_stacked():
    from flowsim.analysis import Sweep

    with pytest.warns(UserWarning, match="scipy_stacked=False"):
        Sweep(n_scipy=8)
    assert Sweep().n_scipy is None and Sweep().scipy_stacked is True
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="n_scipy"):
            Sweep(n_scipy=bad, scipy_stacked=False)
    with pytest.raises(ConfigError, match="scipy_stacked"):
        Sweep(scipy_stacked="no")


def test_scipy_one_trajectory_at_a_time_on_a_subset_scaled_up(exact, sho):
    """``scipy_stacked=False, n_scipy=k``: the first k states solved one by one, the time
    scaled to the batch, their errors those of an independent (dopri5) reference."""
    x0 = sho.sample_initial(6, generator=3)
    ds = work_precision(exact, sho, x0, horizon=2.0, n_jumps=(1,), tolerances=(1e-8,), repeats=1,
                        solvers=("scipy_lsoda", "scipy_radau"), scipy_stacked=False, n_scipy=2)
    for m in ("scipy_lsoda", "scipy_radau"):
        row = ds.where(ds.method == m, drop=True)
        assert int(row.n_timed[0]) == 2 and bool(row.scaled[0])
        assert int(row.n_failed[0]) == 0 and float(row.median_relative_error[0]) < 1e-6
    assert "one trajectory at a time" in ds.attrs["scipy_note"] and "first 2 states" in ds.attrs["scipy_note"]
    fm_row = ds.where(ds.method == "flowmap", drop=True)
    assert int(fm_row.n_timed[0]) == 6 and not bool(fm_row.scaled[0])


def test_stiff_sweep_with_the_implicit_solvers():
    """Robertson: scipy's implicit methods (stacked) reach tight errors; torchdiffeq's only
    implicit option (fixed-step Adams–Moulton by fixed-point iteration) is swept over step
    counts like rk4 and is reported, failed states counted, never crashing the sweep."""
    import warnings

    s = flowsim.get_system("robertson")
    fm = flowsim.FlowMap(s, width=8, depth=1)
    x0 = s.sample_initial(4, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = work_precision(fm, s, x0, horizon=0.1 * s.timescale, n_jumps=(1,), tolerances=(1e-6,),
                            rk4_steps=(16,), repeats=1, max_steps=5000,
                            solvers=("implicit_adams", "scipy_lsoda", "scipy_bdf", "scipy_radau"))
    assert set(ds.method.values.tolist()) == {"flowmap", "implicit_adams", "scipy_lsoda", "scipy_bdf",
                                              "scipy_radau"}
    for m in ("scipy_lsoda", "scipy_bdf", "scipy_radau"):
        row = ds.where(ds.method == m, drop=True)
        assert int(row.n_failed[0]) == 0 and float(row.median_relative_error[0]) < 1e-4
    ia = ds.where(ds.method == "implicit_adams", drop=True)
    assert ia.setting_name.values.tolist() == ["n_steps"] and float(ia.setting_value[0]) == 16


def _sweep(rows):
    """A work-precision Dataset from (method, setting_value, wall_time, error, n_failed) rows."""
    m, v, w, e, f = zip(*rows)
    return xr.Dataset({"wall_time": ("setting", list(w)), "median_relative_error": ("setting", list(e)),
                       "n_failed": ("setting", list(f))},
                      coords={"method": ("setting", list(m)),
                              "setting_name": ("setting", ["n_jumps" if k == "flowmap" else "tolerance"
                                                           for k in m]),
                              "setting_value": ("setting", list(v))})


def test_the_best_jump_count_is_chosen_among_usable_errors_and_bounds_are_said():
    # one jump is not usable (0.2 > 10 %); four jumps (0.01) are, and dopri5 matches them 25x
    ds = _sweep([("flowmap", 1, 0.001, 0.2, 0), ("flowmap", 4, 0.004, 0.01, 0),
                 ("dopri5", 1e-3, 0.1, 0.005, 0), ("dopri5", 1e-2, 0.05, 0.3, 0)])
    best = flowsim.analysis.speedup_at_matched_error(ds, "dopri5", at="best_speedup")
    assert best.matched and best.flowmap_n_jumps == 4 and best.speedup == pytest.approx(25.0)
    assert "its error 5.0e-03" in best.summary() and "upper bound" not in best.summary()
    # the loosest setting swept already matches: the speed-up is an upper bound, and said so
    ds = _sweep([("flowmap", 1, 0.001, 0.01, 0), ("dopri5", 1e-3, 0.1, 1e-4, 0),
                 ("dopri5", 1e-6, 0.4, 1e-7, 0)])
    r = flowsim.analysis.speedup_at_matched_error(ds, "dopri5", at="one_jump")
    assert r.solver_loosest and "upper bound" in r.summary() and r.to_dict()["solver_loosest"]
    # every setting failed (an explicit solver on a stiff system): said so, not "extend the sweep"
    ds = _sweep([("flowmap", 1, 0.001, 0.01, 0), ("dopri5", 1e-3, 0.1, 1e-4, 3)])
    r = flowsim.analysis.speedup_at_matched_error(ds, "dopri5", at="one_jump")
    assert not r.matched and "failed on some state" in r.note and "extend" not in r.note
    ds = _sweep([("flowmap", 1, 0.001, 0.001, 0), ("dopri5", 1e-3, 0.1, 0.05, 0)])
    r = flowsim.analysis.speedup_at_matched_error(ds, "dopri5", at="one_jump")
    assert "less accurate than the map" in r.note and "tighter" in r.note
