"""Data that does not belong to the map, a resume on other data, edited checkpoints, file modes
(issue 18)."""

from __future__ import annotations

import json
import os
import stat
import warnings

import pytest
import torch

import flowsim
from flowsim.data import from_arrays, open_store
from flowsim.errors import CheckpointError, ConfigError, StoreError
from flowsim.train import TrajectoryBank

TIMES = torch.linspace(0.0, 10.0, 21)


def _solution(name, n=24, seed=0):
    sys_ = flowsim.get_system(name)
    return flowsim.reference_solve(sys_, sys_.sample_initial(n, seed), TIMES,
                                   sys_.sample_params(n, seed))


def _store(tmp_path, name, seed=0, fname=None):
    sol = _solution(name, seed=seed)
    path = tmp_path / (fname or f"{name}-{seed}.zarr")
    from_arrays(name, sol.x, sol.t, sol.p, store=path, chunk_size=8)
    return path


def _fhn_map():
    return flowsim.FlowMap("fitzhugh_nagumo", width=8, depth=1)


def _fit(data, **kw):
    return flowsim.fit(_fhn_map(), "pairs", data, steps=kw.pop("steps", 2), batch_size=32,
                       progress=False, **kw)


# -- data of another system --------------------------------------------------------------------

def test_solution_of_another_system_is_refused():
    with pytest.raises(ConfigError, match="do not belong to this fitzhugh_nagumo map.*lotka_volterra"):
        _fit(_solution("lotka_volterra"))


def test_store_of_another_system_is_refused(tmp_path):
    lv = _store(tmp_path, "lotka_volterra")
    with pytest.raises(StoreError, match="do not belong to this fitzhugh_nagumo map.*lotka_volterra"):
        _fit(str(lv))
    with pytest.raises(StoreError, match="lotka_volterra"):
        _fit(open_store(lv))  # the Dataset, opened by the user
    with pytest.raises(StoreError, match="validation data"):
        _fit(_solution("fitzhugh_nagumo"), validation=str(lv))


def test_dataset_with_other_units_or_names_is_refused(tmp_path):
    ds = open_store(_store(tmp_path, "fitzhugh_nagumo"))
    edited = ds.copy()
    edited.attrs = {**ds.attrs, "state_units": json.dumps(["mV", "1"])}
    with pytest.raises(StoreError, match="state units"):
        _fit(edited)
    renamed = ds.assign_coords(state=["a", "b"])
    with pytest.raises(StoreError, match="states"):
        _fit(renamed)


def test_bank_with_wrong_layout_is_refused():
    sol = _solution("lotka_volterra")  # a bank records no system: its layout is checked
    with pytest.raises(ConfigError, match="2 parameters, not 4"):
        _fit(TrajectoryBank(sol.x, sol.t, sol.p[:, :2]))
    with pytest.raises(ConfigError, match="3 states, not 2"):
        _fit(TrajectoryBank(torch.cat([sol.x, sol.x[..., :1]], -1), sol.t, sol.p))


def test_data_of_the_same_system_still_train(tmp_path):
    res = _fit(str(_store(tmp_path, "fitzhugh_nagumo")))
    assert res.steps == 2


# -- resume on other data ----------------------------------------------------------------------

def test_resume_on_another_store_is_refused(tmp_path):
    a, b = _store(tmp_path, "fitzhugh_nagumo", 0), _store(tmp_path, "fitzhugh_nagumo", 1)
    ck = tmp_path / "ck"
    _fit(str(a), steps=4, checkpoint_dir=ck, checkpoint_every=2)
    with pytest.raises(CheckpointError, match="other data than given now.*values.*resume=False"):
        _fit(str(b), steps=4, checkpoint_dir=ck, checkpoint_every=2)
    res = _fit(str(a), steps=4, checkpoint_dir=ck, checkpoint_every=2)  # the same data resume
    assert res.steps == 4
    assert _fit(str(b), steps=2, checkpoint_dir=ck, resume=False).steps == 2


def test_resume_on_another_solution_is_refused(tmp_path):
    ck = tmp_path / "ck"
    _fit(_solution("fitzhugh_nagumo", seed=0), steps=2, checkpoint_dir=ck)
    with pytest.raises(CheckpointError, match="other data"):
        _fit(_solution("fitzhugh_nagumo", seed=5), steps=2, checkpoint_dir=ck)
    with pytest.raises(CheckpointError, match="shape"):
        _fit(_solution("fitzhugh_nagumo", n=30, seed=0), steps=2, checkpoint_dir=ck)
    assert _fit(_solution("fitzhugh_nagumo", seed=0), steps=2, checkpoint_dir=ck).steps == 2


