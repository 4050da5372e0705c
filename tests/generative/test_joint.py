"""Teacher and flow map trained jointly in one fit loop: on a correlated Gaussian, whose flow map
for the linear interpolant is known in closed form, both approach it; the distillation target is a
stop-gradient, so only the flow-matching loss trains the teacher."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim.generative import FlowMatching, Teacher, TeacherConfig, as_samples, train_jointly
from flowsim.train import Diagonal, Lagrangian
from flowsim.train.bank import StateBatch

L = torch.tensor([[2.0, 0.0], [1.7, 0.5]])  # data N(m, L Lᵀ): correlation 0.96


def _data(n, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed)) @ L.T + torch.tensor([1.0, -2.0])


def _exact(teacher, x, z):
    """X(0, 1, z) for the linear interpolant from N(0, I) to N(μ, C) (in the teacher's standardised
    coordinates, the data's sample moments): μ + C^½ z (all Σ_t = (1−t)² I + t² C commute)."""
    zd = teacher.standardise(x.double())
    ev, vec = torch.linalg.eigh(torch.cov(zd.T))
    return teacher.unstandardise(zd.mean(0) + z @ (vec @ torch.diag(ev.sqrt()) @ vec.T).T)


def test_joint_training_approaches_the_exact_flow_map():
    x = _data(4000)
    gen = train_jointly(x, teacher_config=TeacherConfig(width=48, depth=2, batch_size=256),
                        width=48, depth=3, steps=800, batch_size=256)
    te = gen.teacher
    z = torch.randn(2000, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = _exact(te, x, z)

    def err(out):  # median error in units of the data's spread per coordinate
        return float(((out.double() - exact) / te.x_std.double()).norm(dim=1).median() / 2**0.5)

    one, four = err(gen.decode(z.float())), err(gen.decode(z.float(), steps=4))
    ode, _ = te.solve(z.float(), 0.0, 1.0, torch.zeros(2000, 0), "dopri5")
    untrained = err(te.unstandardise(z.float()))  # an untrained map is the identity
    # measured: one jump 0.025, four jumps 0.036, the teacher's ODE 0.024, untrained 0.48; norm@1 0.018
    assert one < 0.06 and four < 0.06, (one, four)
    assert err(te.unstandardise(ode)) < 0.06  # the teacher was trained too
    assert untrained > 0.3
    assert gen.fit_result.metrics["norm@1"] < 0.05  # validated against the trained teacher's ODE
    assert "loss_flow_matching" in gen.fit_result.history[-1]
    assert not any(q.requires_grad for q in te.net.parameters())


def test_the_distillation_target_does_not_train_the_teacher():
    teacher = Teacher(as_samples(_data(64)), TeacherConfig(width=8, depth=1))
    fm = flowsim.FlowMap(flowsim.generative.teacher_system(teacher), width=8, depth=1, max_jump=1.0)
    n = 16
    batch = StateBatch(s=torch.zeros(n), t=torch.rand(n), x=torch.randn(n, 2), p=torch.zeros(n, 0))
    for objective in (Lagrangian(teacher="system"), Diagonal()):
        objective(fm, batch).backward()
    assert all(q.grad is None for q in teacher.net.parameters())
    assert any(q.grad is not None for q in fm.parameters())
    fmo = FlowMatching(teacher=teacher, batch_size=32)
    fmo(fm, batch).backward()
    assert all(q.grad is not None for q in fmo.parameters())


def test_bad_joint_options_are_refused():
    with pytest.raises(flowsim.ConfigError, match="TeacherConfig"):
        train_jointly(_data(64), teacher_config={"width": 8})
    with pytest.raises(flowsim.ConfigError, match="velocity_scale"):
        train_jointly(_data(64), velocity_scale=-1.0)
    with pytest.raises(flowsim.ShapeError):
        train_jointly(torch.full((10, 2), float("nan")))
    with pytest.raises(flowsim.ConfigError, match="Teacher"):
        FlowMatching(teacher=None)


def test_fit_trains_an_objectives_own_parameters_and_takes_a_velocity_scale(tmp_path):
    from dataclasses import dataclass, field

    from flowsim.train import FitConfig, Objective

    @dataclass(eq=False)
    class Offset(Objective):  # owns a scalar pulled to 3 beside the map's physics loss
        name: str = "offset"
        a: torch.Tensor = field(default_factory=lambda: torch.zeros((), requires_grad=True))

        def __call__(self, fm, batch):
            return (self.a - 3.0) ** 2

        def parameters(self):
            return [self.a]

    off = Offset()
    fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1)
    res = flowsim.fit(fm, [Lagrangian(), off], steps=300, batch_size=32, lr=0.05, ema_decay=0.9,
                      velocity_scale=(0.5, 2.0), optimizer="adamw", progress=False)
    assert abs(float(off.a.detach()) - 3.0) < 0.05  # trained by the same optimiser, EMA weights loaded
    assert "loss_offset" in res.history[-1]
    assert fm.velocity_scale.tolist() == [0.5, 2.0]
    # the trainer state holds them: a finished run resumed from its checkpoint ends where it did
    for k in range(2):
        again = Offset()
        flowsim.fit(flowsim.FlowMap("lotka_volterra", width=8, depth=1), [Lagrangian(), again], steps=20,
                    batch_size=32, lr=0.05, optimizer="adamw", progress=False, checkpoint_dir=tmp_path / "ck")
        if k == 0:
            first = float(again.a.detach())
    assert float(again.a.detach()) == first != 0.0
    cfg = FitConfig(velocity_scale=[0.5, 2.0])
    assert FitConfig.from_dict(cfg.to_dict()) == cfg and cfg.velocity_scale == (0.5, 2.0)
    with pytest.raises(flowsim.ConfigError, match="velocity_scale"):
        FitConfig(velocity_scale=(1.0, 0.0))
