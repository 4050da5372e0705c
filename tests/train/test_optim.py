"""``fit(optimizer=…)``: AdamW, and Muon on the weight matrices with AdamW for the rest."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim.train import TrajectoryBank
from flowsim.train.optim import MuonAdamW, make_optimizer, muon_matrices, resolve_optimizer


def test_muon_takes_the_muon_matrices_and_adamw_the_rest():
    fm = flowsim.FlowMap("lotka_volterra", width=32, depth=4, backbone="mlp")
    opt = make_optimizer(fm, "muon", lr=1e-3)
    assert isinstance(opt, MuonAdamW)
    muon = {id(p) for g in opt.muon.param_groups for p in g["params"]}
    adamw = {id(p) for g in opt.adamw.param_groups for p in g["params"]}
    assert len(muon) == 4  # the input layer and the three 32×32 layers; not the head
    assert not muon & adamw and muon | adamw == {id(p) for p in fm.parameters()}
    d_in = fm.net.body[0].in_features
    assert [tuple(p.shape) for p in muon_matrices(fm)] == [(32, d_in)] + [(32, 32)] * 3
    assert id(fm.net.head.weight) in adamw and all(p.ndim == 1 for p in fm.parameters()
                                                     if id(p) in adamw and p is not fm.net.head.weight)
    res = flowsim.FlowMap("lotka_volterra", width=32, depth=4, backbone="resnet")
    assert len(muon_matrices(res)) == 5  # the input layer and two blocks of two layers
    assert all(p is not res.net.head.weight for p in muon_matrices(res))
    # depth 1: the input layer alone goes to Muon
    one = flowsim.FlowMap("lotka_volterra", width=8, depth=1, backbone="mlp")
    assert [p.shape for p in muon_matrices(one)] == [one.net.body[0].weight.shape]
    with pytest.raises(flowsim.ConfigError, match="unknown optimizer"):
        make_optimizer(fm, "sgd", lr=1e-3)
    with pytest.raises(flowsim.ConfigError, match="unknown optimizer"):
        flowsim.fit(fm, "physics", None, steps=2, progress=False, optimizer="Adam")
    # the default: Muon where this torch has it, and the record says which was used
    assert resolve_optimizer("auto") == ("muon" if hasattr(torch.optim, "Muon") else "adamw")
    res = flowsim.fit(flowsim.FlowMap("harmonic_oscillator", width=8, depth=2), "physics", None,
                      steps=2, progress=False)
    assert res.flowmap.training_record["optimizer"] == resolve_optimizer("auto")


@pytest.mark.slow
def test_muon_training_reaches_accuracy():
    """The Lotka–Volterra run of test_trainer.py with Muon: same data, steps and thresholds
    (a Muon step that moved the wrong way could not meet them)."""
    sysm = flowsim.get_system("lotka_volterra")
    g = torch.Generator().manual_seed(0)
    x0 = sysm.sample_initial(200, g)
    t = torch.linspace(0, 2 * sysm.timescale, 121, dtype=torch.float64)
    sol = flowsim.reference_solve(sysm, x0, t, sysm.default_params(200), rtol=1e-10, atol=1e-12)
    train, test = TrajectoryBank.from_solution(sol).split(0.2, g)
    fm = flowsim.FlowMap(sysm, width=48, depth=3, param_range="default")
    res = flowsim.fit(fm, "pairs", train, steps=800, batch_size=256, lr=5e-3, progress=False,
                      validation=test, max_jump=sysm.timescale, optimizer="muon")
    T = sysm.timescale
    errs = flowsim.train.validation.jump_errors(res.flowmap, test, [0.01 * T, 0.1 * T, T])
    assert errs[f"rel@{0.01 * T:.4g}"] < 2e-2
    assert errs[f"rel@{0.1 * T:.4g}"] < 5e-2
    assert errs[f"norm@{T:.4g}"] < 0.3
    assert res.flowmap.training_record["optimizer"] == "muon"
    from flowsim.train.muon import fast_bfloat16

    assert res.flowmap.training_record["muon_ns_dtype"] == ("bfloat16" if fast_bfloat16("cpu") else "float32")


def test_resume_refuses_a_checkpoint_of_another_optimizer(tmp_path):
    sysm = flowsim.get_system("harmonic_oscillator")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(20, 0), torch.linspace(0, 5, 21))
    kw = dict(steps=5, batch_size=16, checkpoint_dir=tmp_path, progress=False)
    flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=2), "pairs", sol, optimizer="adamw", **kw)
    with pytest.raises(flowsim.CheckpointError, match="optimizer"):
        flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=2), "pairs", sol, optimizer="muon", **kw)


def test_resume_refuses_optimiser_state_of_another_split(tmp_path):
    """A Muon checkpoint whose Muon group holds other matrices (as one written before the input
    layer moved to Muon) gives a CheckpointError, not a torch traceback."""
    sysm = flowsim.get_system("harmonic_oscillator")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(20, 0), torch.linspace(0, 5, 21))
    kw = dict(steps=5, batch_size=16, checkpoint_dir=tmp_path, progress=False, optimizer="muon")
    flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=2), "pairs", sol, **kw)
    path = tmp_path / "trainer_state.pt"
    state = torch.load(path, weights_only=True)
    state["optimizer"]["muon"]["param_groups"][0]["params"].pop(0)  # the old split: one fewer
    torch.save(state, path)
    with pytest.raises(flowsim.CheckpointError, match="optimiser state"):
        flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=2), "pairs", sol, **kw)
