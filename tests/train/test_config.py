"""FitConfig (typed, validated once, recorded whole), prepare() as a public step, typed needs."""

from __future__ import annotations

import ast
import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import flowsim
from flowsim.train import (
    BatchKind,
    FitConfig,
    Objective,
    PairRegression,
    PreparedData,
    batch_kind,
    fit_ensemble,
    prepare,
)


@pytest.fixture(scope="module")
def lv():
    sysm = flowsim.get_system("lotka_volterra")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(40, 0), torch.linspace(0, 10, 41))
    return sysm, sol


def test_defaults_are_fits_defaults_and_round_trip():
    cfg = FitConfig()
    assert (cfg.steps, cfg.batch_size, cfg.lr, cfg.early_fraction, cfg.log_fraction) == (
        2000, 1024, 1e-3, 1.0, 0.2)
    assert (cfg.warmup, cfg.clip, cfg.ema_decay, cfg.jump_margin, cfg.optimizer) == (
        0.05, 1.0, 0.999, 0.1, "auto")
    d = FitConfig(val_jumps=[0.5, 1], steps=10).to_dict()
    assert json.loads(json.dumps(d)) == d and d["val_jumps"] == [0.5, 1.0]
    assert FitConfig.from_dict(d) == FitConfig(val_jumps=(0.5, 1.0), steps=10)
    assert dataclasses.replace(cfg, lr=2e-3).lr == 2e-3 and cfg.lr == 1e-3
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0


@pytest.mark.parametrize("field,value", [
    ("steps", 0), ("steps", 1.5), ("steps", True), ("batch_size", -1), ("lr", 0.0),
    ("lr", float("nan")), ("lr", "fast"), ("weight_decay", -1e-3), ("warmup", 1.5), ("clip", 0),
    ("ema_decay", 1.0), ("max_jump", -1.0), ("min_jump", 0.0), ("jump_margin", 11),
    ("diagonal_fraction", -0.1), ("log_fraction", 2), ("early_fraction", 1.01), ("initial_fraction", -0.5),
    ("val_jumps", []), ("val_jumps", [1.0, -1.0]), ("val_every", 0), ("log_every", 0),
    ("checkpoint_every", 0), ("seed", 1.5), ("optimizer", "sgd"), ("stream", "yes"),
    ("time_budget", 0),
])
def test_bad_values_are_refused_naming_the_field(field, value):
    with pytest.raises(flowsim.ConfigError, match=field):
        FitConfig(**{field: value})


def test_min_jump_must_be_below_max_jump():
    with pytest.raises(flowsim.ConfigError, match="min_jump < max_jump"):
        FitConfig(min_jump=2.0, max_jump=1.0)


def test_fit_refuses_unknown_keywords_naming_the_valid_ones(lv):
    sysm, sol = lv
    with pytest.raises(flowsim.ConfigError, match=r"unknown training option\(s\) \['stepz'\].*'steps'"):
        flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, stepz=5)
    with pytest.raises(flowsim.ConfigError, match="FitConfig"):
        flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, {"steps": 5})


def test_config_and_keywords_give_the_same_weights(lv):
    sysm, sol = lv
    a = flowsim.FlowMap(sysm, width=8, depth=1)
    b = flowsim.FlowMap(sysm, width=8, depth=1)
    flowsim.fit(a, "pairs", sol, steps=6, batch_size=32, seed=3, progress=False)
    cfg = FitConfig(steps=100, batch_size=32, seed=3)
    flowsim.fit(b, "pairs", sol, cfg, steps=6, progress=False)  # keywords replace fields
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_config_is_recorded_whole_and_resume_compares_it_whole(lv, tmp_path):
    sysm, sol = lv
    cfg = FitConfig(steps=6, batch_size=32, checkpoint_every=3, warmup=0.2)
    res = flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, cfg,
                      checkpoint_dir=tmp_path, progress=False)
    record = json.loads((tmp_path / "config.json").read_text())["training"]
    assert FitConfig.from_dict(record["config"]) == cfg
    assert res.flowmap.training_record["config"] == cfg.to_dict()
    assert json.loads((tmp_path / "metrics.json").read_text())["config"]["config"] == cfg.to_dict()
    state = torch.load(tmp_path / "trainer_state.pt", weights_only=True)
    assert json.loads(state["config"]) == cfg.to_dict()
    # warm-up was not compared on resume before; now every field is
    with pytest.raises(flowsim.CheckpointError, match=r"warmup: checkpoint 0\.2, now 0\.05"):
        flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol,
                    dataclasses.replace(cfg, warmup=0.05), checkpoint_dir=tmp_path, progress=False)
    # the fields that may differ on resume do
    again = flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, cfg,
                        checkpoint_dir=tmp_path, progress=False, time_budget=100.0, checkpoint_every=2)
    assert again.steps == 6


