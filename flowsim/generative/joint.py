"""Teacher and flow map trained together, in one loop of :func:`~flowsim.fit`: the teacher's
flow-matching loss is an objective that owns the teacher's parameters (:class:`FlowMatching`),
beside the map's distillation objectives whose target is the current teacher
(:func:`train_jointly`; flow map matching, Boffi, Albergo & Vanden-Eijnden)."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..maps.flowmap import FlowMap
from ..train import BatchKind, FitConfig, Objective
from ..train.validation import jump_errors
from .distillation import (
    DistillConfig,
    InterpolantStates,
    distill_configs,
    run_distill,
    teacher_trajectories,
)
from .flowmap import GenerativeFlowMap
from .samples import as_samples
from .teacher import Teacher, TeacherConfig

__all__ = ["FlowMatching", "train_jointly"]


@dataclass(eq=False)
class FlowMatching(Objective):
    """The flow-matching loss of a :class:`Teacher` as an objective of :func:`~flowsim.fit`: it
    owns the teacher's parameters (:meth:`parameters`), so ``fit`` trains the teacher in the same
    loop as the map. Each call draws its own batch of ``batch_size`` data (from the teacher's
    samples, by a generator seeded with ``seed``), base samples and times; the map's batch is not
    used. The distillation objectives see the teacher through a stop-gradient, so only this loss
    trains it.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import FlowMatching, Teacher, TeacherConfig, as_samples
    >>> teacher = Teacher(as_samples(torch.randn(64, 2)), TeacherConfig(width=8, depth=1))
    >>> obj = FlowMatching(teacher=teacher, batch_size=32)
    >>> obj.name, len(obj.parameters()), float(obj(None, None).detach()) > 0
    ('flow_matching', 4, True)
    """

    teacher: Teacher | None = None
    batch_size: int = 256
    seed: int = 0
    weight: float = 1.0
    name: str = "flow_matching"
    needs: BatchKind = BatchKind.STATES
    generator: torch.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        te = self.teacher
        if not isinstance(te, Teacher) or te.samples is None:
            raise ConfigError("FlowMatching needs a Teacher with its training samples")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"FlowMatching.batch_size must be a positive integer; got {self.batch_size!r}")
        self.generator = torch.Generator().manual_seed(int(self.seed) + 29)
        mean, std = te.x_mean.detach().cpu(), te.x_std.detach().cpu()
        self.z = (te.samples.x.float() - mean) / std
        self.c = te.samples.c.float() if te.samples.c is not None else None

    def __call__(self, fm: FlowMap | None, batch: Any) -> Tensor:
        te, g = self.teacher, self.generator
        idx = torch.randint(len(self.z), (self.batch_size,), generator=g)
        c = self.c[idx].to(te.device) if self.c is not None else None
        return te.flow_matching_loss(self.z[idx].to(te.device), c, g)

    def parameters(self) -> list[Tensor]:
        return list(self.teacher.net.parameters())


def interpolant_rate(teacher: Teacher, seed: int, n: int = 4096) -> tuple[float, ...]:
    """RMS per state of the interpolant's velocity ``α' x0 + β' x1`` over ``t ~ U(0, 1)`` (teacher
    coordinates): the rate scale of a map whose teacher is not trained yet."""
    g = torch.Generator().manual_seed(seed + 31)
    z = (teacher.samples.x.float() - teacher.x_mean.cpu()) / teacher.x_std.cpu()
    x1 = z[torch.randint(len(z), (n,), generator=g)]
    v = teacher.interpolant.velocity(torch.rand(n, generator=g), torch.randn(x1.shape, generator=g), x1)
    return tuple(v.pow(2).mean(0).sqrt().clamp_min(1e-3).tolist())


def train_jointly(data, condition=None, teacher_config: TeacherConfig | None = None,
                  config: DistillConfig | None = None, fit_config: FitConfig | None = None, *,
                  device: str | torch.device = "cpu", progress: bool = False,
                  **options: Any) -> GenerativeFlowMap:
    """Train a teacher and its flow map from scratch in one loop of :func:`~flowsim.fit`: each step
    adds the teacher's flow-matching loss (:class:`FlowMatching`) to the map's distillation
    objectives, whose target ``b`` is the current teacher (flow map matching trained jointly,
    Boffi, Albergo & Vanden-Eijnden). One optimiser, schedule and EMA for both: the learning rate,
    steps and EMA of ``fit_config`` apply to the teacher too.

    Arguments
    ---------
    data, condition:
        As for :func:`train_teacher`.
    teacher_config:
        The teacher's network, interpolant, coupling, ``batch_size`` and ``seed`` (its ``steps``,
        ``lr`` and ``ema_decay`` are not used: ``fit_config``'s are).
    config, fit_config, **options:
        As for :func:`distill` (the map, its objectives, and :class:`~flowsim.FitConfig`).
    device:
        Where to train.
    progress:
        Show :func:`~flowsim.fit`'s progress bar.

    Returns
    -------
    GenerativeFlowMap
        Its ``teacher`` trained (EMA weights, frozen) and usable alone; ``fit_result.metrics``
        measure the map against the trained teacher's ODE (the history's validation columns are
        dropped: they compared with the teacher as it was during training).

    Raises
    ------
    ShapeError
        Bad data or conditions.
    ConfigError
        Bad options.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import train_jointly
    >>> gen = train_jointly(torch.randn(128, 2) + 3.0, width=16, depth=1, steps=10, batch_size=64)
    >>> gen.sample(4).shape, gen.teacher.net.training
    (torch.Size([4, 2]), False)
    """
    tcfg = teacher_config if teacher_config is not None else TeacherConfig()
    if not isinstance(tcfg, TeacherConfig):
        raise ConfigError(f"teacher_config must be a TeacherConfig; got {type(tcfg).__name__}")
    dcfg, base = distill_configs(config, fit_config, options)
    samples = as_samples(data, condition)
    with torch.random.fork_rng(devices=[]):
        teacher = Teacher(samples, tcfg).to(device)
    teacher.net.requires_grad_(True)
    teacher.train()
    t0 = time.perf_counter()
    objective = FlowMatching(teacher=teacher, batch_size=tcfg.batch_size, seed=tcfg.seed)
    if base.velocity_scale is None:  # fit would measure the untrained teacher's (zero) velocity
        base = dataclasses.replace(base, velocity_scale=interpolant_rate(teacher, base.seed))
    try:
        gen = run_distill(teacher, dcfg, base, device=device, progress=progress, extra=[objective])
    finally:
        teacher.net.requires_grad_(False)
        teacher.eval()
    teacher.train_seconds = time.perf_counter() - t0
    teacher.reset_nfe()
    # validate against the trained teacher (the validation data fit had came from the initial one)
    res, fm = gen.fit_result, gen.flowmap
    val = teacher_trajectories(teacher, InterpolantStates(teacher, dcfg), dcfg.validation_samples, base.seed)
    metrics = jump_errors(fm, val, fm.training_record["val_jumps"])
    for row in res.history:
        for k in res.metrics:
            row.pop(k, None)
    res.metrics = metrics
    fm.training_record["final_metrics"] = metrics
    fm.training_record["joint_teacher"] = {"teacher_config": tcfg.__dict__.copy()}
    return gen
