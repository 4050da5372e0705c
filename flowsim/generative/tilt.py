"""Reward tilting: sample ``p(x) exp(r(x)/λ) / Z`` by look-ahead guidance through the flow map's
one-jump prediction ``X(t, 1, x_t)``, or by fine-tuning teacher and map on importance weights."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor

from .._utils import as_generator
from ..errors import ConfigError
from ._checks import check_count, check_steps
from .distillation import distill
from .flowmap import GenerativeFlowMap
from .teacher import train_teacher

__all__ = ["tilt_weights", "guided_sample", "tilt_finetune"]


def _lam(lam) -> float:
    if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not (lam > 0 and math.isfinite(lam)):
        raise ConfigError(f"the temperature λ must be a positive number; got {lam!r}")
    return float(lam)


def _reward(reward: Callable[[Tensor], Tensor], x: Tensor, grad: bool) -> Tensor:
    """``r(x)`` checked: ``(n,)``, finite, and (with ``grad``) differentiable in ``x``."""
    if not callable(reward):
        raise ConfigError(f"reward must be a callable r(x) -> (n,) tensor; got {type(reward).__name__}")
    r = reward(x)
    if not isinstance(r, Tensor) or r.shape != (x.shape[0],):
        raise ConfigError(f"reward must return a ({x.shape[0]},) tensor, one value per sample; got "
                          f"{tuple(r.shape) if isinstance(r, Tensor) else type(r).__name__}")
    if not bool(torch.isfinite(r).all()):
        raise ConfigError("reward returned NaN or inf; it must be finite where samples lie")
    if grad and not r.requires_grad:
        raise ConfigError("reward carries no gradient: write it with differentiable torch operations "
                          "(no .detach(), .item() or numpy)")
    return r


def tilt_weights(x: Tensor, reward: Callable[[Tensor], Tensor], lam: float = 1.0) -> Tensor:
    """Self-normalised importance weights ``∝ exp(r(x)/λ)`` of samples ``x`` of ``p`` for the
    tilted law ``p exp(r/λ)/Z`` (sum to 1).

    Arguments
    ---------
    x:
        ``(n, dim)`` samples.
    reward:
        ``r(x) -> (n,)``.
    lam:
        Temperature ``λ > 0``.

    Raises
    ------
    ConfigError
        ``λ <= 0``; a reward that is not ``(n,)`` or not finite.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import tilt_weights
    >>> w = tilt_weights(torch.tensor([[0.0], [1.0]]), lambda x: x[:, 0], lam=1.0)
    >>> round(float(w[1] / w[0]), 4)
    2.7183
    """
    lam = _lam(lam)
    with torch.no_grad():
        r = _reward(reward, x, grad=False).double()
    return torch.softmax(r / lam, dim=0)


def guided_sample(gen: GenerativeFlowMap, n: int, reward: Callable[[Tensor], Tensor], lam: float = 1.0,
                  steps: int = 8, condition=None, *,
                  generator: torch.Generator | int | None = None) -> Tensor:
    """Tilted samples by look-ahead guidance: ``steps`` jumps of the map from noise, each followed
    by a step along ``∇ r`` evaluated at the map's prediction of the final sample ``X(t, 1, x_t)``.

    For ``x_t = α x0 + β x1`` the tilted velocity is ``b + (β' − α'β/α) Cov[x1 | x_t] ∇r / λ``
    to first order in the reward (exact for a linear reward and Gaussian data); ``Cov[x1 | x_t]``
    is taken as ``α² / (α² + β²)`` (unit-variance standardised data), and ``∇r`` at the look-ahead.

    Arguments
    ---------
    gen:
        The :class:`GenerativeFlowMap`.
    n:
        Number of samples.
    reward:
        Differentiable ``r(x) -> (n,)`` on data coordinates.
    lam:
        Temperature ``λ > 0`` (smaller: stronger tilt).
    steps:
        Jumps (each: one map jump, one look-ahead and its gradient).

    Raises
    ------
    ConfigError
        ``λ <= 0``, ``steps < 1``, a reward that is NaN, of the wrong shape or without gradient.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import distill, guided_sample, train_teacher
    >>> gen = distill(train_teacher(torch.randn(256, 1), steps=100, width=16, depth=1),
    ...               width=16, depth=1, steps=20, batch_size=64)
    >>> guided_sample(gen, 8, lambda x: x[:, 0], lam=1.0, steps=2, generator=0).shape
    torch.Size([8, 1])
    """
    n, steps, lam = check_count(n), check_steps(steps), _lam(lam)
    te, fm = gen.teacher, gen.flowmap
    c = gen._c(condition, n)
    it = te.interpolant
    z = torch.randn(n, gen.dim, generator=as_generator(generator), dtype=fm.dtype).to(gen.device)
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64).tolist()
    for a, b in zip(grid[:-1], grid[1:]):
        ta = torch.full((n,), a, dtype=z.dtype, device=z.device)
        zg = z.detach().requires_grad_(True)
        with torch.enable_grad():
            x1 = te.unstandardise(fm(ta, torch.ones_like(ta), zg, c))
            r = _reward(reward, x1, grad=True)
            (grad,) = torch.autograd.grad(r.sum(), x1)
        with torch.no_grad():
            al, be, dal, dbe = (f(ta[:1]).item() for f in (it.alpha, it.beta, it.dalpha, it.dbeta))
            gain = (dbe - dal * be / al) * al * al / (al * al + be * be)
            g_z = grad * te.x_std.to(z.dtype)  # ∇ in the standardised coordinates
            z = fm(ta, torch.full_like(ta, b), z, c) + (b - a) * gain * g_z / lam
    return te.unstandardise(z.detach())


def tilt_finetune(gen: GenerativeFlowMap, reward: Callable[[Tensor], Tensor], lam: float = 1.0, *,
                  teacher_steps: int = 1000, map_steps: int = 800, seed: int = 0) -> GenerativeFlowMap:
    """A new model of the tilted law ``p exp(r/λ)/Z``: the teacher fine-tuned by flow matching on
    its data re-weighted by :func:`tilt_weights` (exact in the limit of many samples), then the
    map re-distilled from it, starting from the current map's weights.

    Arguments
    ---------
    gen:
        The :class:`GenerativeFlowMap` to tilt (its teacher must hold its training samples).
    reward:
        ``r(x)``: ``(n, dim) -> (n,)``.
    lam:
        The temperature ``λ`` (> 0): smaller tilts harder.
    teacher_steps, map_steps:
        Fine-tuning steps of the teacher and of the re-distilled map.
    seed:
        Seed of both.

    Returns
    -------
    GenerativeFlowMap
        A new model of the tilted law; ``gen`` is unchanged.

    Raises
    ------
    ConfigError
        As :func:`tilt_weights`; a teacher without its training samples.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import distill, tilt_finetune, train_teacher
    >>> gen = distill(train_teacher(torch.randn(256, 1), steps=50, width=16, depth=1),
    ...               width=16, depth=1, steps=10, batch_size=64)
    >>> tilt_finetune(gen, lambda x: x[:, 0], teacher_steps=20, map_steps=10).dim
    1
    """
    te = gen.teacher
    if te.samples is None:
        raise ConfigError("the teacher holds no training samples to re-weight")
    w = tilt_weights(te.samples.x, reward, lam)
    cfg = te.config
    tcfg = dataclasses.replace(cfg, steps=teacher_steps, lr=cfg.lr * 0.5, seed=seed)
    new_te = train_teacher(te.samples, None if te.samples.c is None else te.samples.c, tcfg,
                           weights=w * len(w), init=copy.deepcopy(te))
    old = gen.flowmap
    out = distill(new_te, width=old.config.width, depth=old.config.depth, backbone=old.config.backbone,
                  backward=old.config.backward,
                  steps=map_steps, batch_size=512, lr=1e-3, seed=seed, init=old)
    return out
