"""Stacked ensembles (issue 22): K members trained as one vmapped network equal the members
trained alone with the same seeds, resume continues the same run, bad input is refused."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

import flowsim
from flowsim.train import FitConfig, PairRegression, fit_ensemble
from flowsim.train.stacked import fit_stacked


@pytest.fixture(scope="module")
def fhn():
    sysm = flowsim.get_system("fitzhugh_nagumo")
    x0 = sysm.sample_initial(24, 0)
    p = sysm.sample_params(24, 1)
    sol = flowsim.reference_solve(sysm, x0, torch.linspace(0, sysm.timescale, 21), p)
    return sysm, sol


def _template(sysm):
    return flowsim.FlowMap(sysm, width=24, depth=2)


@pytest.mark.parametrize("objectives,optimizer", [("pairs", "adamw"), ("lsd", "muon")])
def test_stacked_members_equal_members_trained_alone(fhn, objectives, optimizer, monkeypatch):
    """Equal to float rounding: Muon's Newton–Schulz iterations run in float32 here. In bfloat16
    (this CPU's default) the stacked and the lone products round differently, and 15 steps
    leave weights apart by up to 4e-5 (measured, either backbone), which says nothing about
    the stacking."""
    monkeypatch.setattr("flowsim.train.muon.fast_bfloat16", lambda device: False)
    sysm, sol = fhn
    kw = dict(steps=15, batch_size=32, optimizer=optimizer, seed=3, progress=False)
    alone = fit_ensemble(_template(sysm), objectives, sol, members=3, workers=1, stacked=False, **kw)
    stacked = fit_ensemble(_template(sysm), objectives, sol, members=3, stacked=True, **kw)
    for a, b in zip(alone.ensemble.members, stacked.ensemble.members):
        for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
            assert pa.shape == pb.shape
            assert torch.allclose(pa, pb, rtol=1e-5, atol=1e-6), (name, (pa - pb).abs().max())
    # members are their own tensors again, and differ from each other (their own seeds)
    m0, m1 = stacked.ensemble.members[:2]
    w0, w1 = next(m0.parameters()), next(m1.parameters())
    assert w0.data_ptr() != w1.data_ptr() and not torch.equal(w0, w1)
    assert stacked.ensemble.training_record["stacked"] is True
    assert [m.steps for m in stacked.members] == [15, 15, 15]
    rows = [r for r in stacked.members[0].history if "rel@1" in r or any(k.startswith("rel@") for k in r)]
    assert rows, "validation rows in each member's history"
    for key in stacked.metrics:
        assert stacked.metrics[key] == pytest.approx(alone.metrics[key], rel=1e-3)


@dataclass
class _Interrupting(PairRegression):
    """The pair objective, interrupting the run at its ``stop_at``-th call (a killed run)."""

    stop_at: int = 0
    calls: int = 0

    def __call__(self, fm, batch):
        self.calls += 1
        if self.stop_at and self.calls == self.stop_at:
            raise KeyboardInterrupt
        return super().__call__(fm, batch)


def test_stacked_resume_continues_the_same_run(fhn, tmp_path):
    sysm, sol = fhn
    cfg = FitConfig(steps=24, batch_size=32, checkpoint_every=8, seed=0)

    def members():
        return [flowsim.FlowMap(sysm, width=16, depth=2, seed=k) for k in range(2)]

    clean = fit_stacked(members(), [_Interrupting()], sol, cfg, checkpoint_dir=tmp_path / "a", progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit_stacked(members(), [_Interrupting(stop_at=13)], sol, cfg, checkpoint_dir=tmp_path / "b",
                    progress=False)
    assert torch.load(tmp_path / "b" / "trainer_state.pt", weights_only=True)["step"] == 8
    resumed = fit_stacked(members(), [_Interrupting()], sol, cfg, checkpoint_dir=tmp_path / "b",
                          progress=False)
    for a, b in zip(clean, resumed):
        for pa, pb in zip(a.flowmap.parameters(), b.flowmap.parameters()):
            assert torch.equal(pa, pb)
        assert len(a.history) == len(b.history)
    # a single map's fit refuses the stacked state, and another member count is refused
    with pytest.raises(flowsim.CheckpointError, match="stacked"):
        fit_stacked(members()[:1] + members()[1:] + [members()[0]], [_Interrupting()], sol, cfg,
                    checkpoint_dir=tmp_path / "b", progress=False)


def test_stacked_checkpoint_loads_as_ensemble(fhn, tmp_path):
    sysm, sol = fhn
    res = fit_ensemble(_template(sysm), "pairs", sol, members=2, stacked=True, steps=6, batch_size=16,
                       checkpoint_dir=tmp_path, progress=False)
    ens = flowsim.load(tmp_path)
    x = sysm.sample_initial(8, 5).float()
    p = sysm.sample_params(8, 6).float()
    assert torch.allclose(ens.jump(x, 0.0, 1.0, p), res.ensemble.jump(x, 0.0, 1.0, p))


def test_stacked_refuses_members_that_differ(fhn):
    sysm, sol = fhn
    a = flowsim.FlowMap(sysm, width=16, depth=2)
    b = flowsim.FlowMap(sysm, width=8, depth=2)
    with pytest.raises(flowsim.ConfigError, match="member 1 differs"):
        fit_stacked([a, b], "pairs", sol, FitConfig(steps=2, batch_size=8), progress=False)
    with pytest.raises(flowsim.ConfigError, match="stacked must be"):
        fit_ensemble(a, "pairs", sol, members=2, stacked="yes", steps=2, progress=False)
