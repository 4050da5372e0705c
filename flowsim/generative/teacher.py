"""The teacher: a velocity ``b(t, x; c)`` trained by flow matching on an interpolant, and its
probability-flow ODE solved by Euler, Heun or dopri5 (the sampling baseline)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .._utils import as_generator, with_keywords
from ..errors import ConfigError
from ..maps.networks import FourierEmbedding, make_backbone
from ._checks import check_count, check_steps, conditions
from .couplings import COUPLINGS, couple
from .interpolants import get_interpolant
from .samples import SampleSet, as_samples

__all__ = ["TeacherConfig", "Teacher", "train_teacher", "TEACHER_METHODS"]

#: the probability-flow ODE solvers of :meth:`Teacher.sample`
TEACHER_METHODS = ("euler", "heun", "dopri5")


@dataclass(frozen=True)
class TeacherConfig:
    """How a teacher velocity is trained by flow matching.

    Attributes
    ----------
    width, depth:
        The MLP (GELU) of the velocity.
    steps, batch_size, lr:
        AdamW with cosine decay; ``ema_decay`` averages the weights used for sampling.
    interpolant:
        ``"linear"`` or ``"vp"`` (:func:`get_interpolant`).
    coupling:
        ``"independent"`` or ``"ot"`` (minibatch optimal transport, :func:`couple`).
    seed:
        Seeds the weights and every draw.

    Examples
    --------
    >>> from flowsim.generative import TeacherConfig
    >>> TeacherConfig(steps=100).coupling
    'independent'
    """

    width: int = 128
    depth: int = 3
    steps: int = 3000
    batch_size: int = 256
    lr: float = 2e-3
    ema_decay: float = 0.995
    interpolant: str = "linear"
    coupling: str = "independent"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "depth", "steps", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"TeacherConfig.{name} must be a positive integer; got {v!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"TeacherConfig.lr must be a positive number; got {self.lr!r}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"TeacherConfig.ema_decay must be in [0, 1); got {self.ema_decay!r}")
        get_interpolant(self.interpolant)
        if self.coupling not in COUPLINGS:
            raise ConfigError(f"TeacherConfig.coupling must be one of {COUPLINGS}; got {self.coupling!r}")


class Teacher(nn.Module):
    """A flow-matching velocity ``b(t, z; c)`` on ``t ∈ [0, 1]`` in standardised coordinates
    ``z = (x − mean) / std`` of the data, from noise ``z ~ N(0, I)`` at ``t = 0`` to data at ``t = 1``.

    Build one with :func:`train_teacher`. :meth:`velocity` is the vector field of the
    probability-flow ODE; :meth:`sample` solves it.

    Attributes
    ----------
    dim, n_cond:
        Data and condition dimensions.
    config:
        The :class:`TeacherConfig` it was trained with.
    samples:
        The :class:`SampleSet` it was trained on (not saved with the weights).
    nfe:
        Velocity evaluations counted since the last :meth:`reset_nfe`.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import train_teacher
    >>> teacher = train_teacher(torch.randn(64, 3), steps=5, width=8, depth=1)
    >>> teacher.velocity(0.5, torch.zeros(4, 3)).shape, teacher.dim, teacher.n_cond
    (torch.Size([4, 3]), 3, 0)
    """

    def __init__(self, samples: SampleSet, config: TeacherConfig) -> None:
        super().__init__()
        self.config, self.samples = config, samples
        self.dim, self.n_cond = samples.dim, samples.n_cond
        self.interpolant = get_interpolant(config.interpolant)
        x, c = samples.x, samples.c
        self.register_buffer("x_mean", x.mean(0).float())
        self.register_buffer("x_std", x.std(0).clamp_min(1e-8).float())
        c = c if c is not None else torch.zeros(len(samples), 0, dtype=torch.float64)
        self.register_buffer("c_mean", c.mean(0).float())
        c_std = c.std(0) if c.shape[1] else torch.ones(0, dtype=torch.float64)
        self.register_buffer("c_std", c_std.clamp_min(1e-8).float())
        self.register_buffer("c_low", c.amin(0).float() if c.shape[1] else torch.zeros(0))
        self.register_buffer("c_high", c.amax(0).float() if c.shape[1] else torch.zeros(0))
        torch.manual_seed(config.seed)
        self.embed = FourierEmbedding(8, f_min=0.25, f_max=8.0)
        self.net = make_backbone("mlp", self.dim + self.n_cond + self.embed.out_features, self.dim,
                                 config.width, config.depth, "gelu")
        self.nfe = 0

    @property
    def device(self) -> torch.device:
        return self.x_mean.device

    def standardise(self, x: Tensor) -> Tensor:
        """Data → the teacher's coordinates ``z``."""
        return (x - self.x_mean.to(x.dtype)) / self.x_std.to(x.dtype)

    def unstandardise(self, z: Tensor) -> Tensor:
        """The teacher's coordinates ``z`` → data."""
        return z * self.x_std.to(z.dtype) + self.x_mean.to(z.dtype)

    def velocity(self, t: Tensor, z: Tensor, c: Tensor | None = None) -> Tensor:
        """``b(t, z; c)`` (unchecked; ``t`` a scalar or ``(batch,)``, ``c`` raw conditions
        ``(batch, n_cond)``); returns ``z``'s dtype."""
        self.nfe += 1
        w = self.x_mean.dtype
        t = torch.as_tensor(t, dtype=w, device=z.device)
        if t.ndim == 0:
            t = t.expand(z.shape[0])
        feats = [z.to(w), self.embed(t.to(w))]
        if self.n_cond:
            feats.append((c.to(w) - self.c_mean) / self.c_std)
        return self.net(torch.cat(feats, dim=-1)).to(z.dtype)

    def reset_nfe(self) -> None:
        self.nfe = 0

    def flow_matching_loss(self, x1: Tensor, c: Tensor | None, generator: torch.Generator) -> Tensor:
        """The flow-matching loss on a batch of standardised data ``x1`` (conditions ``c``): base
        samples ``x0`` and times ``t ~ U(0, 1)`` drawn from ``generator`` (on the CPU), paired by
        the coupling; ``mean ‖b(t, x_t; c) − ∂_t x_t‖²``."""
        dev = x1.device
        x0 = torch.randn(x1.shape, generator=generator).to(dev)
        if self.config.coupling != "independent":
            x0 = couple(self.config.coupling, x0, x1)
        t = torch.rand(x1.shape[0], generator=generator).to(dev)
        xt = self.interpolant.point(t, x0, x1)
        target = self.interpolant.velocity(t, x0, x1)
        return (self.velocity(t, xt, c) - target).pow(2).sum(-1).mean()

    def save(self, path, *, samples: bool = True):
        """Save to the folder ``path`` (``teacher.safetensors`` + ``config.json`` with checksums;
        written whole or not at all): weights, standardisation, condition range, config,
        interpolant, base, and with ``samples`` the training samples (for :func:`distill`).
        Returns the folder. Raises :class:`~flowsim.CheckpointError` where ``path`` is a file or a
        folder holding something else.

        Examples
        --------
        >>> import tempfile, torch
        >>> from flowsim.generative import Teacher, train_teacher
        >>> teacher = train_teacher(torch.randn(64, 2), steps=5, width=8, depth=1)
        >>> back = Teacher.load(teacher.save(tempfile.mkdtemp() + "/teacher"))
        >>> bool(torch.equal(back.sample(4, "euler", 2, generator=0)[0],
        ...                  teacher.sample(4, "euler", 2, generator=0)[0]))
        True
        """
        from .io import save_teacher

        return save_teacher(self, path, samples=samples)

    @classmethod
    def load(cls, path, *, map_location: str | torch.device = "cpu") -> Teacher:
        """A teacher saved by :meth:`save` (eval mode, frozen). Raises
        :class:`~flowsim.CheckpointError` for a missing folder, edited or corrupted files, or a
        folder holding another kind of model (e.g. a plain :func:`flowsim.save` checkpoint)."""
        from .io import load_teacher

        return load_teacher(path, map_location=map_location)

    @torch.no_grad()
    def sample(self, n: int, method: str = "dopri5", steps: int = 32, condition=None, *,
               generator: torch.Generator | int | None = None, rtol: float = 1e-5,
               atol: float = 1e-5) -> tuple[Tensor, int]:
        """Solve the probability-flow ODE from ``N(0, I)`` noise at ``t = 0`` to ``t = 1``.

        Arguments
        ---------
        n:
            Number of samples.
        method:
            ``"euler"``, ``"heun"`` (``steps`` fixed steps) or ``"dopri5"`` (torchdiffeq,
            adaptive at ``rtol``, ``atol``).
        condition:
            ``(n_cond,)`` or ``(n, n_cond)`` for a conditional teacher.
        generator:
            Seed or generator of the noise.

        Returns
        -------
        (Tensor, int)
            ``(n, dim)`` samples in data coordinates, and the velocity evaluations used.

        Raises
        ------
        ConfigError
            An unknown method, ``steps < 1``, or a condition where none is expected (or none given).
        ShapeError
            A condition of the wrong shape.
        """
        n = check_count(n)
        if method not in TEACHER_METHODS:
            raise ConfigError(f"method must be one of {TEACHER_METHODS}; got {method!r}")
        c = conditions(condition, n, self.n_cond, self.c_low, self.c_high, self.device, torch.float32)
        g = as_generator(generator)
        z = torch.randn(n, self.dim, generator=g).to(self.device)
        z, nfe = self.solve(z, 0.0, 1.0, c, method, steps, rtol=rtol, atol=atol)
        return self.unstandardise(z), nfe

    def solve(self, z: Tensor, s: float, t: float, c: Tensor, method: str = "dopri5", steps: int = 32,
              *, rtol: float = 1e-5, atol: float = 1e-5) -> tuple[Tensor, int]:
        """Integrate ``dz/dt = b(t, z; c)`` from ``s`` to ``t`` (unchecked); ``(z(t), NFE)``."""
        self.reset_nfe()
        if method == "dopri5":
            from torchdiffeq import odeint

            grid = torch.tensor([s, t], dtype=z.dtype, device=z.device)
            z = odeint(lambda tt, zz: self.velocity(tt, zz, c), z, grid, method="dopri5",
                       rtol=rtol, atol=atol)[-1]
            return z, self.nfe
        steps = check_steps(steps)
        h = (t - s) / steps
        for k in range(steps):
            tk = s + k * h
            v = self.velocity(tk, z, c)
            if method == "heun":
                v = 0.5 * (v + self.velocity(tk + h, z + h * v, c))
            z = z + h * v
        return z, self.nfe