def test_checkpoint_of_an_older_version_resumes_if_its_keys_agree(lv, tmp_path):
    """Trainer states written before the config was recorded whole hold only the `run` dict."""
    sysm, sol = lv
    kw = dict(steps=6, batch_size=32, checkpoint_every=3, progress=False)
    ref = flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, **kw,
                      checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / "trainer_state.pt", weights_only=True)
    run = json.loads(state.pop("config"))
    old_run = {k: v for k, v in json.loads(state["run"]).items()  # the keys old versions wrote
               if k in ("objectives", "weights", "steps", "batch_size", "lr", "weight_decay", "warmup",
                        "clip", "ema_decay", "max_jump", "min_jump", "diagonal_fraction",
                        "log_fraction", "early_fraction", "jump_margin", "trained_max_gap", "seed",
                        "val_jumps", "optimizer")}
    state["run"] = json.dumps(old_run)
    torch.save(state, tmp_path / "trainer_state.pt")
    assert run["steps"] == 6
    back = flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, **kw,
                       checkpoint_dir=tmp_path, log_every=7)  # not recorded then: not compared
    assert all(torch.equal(a, b) for a, b in zip(ref.flowmap.state_dict().values(),
                                                 back.flowmap.state_dict().values()))
    with pytest.raises(flowsim.CheckpointError, match="early_fraction"):
        flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, **kw,
                    checkpoint_dir=tmp_path, early_fraction=0.5)
    assert flowsim.load(tmp_path).config.system == "lotka_volterra"


def test_checkpoint_written_before_a_field_existed_resumes_at_its_old_value(lv, tmp_path):
    """A trainer state whose recorded config lacks a newer field (``initial_fraction``) counts
    as the value that field had before it existed (0, though today's default is 0.3): it resumes
    with that value and is refused, naming the field, with today's default."""
    sysm, sol = lv
    assert flowsim.FitConfig().initial_fraction == 0.3
    kw = dict(steps=6, batch_size=32, checkpoint_every=3, progress=False)
    ref = flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, **kw, checkpoint_dir=tmp_path,
                      initial_fraction=0.0)
    state = torch.load(tmp_path / "trainer_state.pt", weights_only=True)
    cfg = json.loads(state["config"])
    del cfg["initial_fraction"]
    state["config"], state["step"] = json.dumps(cfg), 3
    torch.save(state, tmp_path / "trainer_state.pt")
    with pytest.raises(flowsim.CheckpointError, match=r"initial_fraction: checkpoint 0\.0, now 0\.3"):
        flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, **kw, checkpoint_dir=tmp_path)
    back = flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, **kw, checkpoint_dir=tmp_path,
                       initial_fraction=0.0)
    assert back.steps == 6 and ref.steps == 6


