"""FlowMapEnsemble: the average of its members, their spread, checks, save and load."""

from __future__ import annotations

import json

import pytest
import torch

import flowsim
from flowsim import FlowMap, FlowMapEnsemble


def _perturbed(system, seed, **kw):
    fm = FlowMap(system, width=16, depth=2, seed=seed, **kw)
    with torch.no_grad():  # a zero head is the identity: give every member a distinct map
        fm.net.head.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(seed))
    return fm.eval()


@pytest.fixture
def lv_ensemble():
    return FlowMapEnsemble([_perturbed("lotka_volterra", k) for k in range(3)])


def test_average_of_the_members_and_exact_identity(lv_ensemble):
    ens = lv_ensemble
    x = ens.system.sample_initial(64, generator=1).float()
    out = ens.jump(x, 0.0, 2.0)
    members = torch.stack([m.jump(x, 0.0, 2.0) for m in ens.members])
    # Lotka–Volterra is standardised without logs: the average is the plain mean of the states
    torch.testing.assert_close(out, members.mean(0), rtol=1e-5, atol=1e-6)
    assert not torch.allclose(members[0], members[1])
    assert torch.equal(ens.jump(x, 1.0, 1.0), x)  # X(s, s, x) = x exactly
    # per-sample times and parameters, like a single map
    t = torch.linspace(0.5, 3.0, 64)
    p = ens.system.sample_params(64, generator=2).float()
    torch.testing.assert_close(
        ens.jump(x, 0.0, t, p),
        torch.stack([m.jump(x, 0.0, t, p) for m in ens.members]).mean(0), rtol=1e-5, atol=1e-6)


def test_log_states_are_averaged_geometrically():
    members = [_perturbed("sir", k, log_states=True) for k in range(2)]
    ens = FlowMapEnsemble(members)
    x = ens.system.sample_initial(16, generator=0).float()
    out = ens.jump(x, 0.0, 5.0)
    a, b = (m.jump(x, 0.0, 5.0) for m in members)
    torch.testing.assert_close(out, torch.sqrt(a * b), rtol=1e-4, atol=0)
    assert (out > 0).all()


def test_spread_measures_the_disagreement(lv_ensemble):
    x = lv_ensemble.system.sample_initial(32, generator=3).float()
    mean, spread = lv_ensemble.jump_with_spread(x, 0.0, 2.0)
    torch.testing.assert_close(mean, lv_ensemble.jump(x, 0.0, 2.0))
    z = torch.stack([lv_ensemble.state_transform.encode(m.jump(x, 0.0, 2.0))
                     for m in lv_ensemble.members])
    expected = (z - z.mean(0)).pow(2).mean(0).mean(-1).sqrt()
    torch.testing.assert_close(spread, expected, rtol=1e-4, atol=1e-6)
    assert (spread > 0).all()
    same = FlowMapEnsemble([_perturbed("lotka_volterra", 0) for _ in range(2)])
    assert torch.equal(same.jump_with_spread(x, 0.0, 2.0)[1], torch.zeros(32))


def test_odeint_velocity_and_the_analysis_tools_accept_an_ensemble(lv_ensemble):
    ens = lv_ensemble
    x = ens.system.sample_initial(8, generator=4).float()
    t = torch.linspace(0, 10, 6)
    traj = ens.odeint(x, t)
    assert traj.shape == (6, 8, 2) and torch.equal(traj[0], x)
    torch.testing.assert_close(traj[1], ens.jump(x, 0.0, 2.0))
    v = ens.velocity(torch.zeros(8), x, ens.system.default_params(8).float())
    assert v.shape == (8, 2) and torch.isfinite(v).all()
    from flowsim.testing import assert_flowmap_like

    assert isinstance(ens, flowsim.FlowMapLike)
    assert_flowmap_like(ens)
    assert flowsim.maps.check_flowmap_like(ens, complete=True) is ens.system


