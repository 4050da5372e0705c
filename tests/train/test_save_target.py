"""``flowsim.save`` into a folder that already holds something: another map, a training run's
checkpoint, an ensemble, or a file."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim.errors import CheckpointError
from flowsim.train.checkpoint import TRAINER_STATE


def _map(name="fitzhugh_nagumo", width=8):
    return flowsim.FlowMap(name, width=width, depth=1, seed=0)


def _trained_run(tmp_path):
    sys_ = flowsim.get_system("fitzhugh_nagumo")
    sol = flowsim.reference_solve(sys_, sys_.sample_initial(16, 0), torch.linspace(0, 10, 11),
                                  sys_.sample_params(16, 0))
    d = tmp_path / "run"
    flowsim.fit(_map(), "pairs", sol, steps=3, batch_size=16, progress=False, checkpoint_dir=d)
    assert (d / TRAINER_STATE).exists()
    return d


def test_another_map_is_refused_and_left_whole(tmp_path):
    d = flowsim.save(_map(), tmp_path / "m")
    before = (d / "model.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match=r"holds a fitzhugh_nagumo map, resnet 8x1; this is a "
                                              r"van_der_pol map.*overwrite=True"):
        flowsim.save(_map("van_der_pol"), d)
    with pytest.raises(CheckpointError, match="resnet 16x1"):
        flowsim.save(_map(width=16), d)
    assert (d / "model.safetensors").read_bytes() == before
    assert flowsim.load(d).config.system == "fitzhugh_nagumo"


def test_the_same_map_saves_again(tmp_path):
    fm = _map()
    d = flowsim.save(fm, tmp_path / "m")
    with torch.no_grad():
        next(fm.parameters()).add_(1.0)
    flowsim.save(fm, d)  # no overwrite needed: the same map, a plain saved checkpoint
    assert torch.equal(next(flowsim.load(d).parameters()), next(fm.parameters()))


def test_a_training_run_is_refused_then_cleared_with_overwrite(tmp_path):
    d = _trained_run(tmp_path)
    (d / "report").mkdir()
    (d / "report" / "report.json").write_text("{}")
    # even the same architecture: the trainer state would resume the old run, not this map
    with pytest.raises(CheckpointError, match="training run's checkpoint.*resume that run"):
        flowsim.save(_map(), d)
    assert (d / TRAINER_STATE).exists()
    flowsim.save(_map("van_der_pol"), d, overwrite=True)
    assert flowsim.load(d).config.system == "van_der_pol"
    for stale in (TRAINER_STATE, "log.csv", "metrics.json", "report"):
        assert not (d / stale).exists(), stale


def test_an_ensemble_over_a_single_map_and_back(tmp_path):
    ens = flowsim.FlowMapEnsemble([_map(), _map()])
    d = flowsim.save(_map(), tmp_path / "m")
    with pytest.raises(CheckpointError, match="an ensemble of 2 fitzhugh_nagumo maps"):
        flowsim.save(ens, d)
    flowsim.save(ens, d, overwrite=True)
    assert len(flowsim.load(d)) == 2
    with pytest.raises(CheckpointError, match="holds an ensemble of 2"):
        flowsim.save(_map(), d)
    flowsim.save(_map(), d, overwrite=True)
    assert isinstance(flowsim.load(d), flowsim.FlowMap)
    assert not list(d.glob("member-*"))


def test_a_file_is_refused(tmp_path):
    f = tmp_path / "theoph.csv"
    f.write_text("a,b\n")
    with pytest.raises(CheckpointError, match="is a file"):
        flowsim.save(_map(), f)
    assert f.read_text() == "a,b\n"


def test_load_takes_a_catalogue_name_or_refuses_what_is_not_a_system(tmp_path):
    d = flowsim.save(_map(), tmp_path / "m")
    assert flowsim.load(d, system="fitzhugh_nagumo").config.system == "fitzhugh_nagumo"
    with pytest.raises(CheckpointError, match="does not match the system"):
        flowsim.load(d, system="van_der_pol")
    with pytest.raises(CheckpointError, match="an ODESystem or a catalogue name; got int"):
        flowsim.load(d, system=3)


def test_a_bank_says_how_many_trajectories_it_leaves_out():
    sys_ = flowsim.get_system("fitzhugh_nagumo")
    sol = flowsim.reference_solve(sys_, sys_.sample_initial(8, 0), torch.linspace(0, 5, 6),
                                  sys_.sample_params(8, 0))
    x = sol.x.clone()
    x[3, 2] = float("nan")
    with pytest.warns(flowsim.FailedTrajectoryWarning, match="1 of 8 trajectories"):
        bank = flowsim.train.TrajectoryBank(x, sol.t, sol.p)
    assert len(bank) == 7