def test_prepare_is_a_public_step_that_leaves_the_map_alone(lv):
    sysm, sol = lv
    fm = flowsim.FlowMap(sysm, width=8, depth=1)
    before = {k: v.clone() for k, v in fm.state_dict().items()}
    prep = prepare(fm, sol, FitConfig(max_jump=3.0, jump_margin=0.2))
    assert isinstance(prep, PreparedData)
    assert all(torch.equal(before[k], v) for k, v in fm.state_dict().items())
    assert (len(prep.train), len(prep.validation)) == (36, 4)
    assert prep.max_jump == 3.0 and prep.train_max_jump == pytest.approx(3.6)
    assert prep.val_jumps == sorted(prep.val_jumps) and prep.val_jumps[-1] == 3.0
    assert prep.stream is None and prep.velocity_scale.shape == (2,)
    # fit hands what prepare decided to the map through one method
    fm.configure_for_data(max_jump=prep.max_jump, state_transform=prep.state_transform,
                          velocity_scale=prep.velocity_scale)
    assert fm.max_jump == 3.0 and torch.equal(fm.velocity_scale, prep.velocity_scale.float())
    with pytest.raises(flowsim.ConfigError, match="velocity_scale"):
        fm.configure_for_data(velocity_scale=torch.tensor([1.0, -1.0]))
    with pytest.raises(flowsim.ConfigError, match="max_jump"):
        fm.configure_for_data(max_jump=0.0)
    with pytest.raises(flowsim.ConfigError, match="min_jump < max_jump"):
        prepare(fm, sol, FitConfig(min_jump=20.0))  # raised past the data's span


def test_fit_ensemble_uses_prepare_once_and_no_trainer_privates(lv, monkeypatch):
    sysm, sol = lv
    import flowsim.train.ensemble as ens_mod

    calls = []

    def spy(fm, data, config=None, validation=None):
        calls.append(config)
        return prepare(fm, data, config, validation)

    monkeypatch.setattr(ens_mod, "prepare", spy)
    res = fit_ensemble(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, FitConfig(steps=3),
                       workers=1, batch_size=16, seed=5, progress=False)
    assert len(calls) == 1 and calls[0] == FitConfig(steps=3, batch_size=16, seed=5)
    assert [m.flowmap.training_record["seed"] for m in res.members] == [5, 6]
    tree = ast.parse(Path(ens_mod.__file__).read_text())
    private = [(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
               for a in n.names if a.name.startswith("_")]
    assert private == []


@dataclass
class _Landing(Objective):
    """A user's objective: the plain squared landing error."""

    name: str = "landing"
    needs: BatchKind = BatchKind.PAIRS

    def __call__(self, fm, batch):
        assert isinstance(batch, BatchKind.PAIRS.batch_type)
        return (fm(batch.s, batch.t, batch.x_s, batch.p) - batch.x_t).pow(2).sum(-1).mean()


@dataclass
class _OldStyle(_Landing):
    name: str = "old_style"
    needs: str = "pairs"  # how objectives declared what they need before BatchKind


def test_objectives_declare_typed_needs_and_custom_ones_train(lv):
    sysm, sol = lv
    from flowsim.train import Diagonal, Lagrangian, Rollout

    assert [batch_kind(o) for o in (PairRegression(), Lagrangian(), Diagonal(source="data"),
                                    Rollout())] == [BatchKind.PAIRS, BatchKind.STATES,
                                                    BatchKind.SHORT_PAIRS, BatchKind.WINDOWS]
    assert BatchKind.WINDOWS.batch_type is flowsim.train.bank.WindowBatch
    fm = flowsim.FlowMap(sysm, width=8, depth=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = flowsim.fit(fm, [_Landing(), Lagrangian(weight=0.01)], sol, steps=3, batch_size=16,
                          progress=False)
    assert not [w for w in caught if "BatchKind" in str(w.message)]
    assert {"loss_landing", "loss_lagrangian"} <= set(res.history[-1])
    with pytest.warns(DeprecationWarning, match="BatchKind.PAIRS"):
        res = flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), [_OldStyle()], sol, steps=2,
                          batch_size=16, progress=False)
    assert res.steps == 2
    with pytest.raises(flowsim.ConfigError, match=r"\['landing'\] need trajectory data.*PAIRS"):
        flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), [_Landing()], None, steps=2)
    with pytest.raises(flowsim.ConfigError, match="must be a flowsim.train.BatchKind"):
        flowsim.fit(fm, [_Landing(needs="everything")], sol, steps=2, progress=False)