def test_bad_inputs_are_refused(lv_ensemble):
    with pytest.raises(flowsim.ConfigError, match="at least two"):
        FlowMapEnsemble([_perturbed("lotka_volterra", 0)])
    with pytest.raises(flowsim.ConfigError, match="must be flowsim.FlowMap"):
        FlowMapEnsemble([_perturbed("lotka_volterra", 0), torch.nn.Linear(2, 2)])
    with pytest.raises(flowsim.ConfigError, match="system"):
        FlowMapEnsemble([_perturbed("lotka_volterra", 0), _perturbed("van_der_pol", 1)])
    with pytest.raises(flowsim.ConfigError, match="dtype"):
        FlowMapEnsemble([_perturbed("lotka_volterra", 0), _perturbed("lotka_volterra", 1).double()])
    with pytest.raises(flowsim.ConfigError, match="parameter range"):
        FlowMapEnsemble([_perturbed("lotka_volterra", 0),
                         _perturbed("lotka_volterra", 1, param_range="default")])
    with pytest.raises(flowsim.ShapeError):
        lv_ensemble.jump(torch.ones(4, 3), 0.0, 1.0)
    with pytest.raises(flowsim.ShapeError, match="NaN"):
        lv_ensemble.jump(torch.full((4, 2), float("nan")), 0.0, 1.0)
    with pytest.raises(flowsim.TimeGridError):
        lv_ensemble.jump_with_spread(torch.ones(4, 2), 1.0, 0.0)


def test_save_and_load_round_trip(lv_ensemble, tmp_path):
    ens = lv_ensemble
    ens.training_record = {"members": [{"steps_done": k} for k in range(3)]}
    path = flowsim.save(ens, tmp_path / "ens", training={"note": "three members"})
    assert sorted(p.name for p in path.iterdir()) == [
        "ensemble.json", "member-0", "member-1", "member-2"]
    back = flowsim.load(path)
    assert isinstance(back, FlowMapEnsemble) and len(back) == 3 and not back.training
    x = ens.system.sample_initial(8, generator=5).float()
    assert torch.equal(back.jump(x, 0.0, 3.0), ens.jump(x, 0.0, 3.0))
    assert back.training_record["note"] == "three members"
    assert [r["steps_done"] for r in back.training_record["members"]] == [0, 1, 2]
    # each member is an ordinary checkpoint
    assert isinstance(flowsim.load(path / "member-1"), FlowMap)
    with pytest.raises(flowsim.CheckpointError, match="does not match"):
        flowsim.load(path, system=flowsim.get_system("van_der_pol"))


def test_a_single_map_saved_over_an_ensemble_replaces_it(lv_ensemble, tmp_path):
    path = flowsim.save(lv_ensemble, tmp_path / "ck")
    single = lv_ensemble.members[1]
    with pytest.raises(flowsim.CheckpointError, match="holds an ensemble of 3"):
        flowsim.save(single, path)  # another map: only with overwrite=True
    flowsim.save(single, path, overwrite=True)
    assert not list(path.glob("member-*"))
    back = flowsim.load(path)
    assert isinstance(back, FlowMap) and not isinstance(back, FlowMapEnsemble)
    x = torch.ones(4, 2)
    assert torch.equal(back.jump(x, 0.0, 2.0), single.jump(x, 0.0, 2.0))
    flowsim.save(lv_ensemble, path, overwrite=True)  # and back again
    assert isinstance(flowsim.load(path), FlowMapEnsemble)


