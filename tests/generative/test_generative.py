"""A teacher and its distilled flow map on a 2-D Gaussian mixture: quality in one jump, the round
trip data → noise → data, reward tilting of a Gaussian, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

import flowsim
from flowsim.analysis import energy_distance
from flowsim.generative import (
    as_samples,
    distill,
    guided_sample,
    tilt_finetune,
    tilt_weights,
    train_teacher,
)


def mixture(n, g, k=4, r=3.0, sd=0.3):
    i = torch.randint(k, (n,), generator=g)
    ang = 2 * math.pi * i / k
    return torch.stack([r * torch.cos(ang), r * torch.sin(ang)], 1) + sd * torch.randn(n, 2, generator=g)


@pytest.fixture(scope="module")
def trained():
    g = torch.Generator().manual_seed(0)
    data, test = mixture(3000, g), mixture(1000, g)
    teacher = train_teacher(data, steps=1200, width=64, depth=2, batch_size=256, lr=3e-3)
    gen = distill(teacher, width=64, depth=4, steps=500, batch_size=256, lr=2e-3, backward=True)
    floor = energy_distance(mixture(1000, g), test)
    return teacher, gen, test, floor


def test_teacher_and_one_jump_map_sample_the_mixture(trained):
    teacher, gen, test, floor = trained
    x, nfe = teacher.sample(1000, "heun", steps=16, generator=1)
    assert nfe == 32
    e_teacher = energy_distance(x, test)
    e_map = energy_distance(gen.sample(1000, steps=1, generator=1), test)
    # the untrained map is the identity: it returns (unstandardised) noise
    untrained = flowsim.FlowMap(gen.flowmap.system, width=64, depth=2, max_jump=1.0)
    z = torch.randn(1000, 2, generator=torch.Generator().manual_seed(1))
    e_untrained = energy_distance(teacher.unstandardise(untrained(torch.zeros(1000), torch.ones(1000), z,
                                                                  torch.zeros(1000, 0))), test)
    # measured (2 loaded cores): floor -0.003, teacher (Heun 16) 0.002, map 0.013, untrained 0.18
    assert e_teacher < 0.02, e_teacher
    assert e_map < 0.05, e_map
    assert e_untrained > 0.1, e_untrained
    assert gen.sample(5, steps=4, generator=0).shape == (5, 2)


def test_round_trip_through_noise(trained):
    teacher, gen, test, _ = trained
    z = gen.encode(test[:500])
    # the codes look like the base N(0, I)
    assert abs(float(z.std()) - 1.0) < 0.25 and abs(float(z.mean())) < 0.2
    back = gen.decode(z)
    err = float((back - test[:500]).norm(dim=1).median() / test[:500].std(0).norm())
    assert err < 0.2, err


def test_tilt_moves_a_gaussian_by_the_exact_amount():
    # p = N(0, 1) in 1-D, r(x) = a x, λ = 1: the tilted law is N(a, 1)
    a = 0.8
    g = torch.Generator().manual_seed(3)
    data = torch.randn(4000, 1, generator=g)
    gen = distill(train_teacher(data, steps=800, width=32, depth=2), width=32, depth=4, steps=300,
                  batch_size=256, lr=3e-3)
    base = gen.sample(4000, steps=1, generator=5)
    tilted = guided_sample(gen, 4000, lambda x: a * x[:, 0], lam=1.0, steps=8, generator=5)
    shift = float(tilted.mean() - base.mean())
    assert abs(shift - a) < 0.15, shift
    assert abs(float(tilted.std()) - float(base.std())) < 0.15
    w = tilt_weights(data, lambda x: a * x[:, 0])
    assert abs(float((w[:, None] * data).sum()) - a) < 0.1  # importance weights: the exact mean
    fine = tilt_finetune(gen, lambda x: a * x[:, 0], teacher_steps=400, map_steps=200)
    assert abs(float(fine.sample(4000, generator=5).mean()) - a) < 0.15


def test_bad_input(trained):
    teacher, gen, _, _ = trained
    with pytest.raises(flowsim.ShapeError):
        as_samples(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]))
    with pytest.raises(flowsim.ShapeError):
        as_samples(torch.zeros(10))
    with pytest.raises(flowsim.ShapeError):
        as_samples(torch.zeros(10, 2), torch.zeros(9, 1))
    # conditions given with a SampleSet are attached, not dropped; twice is refused
    both = as_samples(as_samples(torch.zeros(10, 2)), torch.arange(10.0))
    assert both.n_cond == 1 and torch.equal(both.c[:, 0], torch.arange(10.0, dtype=torch.float64))
    with pytest.raises(flowsim.ShapeError, match="already carries"):
        as_samples(both, torch.zeros(10))
    with pytest.raises(flowsim.ShapeError):
        as_samples(as_samples(torch.zeros(10, 2)), torch.zeros(9))
    with pytest.raises(flowsim.ConfigError):
        gen.sample(10, steps=0)
    with pytest.raises(flowsim.ConfigError):
        gen.sample(10, steps=1.5)
    with pytest.raises(flowsim.ConfigError):  # unconditional map asked for conditional samples
        gen.sample(10, condition=torch.zeros(1))
    with pytest.raises(flowsim.ShapeError):
        gen.decode(torch.zeros(4, 3))
    with pytest.raises(flowsim.ShapeError):
        gen.encode(torch.full((4, 2), float("nan")))
    with pytest.raises(flowsim.ConfigError):
        teacher.sample(10, "rk45")
    with pytest.raises(flowsim.ConfigError):
        guided_sample(gen, 4, lambda x: x[:, 0].detach())  # no gradient
    with pytest.raises(flowsim.ConfigError):
        guided_sample(gen, 4, lambda x: x[:, 0] * float("nan"))
    with pytest.raises(flowsim.ConfigError):
        guided_sample(gen, 4, lambda x: x[:, 0], lam=0.0)
    with pytest.raises(flowsim.ConfigError):
        train_teacher(torch.randn(20, 2), steps=0)
    with pytest.raises(flowsim.ConfigError):
        distill(teacher, objectives="no-such-objective")
    cond = train_teacher(torch.randn(64, 2), torch.rand(64, 3), steps=5, width=8, depth=1)
    with pytest.raises(flowsim.ConfigError):  # a conditional model needs a condition
        cond.sample(4, "euler", steps=2)
    with pytest.raises(flowsim.ShapeError):  # of the trained shape
        cond.sample(4, "euler", steps=2, condition=torch.zeros(2))
    with pytest.warns(flowsim.ExtrapolationWarning):  # outside the training conditions
        cond.sample(4, "euler", steps=2, condition=torch.full((3,), 10.0))
