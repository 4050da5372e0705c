"""A map trained on a store covers the parameters the store holds, and is evaluated there."""

import json

import pytest
import torch

import flowsim
from flowsim.cli import main
from flowsim.data import simulate_ensemble, store_param_range


def test_store_param_range_default_and_prior(tmp_path):
    lv = flowsim.get_system("lotka_volterra")
    t = torch.linspace(0, 4, 9, dtype=torch.float64)
    d = simulate_ensemble(lv, 16, t, store=tmp_path / "d.zarr", client="sync", progress=False)
    rng = store_param_range(d)
    assert all(lo == hi == lv.defaults[k] for k, (lo, hi) in rng.items())
    p = simulate_ensemble(lv, 16, t, params="prior", store=tmp_path / "p.zarr", client="sync",
                          progress=False)
    lo_hi = store_param_range(p)
    assert all(lv.parameters[i].prior[0] <= lo < hi <= lv.parameters[i].prior[1]
               for i, (lo, hi) in enumerate(lo_hi.values()))
    fm = flowsim.FlowMap(lv, width=8, depth=1, param_range=rng)
    assert torch.allclose(fm.sample_params(4, 0), lv.default_params(4))  # float32 buffers


@pytest.mark.slow
def test_train_on_a_default_params_store_evaluates_at_those_params(tmp_path):
    lv = flowsim.get_system("lotka_volterra")
    t = torch.linspace(0, 2 * lv.timescale, 41, dtype=torch.float64)
    simulate_ensemble(lv, 64, t, store=tmp_path / "lv.zarr", client="sync", progress=False)
    assert main(["train", "--store", str(tmp_path / "lv.zarr"), "--steps", "200", "--width", "32",
                 "--depth", "2", "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    fm = flowsim.load(tmp_path / "m")
    assert torch.allclose(fm.param_transform.low.double(), lv.default_params().to(fm.dtype).double())
    assert torch.equal(fm.param_transform.low, fm.param_transform.high)
    with pytest.raises(flowsim.ParameterError, match="outside the trained range"):
        fm.jump(lv.sample_initial(2, 0).float(), 0.0, 1.0, lv.sample_params(2, 1).float(),
                allow_extrapolation=False)
    assert main(["evaluate", str(tmp_path / "m"), "--n-eval", "64", "--no-progress"]) == 0
    report = json.loads((tmp_path / "m" / "report" / "report.json").read_text())
    # evaluated where it was trained (parameters outside its range would have been refused), and
    # no speed-up is claimed for an error above 10 %
    for sp in report["speedups"].values():
        assert not sp["matched"] or sp["flowmap_error"] <= 0.1
