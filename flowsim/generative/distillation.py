"""The flow map of a teacher's probability-flow ODE, distilled with :class:`~flowsim.FlowMap` and
:func:`~flowsim.fit`: :func:`distill` → :class:`~flowsim.generative.GenerativeFlowMap`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._utils import with_keywords
from ..errors import ConfigError
from ..maps.flowmap import FlowMap
from ..train import Diagonal, Eulerian, FitConfig, Lagrangian, Semigroup, TrajectoryBank, fit
from .couplings import couple
from .flowmap import GenerativeFlowMap
from .system import teacher_system
from .teacher import Teacher

__all__ = ["DistillConfig", "distill", "DISTILL_OBJECTIVES"]

#: objectives :func:`distill` knows, joined with ``+``: the package's own, with the teacher as ``b``
DISTILL_OBJECTIVES = {
    "lagrangian": lambda: [Lagrangian(teacher="system")],  # LMD: ∂_t X = b(t, X)
    "lsd": lambda: [Diagonal(source="system"), Lagrangian(teacher="self", weight=1.0)],
    "eulerian": lambda: [Eulerian()],  # MeanFlow's identity: ∂_s X + ∇X · b = 0
    "semigroup": lambda: [Semigroup(weight=0.5)],
}


@dataclass(frozen=True)
class DistillConfig:
    """The flow map of a probability-flow ODE and where its training states come from.

    Attributes
    ----------
    width, depth, backbone:
        The map's network: ``"resnet"`` (default; pre-norm residual blocks) or ``"mlp"``. On the
        exact Gaussian flow map (800 steps, AdamW) the MLP left 5–10 % error on jumps from
        ``s = 0`` where the ResNet left 1 %.
    objectives:
        Names of :data:`DISTILL_OBJECTIVES` joined with ``+`` (``"lagrangian"``,
        ``"lagrangian+semigroup"``, ``"eulerian"``, ``"lsd"``).
    backward:
        Train backward jumps too (``t < s``), for :meth:`GenerativeFlowMap.encode`.
    anchor_fraction:
        Fraction of training jumps that start where the 1–8-jump samplers start (``s = k/8``;
        ``s = 0`` for half of them), with ``t`` uniform in ``[s, 1]``. The Lagrangian objective
        constrains ``∂_t X(s, t, x)``, so ``X(0, 1, x)`` is only as good as the jumps from
        ``s = 0`` to every ``t`` in between (training only ``(0, 1)`` itself made it worse).
    diagonal_fraction:
        Fraction with ``t = s``.
    backward_fraction:
        With ``backward``: fraction of jumps reversed.
    validation_samples:
        Teacher trajectories (dopri5) the map is validated on.

    Examples
    --------
    >>> from flowsim.generative import DistillConfig
    >>> DistillConfig(objectives="lagrangian+semigroup").backward
    False
    """

    width: int = 128
    depth: int = 4
    backbone: str = "resnet"
    objectives: str = "lagrangian"
    backward: bool = False
    anchor_fraction: float = 0.4
    diagonal_fraction: float = 0.15
    backward_fraction: float = 0.4
    validation_samples: int = 128

    def __post_init__(self) -> None:
        for part in self.objectives.split("+"):
            if part.strip() not in DISTILL_OBJECTIVES:
                raise ConfigError(f"unknown objective {part!r}; choose from {sorted(DISTILL_OBJECTIVES)}")
        for name in ("anchor_fraction", "diagonal_fraction", "backward_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"DistillConfig.{name} must be in [0, 1]; got {getattr(self, name)!r}")
        if self.anchor_fraction + self.diagonal_fraction > 1:
            raise ConfigError("anchor_fraction + diagonal_fraction must be at most 1")

    def make_objectives(self) -> list:
        out: list = []
        for part in self.objectives.split("+"):
            out += DISTILL_OBJECTIVES[part.strip()]()
        return out


class InterpolantStates:
    """The state source of :func:`flowsim.fit` for a teacher: ``(s, t, x_s, c)`` with ``x_s`` the
    teacher's interpolant at ``s`` between noise and a data sample (standardised), under its coupling."""

    def __init__(self, teacher: Teacher, config: DistillConfig) -> None:
        self.teacher, self.config = teacher, config
        # on the CPU, where the generator draws; fit moves each batch to the map's device
        mean, std = teacher.x_mean.detach().cpu(), teacher.x_std.detach().cpu()
        self.z = (teacher.samples.x.float() - mean) / std
        self.c = teacher.samples.c

    def __call__(self, n: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        cfg, te = self.config, self.teacher
        idx = torch.randint(len(self.z), (n,), generator=g)
        x1 = self.z[idx]
        x0 = couple(te.config.coupling, torch.randn(x1.shape, generator=g), x1)
        a = torch.rand(n, generator=g, dtype=torch.float64)
        b = torch.rand(n, generator=g, dtype=torch.float64)
        s, t = torch.minimum(a, b), torch.maximum(a, b)
        u = torch.rand(n, generator=g)
        anchor = u < cfg.anchor_fraction
        diag = (u >= cfg.anchor_fraction) & (u < cfg.anchor_fraction + cfg.diagonal_fraction)
        k = torch.randint(8, (n,), generator=g).double() / 8
        s0 = torch.where(torch.rand(n, generator=g) < 0.5, torch.zeros_like(k), k)
        t0 = s0 + (1 - s0) * torch.rand(n, generator=g, dtype=torch.float64)
        s = torch.where(anchor, s0, s)
        t = torch.where(anchor, t0, torch.where(diag, s, t))
        if cfg.backward:
            rev = torch.rand(n, generator=g) < cfg.backward_fraction
            s, t = torch.where(rev, t, s), torch.where(rev, s, t)
        xs = te.interpolant.point(s.float(), x0, x1).double()
        c = self.c[idx] if self.c is not None else torch.zeros(n, 0, dtype=torch.float64)
        return s, t, xs, c


def distill(teacher: Teacher, config: DistillConfig | None = None, fit_config: FitConfig | None = None,
            *, init: FlowMap | None = None, device: str | torch.device | None = None,
            progress: bool = False, **options: Any) -> GenerativeFlowMap:
    """Distil the flow map of ``teacher``'s probability-flow ODE with :class:`~flowsim.FlowMap` and
    :func:`~flowsim.fit`: the teacher's velocity is the system's ``b`` (:func:`teacher_system`),
    the start states ``x_s`` come from the interpolant (a state source of :func:`~flowsim.fit`),
    and the map is validated against dopri5 solutions of the teacher's ODE.

    Arguments
    ---------
    teacher:
        A trained :class:`Teacher` (with its ``samples``).
    config:
        A :class:`DistillConfig` (the map and its training states).
    fit_config:
        A :class:`~flowsim.FitConfig` (steps, batch size, learning rate, seed …); default
        ``FitConfig(steps=2000, batch_size=512, lr=2e-3, ema_decay=0.995, optimizer="adamw")``
        (on the exact Gaussian flow map, 800 steps of Muon at lr 2e-3 left 4–10 % error on
        jumps from ``s = 0`` where AdamW left under 1 %).
    init:
        A map of the same size to start from (fine-tuning, e.g. on a tilted teacher).
    device:
        Where to train (default: the teacher's device).
    progress:
        Show :func:`~flowsim.fit`'s progress bar.
    **options:
        Fields of either config by name (``steps=…``, ``width=…``).

    Returns
    -------
    GenerativeFlowMap

    Raises
    ------
    ConfigError
        Unknown options or objectives.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import distill, train_teacher
    >>> teacher = train_teacher(torch.randn(256, 2) + 3.0, steps=50, width=16, depth=1)
    >>> gen = distill(teacher, width=16, depth=1, steps=10, batch_size=64)
    >>> gen.sample(5, steps=1).shape
    torch.Size([5, 2])
    """
    if getattr(teacher, "samples", None) is None:
        raise ConfigError("this teacher has no training samples (saved with samples=False); "
                          "distil needs them: set teacher.samples = as_samples(data, condition)")
    config, base = distill_configs(config, fit_config, options)
    return run_distill(teacher, config, base, device=device, progress=progress, init=init)


def distill_configs(config: DistillConfig | None, fit_config: FitConfig | None,
                    options: dict[str, Any]) -> tuple[DistillConfig, FitConfig]:
    """:func:`distill`'s two configs from the given ones and keywords (fields of either)."""
    dfields = set(DistillConfig.__dataclass_fields__)
    config = with_keywords(DistillConfig, config, {k: v for k, v in options.items() if k in dfields},
                           what="distillation", error=ConfigError)
    fopts = {k: v for k, v in options.items() if k not in dfields}
    base = FitConfig.from_options(fit_config or FitConfig(steps=2000, batch_size=512, lr=2e-3,
                                                          ema_decay=0.995, optimizer="adamw"), **fopts)
    if base.max_jump not in (None, 1.0):
        raise ConfigError("a probability-flow map jumps over [0, 1]: leave max_jump unset")
    return config, dataclasses.replace(base, max_jump=1.0)


@torch.no_grad()
def teacher_trajectories(teacher: Teacher, states: InterpolantStates, k: int, seed: int) -> TrajectoryBank:
    """``k`` solutions of the teacher's ODE by dopri5 from noise (conditions drawn from its data)
    at 17 times in ``[0, 1]``: the validation data of a distilled map."""
    from torchdiffeq import odeint

    g = torch.Generator().manual_seed(seed + 17)
    z0 = torch.randn(k, teacher.dim, generator=g).to(teacher.device)
    c = states.c[torch.randint(len(states.z), (k,), generator=g)] if states.c is not None \
        else torch.zeros(k, 0, dtype=torch.float64)
    grid = torch.linspace(0, 1, 17)
    cf = c.float().to(teacher.device)
    traj = odeint(lambda tt, zz: teacher.velocity(tt, zz, cf), z0, grid.to(teacher.device),
                  rtol=1e-6, atol=1e-6).transpose(0, 1)
    return TrajectoryBank(traj.double().cpu(), grid.double(), c)


def run_distill(teacher: Teacher, config: DistillConfig, base: FitConfig, *, device=None,
                progress: bool = False, init: FlowMap | None = None,
                extra: list | None = None) -> GenerativeFlowMap:
    """The body of :func:`distill`: a :class:`~flowsim.FlowMap` of :func:`teacher_system` trained
    by :func:`~flowsim.fit` with the interpolant as state source; ``extra`` objectives (e.g. the
    teacher's own flow matching, :func:`train_jointly`) are trained in the same loop."""
    fm = FlowMap(teacher_system(teacher), width=config.width, depth=config.depth,
                 backbone=config.backbone, backward=config.backward, max_jump=1.0, seed=base.seed,
                 decay=False)  # the generative recipe was measured with the plain map
    if init is not None:
        try:
            fm.load_state_dict(init.state_dict())
        except RuntimeError as err:
            raise ConfigError(f"init map does not fit this one (width, depth, conditions): {err}") from None
    fm.to(teacher.device)
    states = InterpolantStates(teacher, config)
    val = teacher_trajectories(teacher, states, config.validation_samples, base.seed)
    res = fit(fm, config.make_objectives() + list(extra or []), None, base, validation=val, device=device,
              progress=progress, states=states)
    return GenerativeFlowMap(teacher, res.flowmap, res)
