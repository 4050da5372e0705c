"""A teacher's probability-flow ODE as an :class:`~flowsim.ODESystem`: :func:`teacher_system`."""

from __future__ import annotations

import torch
from torch import Tensor

from ..systems import ODESystem, from_callable
from .teacher import Teacher

__all__ = ["teacher_system"]


def teacher_system(teacher: Teacher, name: str = "pf_ode") -> ODESystem:
    """The probability-flow ODE ``dz/dt = b(t, z; c)`` of ``teacher`` as an ODESystem.

    States are the teacher's standardised coordinates ``z0 … z{dim-1}``; the conditions are the
    parameters ``c0 …`` with priors spanning the training conditions; the initial states are the
    base ``N(0, I)``; ``t ∈ [0, 1]`` (timescale 1, not autonomous). Every tool for ODE systems
    then applies: :class:`~flowsim.FlowMap`, :func:`~flowsim.fit` with the Lagrangian, Eulerian or
    semigroup objectives (the teacher as ``b``), :func:`~flowsim.reference_solve`.

    Arguments
    ---------
    teacher:
        A trained :class:`Teacher`.
    name:
        The system's name.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import teacher_system, train_teacher
    >>> sys = teacher_system(train_teacher(torch.randn(64, 2), steps=5, width=8, depth=1))
    >>> sys.dim, sys.n_params, sys.autonomous, sys.timescale
    (2, 0, False, 1.0)
    """
    dim = teacher.dim
    params, prior = {}, {}
    for i in range(teacher.n_cond):
        lo, hi = float(teacher.c_low[i]), float(teacher.c_high[i])
        if hi <= lo:
            lo, hi = lo - 1e-6 * max(abs(lo), 1.0), hi + 1e-6 * max(abs(hi), 1.0)
        params[f"c{i}"] = 0.5 * (lo + hi)
        prior[f"c{i}"] = (lo, hi)

    def f(t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        return teacher.velocity(t, x, p)

    def noise(n: int, generator: torch.Generator) -> Tensor:
        return torch.randn(n, dim, generator=generator, dtype=torch.float64)

    # check=False: a float32 network's rows differ in the last bits between batch sizes, which
    # the probe for row-mixing functions would refuse; the teacher is batched by construction
    return from_callable(f, check=False, name=name, state_names=[f"z{i}" for i in range(dim)], params=params,
                         prior=prior, initial_box=[(-3.0, 3.0)] * dim, default_x0=[0.0] * dim,
                         sample_initial=noise, timescale=1.0, autonomous=False,
                         description="probability-flow ODE of a flow-matching teacher")