def test_damaged_ensemble_checkpoints_are_refused(lv_ensemble, tmp_path):
    path = flowsim.save(lv_ensemble, tmp_path / "ens")
    meta = json.loads((path / "ensemble.json").read_text())
    for names in (["../elsewhere", "member-1"], ["", "member-1"], ["..", "member-1"]):
        (path / "ensemble.json").write_text(json.dumps({**meta, "members": names}))
        with pytest.raises(flowsim.CheckpointError, match="other than member-<k>"):
            flowsim.load(path)
    (path / "ensemble.json").write_text(json.dumps({**meta, "training": "not a dict"}))
    assert len(flowsim.load(path)) == 3
    (path / "ensemble.json").write_text(json.dumps({**meta, "members": ["member-0"]}))
    with pytest.raises(flowsim.CheckpointError, match="at least two"):
        flowsim.load(path)
    (path / "ensemble.json").write_text("{not json")
    with pytest.raises(flowsim.CheckpointError, match="corrupted"):
        flowsim.load(path)
    (path / "ensemble.json").write_text(json.dumps(meta))
    (path / "member-2" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(flowsim.CheckpointError, match="corrupted"):
        flowsim.load(path)
    with pytest.raises(flowsim.CheckpointError, match="FlowMap or FlowMapEnsemble"):
        flowsim.save(torch.nn.Linear(2, 2), tmp_path / "bad")


def test_indicator_quality_of_the_spread(lv_ensemble):
    from flowsim.analysis import indicator_quality

    sysm = lv_ensemble.system
    ref = flowsim.reference_solve(sysm, sysm.sample_initial(6, 0),
                                  torch.linspace(0, 10, 21, dtype=torch.float64))
    q = indicator_quality(lv_ensemble, ref, n_jumps=3, indicator="spread")
    assert "ensemble spread" in q.indicator.attrs["description"]
    assert q.indicator.size == q.error.size > 0 and bool((q.indicator >= 0).all())
    assert -1 <= float(q.spearman) <= 1
    with pytest.raises(flowsim.ConfigError, match="FlowMapEnsemble"):
        indicator_quality(lv_ensemble.members[0], ref, n_jumps=3, indicator="spread")
    with pytest.raises(flowsim.ConfigError, match="indicator must be"):
        indicator_quality(lv_ensemble, ref, n_jumps=3, indicator="vibes")


def test_stacked_members_evaluate_in_one_call_and_equal_the_loop():
    """Without gradients, members of one architecture (each with its own normalisation) run as
    one vmapped call over their stacked weights; the result equals the member-by-member loop to rounding, the
    stacked weights follow an update, and members that differ fall back to the loop."""
    members = [flowsim.FlowMap("lotka_volterra", width=16, depth=2, seed=k) for k in range(3)]
    with torch.no_grad():
        for m in members:
            for w in m.parameters():
                w.add_(0.1 * torch.randn_like(w))
    ens = flowsim.FlowMapEnsemble(members)
    assert ens.stackable and ens.vectorise is None     # by default vectorised on a GPU only
    ens.vectorise = True                               # on this CPU too, to compare
    x = torch.rand(64, 2) + 0.5
    looped = ens.jump(x, 0.0, 1.0)                         # gradients on: member by member
    with torch.no_grad():
        stacked = ens.jump(x, 0.0, 1.0)
        assert torch.allclose(stacked, looped, atol=1e-6, rtol=1e-6)
        next(members[1].net.parameters()).mul_(0.5)        # an update invalidates the stack
        again = ens.jump(x, 0.0, 1.0)
    assert not torch.allclose(again, stacked)
    assert torch.allclose(again, ens.jump(x, 0.0, 1.0), atol=1e-6, rtol=1e-6)
    other = flowsim.FlowMap("lotka_volterra", width=8, depth=2, seed=5)
    assert not flowsim.FlowMapEnsemble([members[0], other]).stackable
    members[2].velocity_scale.mul_(2.0)                    # its own normalisation: still one call
    members[1].state_transform.std.mul_(1.5)
    assert ens.stackable
    looped = ens.jump(x, 0.0, 1.0)
    with torch.no_grad():
        assert torch.allclose(ens.jump(x, 0.0, 1.0), looped, atol=1e-6, rtol=1e-6)
    members[1].state_transform.log_mask.logical_not_()     # a different architecture: loop
    assert not ens.stackable
