"""The generative flow map: a :class:`~flowsim.FlowMap` of a teacher's probability-flow ODE,
wrapped as :class:`GenerativeFlowMap` (sample in 1–4 jumps, encode, decode, look ahead). It is
trained by :func:`~flowsim.generative.distill` (:mod:`flowsim.generative.distillation`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._utils import as_generator
from ..errors import ConfigError
from ..maps.flowmap import FlowMap
from ._checks import check_count, check_states, check_steps, conditions
from .teacher import Teacher

__all__ = ["GenerativeFlowMap"]


class GenerativeFlowMap:
    """A generative model that samples by jumps of a flow map of its teacher's probability-flow ODE.

    ``X(s, t, z; c)`` maps the teacher's standardised states from time ``s`` to ``t``
    (``0`` noise, ``1`` data). Built by :func:`distill`.

    Attributes
    ----------
    teacher:
        The :class:`Teacher` (its ODE is the reference the map was distilled from).
    flowmap:
        The :class:`~flowsim.FlowMap` of :func:`teacher_system` (``teacher``).
    fit_result:
        What :func:`~flowsim.fit` returned (history, validation errors against the teacher's ODE).

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import distill, train_teacher
    >>> gen = distill(train_teacher(torch.randn(128, 2), steps=20, width=16, depth=1),
    ...               width=16, depth=1, steps=10, batch_size=64, backward=True)
    >>> z = gen.encode(torch.zeros(3, 2)); gen.decode(z).shape, gen.flowmap.config.backward
    (torch.Size([3, 2]), True)
    """

    def __init__(self, teacher: Teacher, flowmap: FlowMap, fit_result: Any = None) -> None:
        self.teacher, self.flowmap, self.fit_result = teacher, flowmap, fit_result

    @property
    def dim(self) -> int:
        return self.teacher.dim

    @property
    def n_cond(self) -> int:
        return self.teacher.n_cond

    @property
    def device(self) -> torch.device:
        return self.flowmap.device

    def to(self, device: str | torch.device) -> GenerativeFlowMap:
        """Move the teacher and the map (CPU, CUDA, …); returns ``self``."""
        self.teacher.to(device)
        self.flowmap.to(device)
        return self

    def save(self, path, *, samples: bool = True):
        """Save teacher and map to the folder ``path`` (``teacher/``, ``flowmap/`` and a
        ``config.json`` with both parts' checksums; written whole or not at all). ``samples``:
        keep the teacher's training samples (to distil again). Returns the folder.

        Examples
        --------
        >>> import tempfile, torch
        >>> from flowsim.generative import GenerativeFlowMap, distill, train_teacher
        >>> gen = distill(train_teacher(torch.randn(64, 2), steps=5, width=8, depth=1),
        ...               width=8, depth=1, steps=5, batch_size=32)
        >>> back = GenerativeFlowMap.load(gen.save(tempfile.mkdtemp() + "/gen"))
        >>> bool(torch.equal(back.sample(4, generator=0), gen.sample(4, generator=0)))
        True
        """
        from .io import save_generative

        return save_generative(self, path, samples=samples)

    @classmethod
    def load(cls, path, *, map_location: str | torch.device = "cpu") -> GenerativeFlowMap:
        """A model saved by :meth:`save` (``fit_result`` is not kept; the map's
        ``training_record`` is). Raises :class:`~flowsim.CheckpointError` for a missing folder,
        edited, corrupted or swapped parts, or a folder holding another kind of model."""
        from .io import load_generative

        return load_generative(path, map_location=map_location)

    def _c(self, condition, n: int) -> Tensor:
        te = self.teacher
        return conditions(condition, n, te.n_cond, te.c_low, te.c_high, self.device, self.flowmap.dtype)

    def transport(self, z: Tensor, s: float, t: float, c: Tensor, steps: int = 1) -> Tensor:
        """``steps`` equal jumps of the map from ``s`` to ``t`` in standardised coordinates (unchecked)."""
        grid = torch.linspace(s, t, steps + 1, dtype=torch.float64).tolist()
        n = z.shape[0]
        for a, b in zip(grid[:-1], grid[1:]):
            sa = torch.full((n,), a, dtype=z.dtype, device=z.device)
            z = self.flowmap(sa, torch.full_like(sa, b), z, c)
        return z

    @torch.no_grad()
    def sample(self, n: int, steps: int = 1, condition=None, *,
               generator: torch.Generator | int | None = None) -> Tensor:
        """``n`` samples in ``steps`` jumps from noise (``steps`` network evaluations).

        Arguments
        ---------
        n:
            Number of samples.
        steps:
            Jumps from ``t = 0`` to ``t = 1`` (1, 2, 4, …).
        condition:
            ``(n_cond,)`` (shared) or ``(n, n_cond)`` for a conditional model.
        generator:
            Seed or generator of the noise (drawn on the CPU, so seeds agree across devices).

        Returns
        -------
        Tensor
            ``(n, dim)`` samples in data coordinates, on the model's device.

        Raises
        ------
        ConfigError
            ``steps < 1``; a condition for an unconditional model, or none for a conditional one.
        ShapeError
            A condition of the wrong shape or with NaN.

        Examples
        --------
        >>> import torch
        >>> from flowsim.generative import distill, train_teacher
        >>> teacher = train_teacher(torch.randn(256, 2) + 3.0, steps=100, width=32, depth=2)
        >>> gen = distill(teacher, width=32, depth=2, steps=50, batch_size=128)
        >>> gen.sample(10, steps=2, generator=0).shape
        torch.Size([10, 2])
        """
        n, steps = check_count(n), check_steps(steps)
        c = self._c(condition, n)
        z = torch.randn(n, self.dim, generator=as_generator(generator), dtype=self.flowmap.dtype)
        return self.teacher.unstandardise(self.transport(z.to(self.device), 0.0, 1.0, c, steps))

    @torch.no_grad()
    def encode(self, x: Tensor, steps: int = 1, condition=None) -> Tensor:
        """Data → noise: ``steps`` backward jumps from ``t = 1`` to ``t = 0`` (needs ``backward=True``).

        Raises
        ------
        ConfigError
            The map was not trained for backward jumps; ``steps < 1``; condition mismatch.
        ShapeError
            ``x`` not ``(n, dim)`` or not finite.
        """
        if not self.flowmap.config.backward:
            raise ConfigError("this map was not trained for backward jumps: distill(…, backward=True)")
        x = check_states(x, self.dim)
        steps = check_steps(steps)
        c = self._c(condition, x.shape[0])
        z = self.teacher.standardise(x.to(device=self.device, dtype=self.flowmap.dtype))
        return self.transport(z, 1.0, 0.0, c, steps)

    @torch.no_grad()
    def decode(self, z: Tensor, steps: int = 1, condition=None) -> Tensor:
        """Noise → data: ``steps`` jumps from ``t = 0`` to ``t = 1`` of given noise ``z``."""
        z = check_states(z, self.dim, "z")
        steps = check_steps(steps)
        c = self._c(condition, z.shape[0])
        out = self.transport(z.to(device=self.device, dtype=self.flowmap.dtype), 0.0, 1.0, c, steps)
        return self.teacher.unstandardise(out)

    @torch.no_grad()
    def interpolate(self, x_a: Tensor, x_b: Tensor, n_points: int = 9, steps: int = 1,
                    condition=None) -> Tensor:
        """Samples between ``x_a`` and ``x_b`` (``(dim,)`` each) through noise space: encode both,
        walk the great circle between the codes (spherical interpolation keeps the norm typical of
        ``N(0, I)``), decode. Returns ``(n_points, dim)``, ending at the round trips of ``x_a``, ``x_b``."""
        x = check_states(torch.stack([torch.as_tensor(x_a), torch.as_tensor(x_b)]).to(self.flowmap.dtype),
                         self.dim)
        za, zb = self.encode(x, steps, condition if condition is None else
                             torch.as_tensor(condition).reshape(-1)).unbind(0)
        omega = torch.arccos((za @ zb / (za.norm() * zb.norm())).clamp(-1 + 1e-7, 1 - 1e-7))
        u = torch.linspace(0, 1, check_count(n_points), dtype=za.dtype, device=za.device)[:, None]
        z = (torch.sin((1 - u) * omega) * za + torch.sin(u * omega) * zb) / torch.sin(omega)
        return self.decode(z, steps, condition)

    def lookahead(self, t: float, x_t: Tensor, c: Tensor) -> Tensor:
        """The one-jump prediction ``X(t, 1, x_t; c)`` of the final sample, in data coordinates
        (``x_t`` standardised, unchecked; differentiable in ``x_t``)."""
        tt = torch.full((x_t.shape[0],), float(t), dtype=x_t.dtype, device=x_t.device)
        return self.teacher.unstandardise(self.flowmap(tt, torch.ones_like(tt), x_t, c))
