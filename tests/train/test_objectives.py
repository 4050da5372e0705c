"""Each objective vanishes on the exact flow map and is positive on a wrong one."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim.train import (
    Diagonal,
    Eulerian,
    Lagrangian,
    PairRegression,
    Rollout,
    Semigroup,
    TrajectoryBank,
    make_objectives,
)
from flowsim.train.bank import StateBatch


@pytest.fixture(scope="module")
def bank():
    sys = flowsim.get_system("harmonic_oscillator")
    g = torch.Generator().manual_seed(0)
    x0, p = sys.sample_initial(32, g), sys.sample_params(32, g)
    t = torch.linspace(0, 10, 401, dtype=torch.float64)
    return TrajectoryBank.from_solution(
        flowsim.reference_solve(sys, x0, t, p, rtol=1e-12, atol=1e-13))


def _states(sys, n=256):
    g = torch.Generator().manual_seed(1)
    x, p = sys.sample_initial(n, g), sys.sample_params(n, g)
    s = torch.rand(n, generator=g, dtype=torch.float64) * 3
    t = s + torch.rand(n, generator=g, dtype=torch.float64) * 6
    return StateBatch(s=s, t=t, x=x, p=p)


@pytest.mark.parametrize("obj", [Diagonal(), Lagrangian(teacher="system"),
                                 Lagrangian(teacher="self"), Eulerian(), Semigroup()])
def test_state_objectives_vanish_on_exact_map(exact_map, obj):
    batch = _states(exact_map.system)
    assert float(obj(exact_map, batch).detach()) < 1e-20


def test_data_objectives_vanish_on_exact_map(exact_map, bank):
    g = torch.Generator().manual_seed(2)
    # the norm loss is the landing error itself: the reference solve's ~1e-13, not its square
    assert float(PairRegression()(exact_map, bank.sample_pairs(256, g)).detach()) < 1e-10
    assert float(PairRegression(jump_weight=0.3)(exact_map, bank.sample_pairs(256, g)).detach()) < 1e-10
    assert float(PairRegression(loss="squared")(exact_map, bank.sample_pairs(256, g)).detach()) < 1e-20
    assert float(Rollout(length=6)(exact_map, bank.sample_windows(64, 6, g)).detach()) < 1e-16
    fd = Diagonal(source="data")(exact_map, bank.sample_pairs(256, g, min_gap=0.025, max_gap=0.025))
    assert float(fd.detach()) < 1e-4  # central difference error O(dt²); a wrong map gives > 1e-2


def test_objectives_detect_a_wrong_map(exact_map, bank):
    wrong = flowsim.FlowMap("harmonic_oscillator", width=8, depth=1, dtype=torch.float64)
    batch = _states(wrong.system)
    g = torch.Generator().manual_seed(3)
    for obj in [Diagonal(), Lagrangian(), Eulerian()]:
        assert float(obj(wrong, batch).detach()) > 1e-2
    assert float(PairRegression()(wrong, bank.sample_pairs(64, g)).detach()) > 1e-2


def test_pair_losses_are_the_mean_norm_and_mean_square(bank):
    """On an untrained map the two losses are the mean landing-error norm and the mean squared
    norm (normalised coordinates); the norm loss has a finite gradient at zero error."""
    fm = flowsim.FlowMap("harmonic_oscillator", width=8, depth=1, dtype=torch.float64)
    fm.set_state_transform(flowsim.maps.StateTransform.fit(bank.x))
    batch = bank.sample_pairs(128, torch.Generator().manual_seed(4))
    pred = fm(batch.s, batch.t, batch.x_s, batch.p).detach()
    r = fm.state_transform.encode(pred) - fm.state_transform.encode(batch.x_t)
    norm = float(PairRegression()(fm, batch).detach())
    sq = float(PairRegression(loss="squared")(fm, batch).detach())
    assert norm == pytest.approx(float(r.norm(dim=-1).mean().detach()), rel=1e-9)
    assert sq == pytest.approx(float((r * r).sum(-1).mean().detach()), rel=1e-9)
    assert norm > 1e-2 and sq > 1e-4
    # zero error: finite gradients (√ has an infinite slope at 0)
    zero = type(batch)(s=batch.s, t=batch.t, x_s=batch.x_s, x_t=pred, p=batch.p)
    fm.zero_grad()
    PairRegression()(fm, zero).backward()
    assert all(torch.isfinite(q.grad).all() for q in fm.parameters() if q.grad is not None)


def test_pair_regression_bad_options():
    with pytest.raises(flowsim.ConfigError, match="norm"):
        PairRegression(loss="l1")
    with pytest.raises(flowsim.ConfigError, match="jump_weight"):
        PairRegression(jump_weight=0.0)


def test_presets():
    names = [o.name for o in make_objectives("pairs+semigroup")]
    assert names == ["pairs", "semigroup"]
    assert [o.name for o in make_objectives("lsd")] == ["pairs", "lsd"]
    with pytest.raises(flowsim.ConfigError):
        make_objectives("magic")
    with pytest.raises(flowsim.ConfigError):
        Lagrangian(teacher="oracle")