def test_a_copied_store_resumes(tmp_path):
    import shutil

    a = _store(tmp_path, "fitzhugh_nagumo", 0)
    ck = tmp_path / "ck"
    _fit(str(a), steps=2, checkpoint_dir=ck)
    shutil.copytree(a, tmp_path / "moved.zarr")
    assert _fit(str(tmp_path / "moved.zarr"), steps=2, checkpoint_dir=ck).steps == 2


# -- edited checkpoints ------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1)
    return flowsim.save(fm, tmp_path / "lv")


@pytest.mark.parametrize("edit", [
    lambda m: m["flowmap"].update(system="fitzhugh_nagumo"),
    lambda m: m["flowmap"].update(dtype="float64" if m["flowmap"]["dtype"] == "float32" else "float32"),
    lambda m: m["flowmap"].update(max_jump=123.0),
    lambda m: m.update(training={"steps": 1}),
])
def test_edited_config_is_refused(saved, edit):
    cfg = saved / "config.json"
    meta = json.loads(cfg.read_text())
    edit(meta)
    cfg.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="config.json was modified after it was saved"):
        flowsim.load(saved)


def test_edited_weights_are_refused(saved, tmp_path):
    w = saved / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-3] ^= 0xFF  # a flipped bit in a weight: still a valid safetensors file
    w.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match the checksum"):
        flowsim.load(saved)
    other = flowsim.save(flowsim.FlowMap("lotka_volterra", width=8, depth=1, seed=7), tmp_path / "o")
    w.write_bytes((other / "model.safetensors").read_bytes())  # weights of another map
    with pytest.raises(CheckpointError, match="does not match the checksum"):
        flowsim.load(saved)


def test_checkpoints_without_checksums_still_load(saved):
    cfg = saved / "config.json"
    meta = json.loads(cfg.read_text())
    del meta["integrity"]
    cfg.write_text(json.dumps(meta))
    assert flowsim.load(saved).config.system == "lotka_volterra"


def test_ensemble_member_edit_is_refused(tmp_path):
    ens = flowsim.FlowMapEnsemble([flowsim.FlowMap("lotka_volterra", width=8, depth=1, seed=s)
                                   for s in (0, 1)])
    path = flowsim.save(ens, tmp_path / "ens")
    cfg = path / "member-1" / "config.json"
    meta = json.loads(cfg.read_text())
    meta["flowmap"]["width"] = 9
    cfg.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="member-1.*modified"):
        flowsim.load(path)


# -- file modes --------------------------------------------------------------------------------

def test_checkpoint_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        _fit(_solution("fitzhugh_nagumo"), steps=2, checkpoint_dir=tmp_path / "ck")
    finally:
        os.umask(old)
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in (tmp_path / "ck").iterdir()}
    assert set(modes) >= {"model.safetensors", "config.json", "trainer_state.pt", "log.csv",
                          "metrics.json"}
    assert set(modes.values()) == {0o644}, modes
    old = os.umask(0o077)
    try:
        path = flowsim.save(_fhn_map(), tmp_path / "private")
    finally:
        os.umask(old)
    assert stat.S_IMODE((path / "config.json").stat().st_mode) == 0o600


def test_a_max_jump_past_the_data_or_its_margin_is_said():
    sol = _solution("fitzhugh_nagumo")  # times 0..10
    with pytest.warns(UserWarning, match=r"max_jump=50 is longer than the data reach \(10\)"):
        res = _fit(sol, max_jump=50.0)
    assert res.flowmap.max_jump == pytest.approx(10.0)
    with pytest.warns(UserWarning, match="0% of margin instead of 10%"):
        _fit(sol, max_jump=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(sol, max_jump=9.0)  # the data reach 9·1.1: nothing to say


def test_a_corrupted_trainer_state_is_one_clear_sentence(tmp_path):
    sol = _solution("fitzhugh_nagumo")
    _fit(sol, checkpoint_dir=tmp_path / "run")
    (tmp_path / "run" / "trainer_state.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="corrupted or not a trainer state") as err:
        _fit(sol, checkpoint_dir=tmp_path / "run")
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 500 and "resume=False" in msg
    _fit(sol, checkpoint_dir=tmp_path / "run", resume=False)  # the way out it names
