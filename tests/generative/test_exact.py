"""The probability-flow ODE of a Gaussian-to-Gaussian linear interpolant, whose flow map is known in
closed form: every objective vanishes on it, and fit with an interpolant state source approaches it."""

from __future__ import annotations

import torch

import flowsim
from flowsim.generative import LinearInterpolant
from flowsim.train import Eulerian, Lagrangian, Semigroup
from flowsim.train.bank import StateBatch

SIGMA = 2.0  # data N(0, σ²); base N(0, 1)


def _sd(t):
    return torch.sqrt((1 - t) ** 2 + SIGMA**2 * t**2)


def _b(t, x, p):
    t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
    return ((SIGMA**2 + 1) * t - 1)[:, None] / _sd(t)[:, None] ** 2 * x


def _system():
    return flowsim.from_callable(_b, name="gauss_pf", state_names=["a", "b"], timescale=1.0,
                                 sample_initial=lambda n, g: torch.randn(n, 2, generator=g,
                                                                         dtype=torch.float64))


class ExactMap(flowsim.FlowMap):
    def forward(self, s, t, x, p):
        return (_sd(t) / _sd(s))[:, None] * x


def _states(n, g):
    x0 = torch.randn(n, 2, generator=g, dtype=torch.float64)
    x1 = SIGMA * torch.randn(n, 2, generator=g, dtype=torch.float64)
    a, b = torch.rand(n, generator=g, dtype=torch.float64), torch.rand(n, generator=g, dtype=torch.float64)
    s, t = torch.minimum(a, b), torch.maximum(a, b)
    anchor = torch.rand(n, generator=g) < 0.4  # jumps from s = 0 to every t
    s, t = torch.where(anchor, 0.0, s), torch.where(anchor, b, t)
    return s, t, LinearInterpolant().point(s, x0, x1), torch.zeros(n, 0, dtype=torch.float64)


def test_every_objective_vanishes_on_the_exact_map():
    fm = ExactMap(_system(), width=4, depth=1, dtype=torch.float64)
    s, t, x, p = _states(256, torch.Generator().manual_seed(0))
    batch = StateBatch(s=s, t=t, x=x, p=p)
    for obj in (Lagrangian(teacher="system"), Lagrangian(teacher="self"), Eulerian(), Semigroup()):
        assert float(obj(fm, batch).detach()) < 1e-10, obj.name
    # and a wrong map does not pass
    wrong = flowsim.FlowMap(_system(), width=4, depth=1, dtype=torch.float64)
    assert float(Lagrangian(teacher="system")(wrong, batch).detach()) > 1e-2


def test_fit_with_a_state_source_approaches_the_exact_map():
    fm = flowsim.FlowMap(_system(), width=64, depth=4, backbone="resnet", max_jump=1.0)
    val = flowsim.reference_solve(_system(), torch.randn(32, 2, dtype=torch.float64),
                                  torch.linspace(0, 1, 9))
    flowsim.fit(fm, [Lagrangian(teacher="system")], None, validation=val, states=_states, steps=600,
                batch_size=256, lr=2e-3, max_jump=1.0, progress=False, optimizer="adamw", ema_decay=0.99)
    x = torch.randn(512, 2)
    zero = torch.zeros(512)
    for s, t in ((0.0, 1.0), (0.0, 0.5), (0.25, 0.75)):
        with torch.no_grad():
            out = fm(zero + s, zero + t, x, torch.zeros(512, 0))
        exact = (_sd(torch.tensor(t)) / _sd(torch.tensor(s))) * x
        err = float((out - exact).norm(dim=1).median() / exact.norm(dim=1).median())
        assert err < 0.03, (s, t, err)
    # the untrained map (the identity) is far from X(0, 1, x) = 2x
    assert float((x - 2 * x).norm(dim=1).median() / (2 * x).norm(dim=1).median()) > 0.4