def train_teacher(data, condition=None, config: TeacherConfig | None = None, *,
                  weights: Tensor | None = None, init: Teacher | None = None,
                  device: str | torch.device = "cpu", **options) -> Teacher:
    """Train a teacher velocity by flow matching: ``‖b(t, x_t; c) − ∂_t x_t‖²`` over ``t ~ U(0, 1)``,
    ``x_t`` the interpolant between ``x0 ~ N(0, I)`` and data ``x1`` (standardised) under the coupling.

    Arguments
    ---------
    data:
        ``(n, dim)`` samples or a :class:`SampleSet` (e.g. :func:`samples_from_store`).
    condition:
        ``(n,)`` or ``(n, n_cond)`` conditions, one per sample, for a conditional model ``p(x | c)``.
    config:
        A :class:`TeacherConfig`; its fields may also be given as keywords.
    weights:
        ``(n,)`` non-negative sample weights: the target is then the weighted distribution
        (reward tilting by importance weights, :func:`tilt_teacher`).
    init:
        A teacher to continue from (fine-tuning; its standardisation is kept).
    device:
        Where to train.

    Returns
    -------
    Teacher
        In eval mode, with the EMA weights.

    Raises
    ------
    ShapeError
        Bad data (NaN, not 2-D) or conditions (see :func:`as_samples`).
    ConfigError
        Bad options; negative or all-zero weights.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import train_teacher
    >>> teacher = train_teacher(torch.randn(256, 2) + 3.0, steps=200, width=32, depth=2)
    >>> x, nfe = teacher.sample(500, "heun", steps=8, generator=0)
    >>> round(float(x.mean()), 0), nfe
    (3.0, 16)
    """
    config = with_keywords(TeacherConfig, config, options, what="teacher", error=ConfigError)
    samples = as_samples(data, condition)
    if init is not None and (init.dim != samples.dim or init.n_cond != samples.n_cond):
        raise ConfigError(f"init teacher has dim {init.dim} and {init.n_cond} conditions; "
                          f"the data {samples.dim} and {samples.n_cond}")
    p = None
    if weights is not None:
        p = torch.as_tensor(weights, dtype=torch.float64).detach().cpu()
        if p.shape != (len(samples),) or not bool(torch.isfinite(p).all()) or bool((p < 0).any()) \
                or float(p.sum()) <= 0:
            raise ConfigError(f"weights must be ({len(samples)},) finite, non-negative and not all zero")
    model = (init if init is not None else Teacher(samples, config)).to(device)
    model.samples = samples if init is None else model.samples
    model.net.requires_grad_(True)
    g = torch.Generator().manual_seed(config.seed)
    x1_all = model.standardise(samples.x.float().to(device))
    c_all = samples.c.float().to(device) if samples.c is not None else None
    opt = torch.optim.AdamW(model.net.parameters(), lr=config.lr, weight_decay=0.0)
    ema = [q.detach().clone() for q in model.net.parameters()]
    model.train()
    t0 = time.perf_counter()
    for step in range(config.steps):
        lr = config.lr * min(1.0, (step + 1) / max(1, config.steps // 20)) * 0.5 * (
            1 + math.cos(math.pi * step / config.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        if p is None:
            idx = torch.randint(len(samples), (config.batch_size,), generator=g)
        else:
            idx = torch.multinomial(p, config.batch_size, replacement=True, generator=g)
        c = c_all[idx.to(device)] if c_all is not None else None
        loss = model.flow_matching_loss(x1_all[idx.to(device)], c, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.net.parameters(), 1.0)
        opt.step()
        d = min(config.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema, [q.detach() for q in model.net.parameters()], 1 - d)
        if not torch.isfinite(loss):
            raise ConfigError(f"flow-matching loss became non-finite at step {step + 1}; lower lr")
    with torch.no_grad():
        for e, q in zip(ema, model.net.parameters()):
            q.copy_(e)
    model.eval()
    model.net.requires_grad_(False)  # a frozen teacher: distillation builds no graph through it
    model.train_seconds = time.perf_counter() - t0
    model.reset_nfe()
    return model
