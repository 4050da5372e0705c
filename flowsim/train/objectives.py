"""Training objectives for flow maps (see DESIGN.md for the formulas).

Every objective is a small callable ``objective(flowmap, batch) -> scalar`` with a ``weight``
and a ``needs`` attribute, a :class:`~flowsim.train.BatchKind`, saying which batch it consumes:
``PAIRS`` (stored pairs with targets), ``SHORT_PAIRS`` (stored pairs one step apart),
``STATES`` (start states and jump times; physics and self-consistency), or ``WINDOWS``
(consecutive stored states). Errors are measured in the map's normalised
coordinates (per-state standardisation), so every state counts equally.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError
from ..maps.flowmap import FlowMap
from .bank import PairBatch, StateBatch, WindowBatch
from .batches import BatchKind

__all__ = [
    "Objective",
    "Diagonal",
    "PairRegression",
    "Lagrangian",
    "Eulerian",
    "Semigroup",
    "Rollout",
    "make_objectives",
]


def _normalised(fm: FlowMap, a: Tensor, b: Tensor) -> Tensor:
    """Difference ``a - b`` in the map's normalised coordinates (log-differences for log states)."""
    tr = fm.state_transform
    return tr.encode(a) - tr.encode(b)


def _rate(fm: FlowMap, dxdt: Tensor, x: Tensor) -> Tensor:
    """A time derivative per unit timescale, in units of each state's spread.

    Log-standardised states use a fixed linear scale (their geometric mean times their
    log-spread) rather than dividing by the state itself, which would let a collapsing map
    (``X → 0``) look consistent."""
    tr = fm.state_transform
    scale = tr.std.to(dxdt.dtype)
    if fm.has_log_states:
        scale = torch.where(tr.log_mask, torch.exp(tr.mean.to(dxdt.dtype)) * scale, scale)
    return dxdt / scale * fm.config.timescale


def _b(fm: FlowMap, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
    return fm.system.vector_field(t, x, p)


def _sq(r: Tensor) -> Tensor:
    return (r * r).sum(dim=-1)


_TINY = 1e-12


def _norm(sq: Tensor) -> Tensor:
    """``√sq``, zero at zero with a finite gradient there (``√(sq + ε²) − ε``)."""
    return torch.sqrt(sq + _TINY * _TINY) - _TINY


def _robust(r: Tensor, delta: float = 10.0) -> Tensor:
    """Pseudo-Huber of the squared residual: ``‖r‖²`` for small residuals, linear in ``‖r‖``
    beyond ``delta`` — the physics targets ``b(X)`` of a still-wrong map can be huge (a
    quadratic field far from the data) and must not blow the gradient up."""
    r = r.clamp(-1e6, 1e6)  # garbage far from the data must not overflow float32
    return 2 * delta**2 * (torch.sqrt(1 + _sq(r) / delta**2) - 1)


@dataclass
class Objective:
    """Base class: ``weight`` multiplies the loss; ``name`` labels it in logs.

    Subclasses set ``needs`` to the :class:`~flowsim.train.BatchKind` they consume
    (``PAIRS``, ``SHORT_PAIRS``, ``STATES``, ``WINDOWS``; the batch class is
    ``needs.batch_type``), and :func:`flowsim.fit` draws it. A ``WINDOWS`` objective also has
    ``length`` and ``stride``. (The strings of earlier versions still work, with a
    :class:`DeprecationWarning`.)

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> from flowsim.train import BatchKind, Objective, PairRegression, Semigroup, make_objectives
    >>> [(o.name, o.weight) for o in make_objectives("pairs+semigroup")]
    [('pairs', 1.0), ('semigroup', 0.5)]
    >>> objs = [PairRegression(), Semigroup(weight=0.05)]  # a list works wherever a preset does
    >>> @dataclass
    ... class LandingMSE(Objective):  # a custom objective: the plain squared landing error
    ...     name: str = "landing_mse"
    ...     needs: BatchKind = BatchKind.PAIRS
    ...     def __call__(self, fm, batch):
    ...         return (fm(batch.s, batch.t, batch.x_s, batch.p) - batch.x_t).pow(2).mean()
    >>> LandingMSE(weight=0.5).needs.batch_type.__name__
    'PairBatch'
    """

    weight: float = 1.0
    name: str = "objective"
    needs: BatchKind = BatchKind.STATES

    def __call__(self, fm: FlowMap, batch) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def parameters(self) -> list[Tensor]:
        """Trainable tensors the objective owns besides the map's (none here): :func:`flowsim.fit`
        optimises, clips, averages (EMA) and checkpoints them with the map, e.g. a teacher velocity
        trained jointly with the map (:func:`flowsim.generative.train_jointly`)."""
        return []


@dataclass
class Diagonal(Objective):
    """Tangent loss ``‖v(t, t, x) − b(t, x)‖²`` on the diagonal ``s = t``.

    ``source="system"`` uses the known vector field; ``source="data"`` uses finite
    differences of stored pairs with the smallest gaps (when ``b`` is unknown).

    Examples
    --------
    >>> from flowsim.train import Diagonal
    >>> Diagonal().needs.name, Diagonal(source="data").needs.name
    ('STATES', 'SHORT_PAIRS')
    """

    source: str = "system"
    name: str = "diagonal"
    needs: BatchKind = BatchKind.STATES

    def __post_init__(self) -> None:
        if self.source not in ("system", "data"):
            raise ConfigError("Diagonal(source=…) must be 'system' or 'data'")
        if self.source == "data":
            self.needs = BatchKind.SHORT_PAIRS

    def __call__(self, fm: FlowMap, batch) -> Tensor:
        if self.source == "system":
            v = fm.velocity(batch.s, batch.x, batch.p, check=False)
            # sg (detach, not no_grad: a user's b may use autograd inside): a trainable b learns
            # from its own objective only (a teacher trained jointly, flowsim.generative)
            target = _b(fm, batch.s, batch.x, batch.p).detach()
            return _robust(_rate(fm, v - target, batch.x)).mean()
        mid = 0.5 * (batch.s + batch.t)
        xm = 0.5 * (batch.x_s + batch.x_t)
        v = fm.velocity(mid, xm, batch.p, check=False)
        fd = (batch.x_t - batch.x_s) / (batch.t - batch.s)[:, None]
        return _sq(_rate(fm, v - fd, xm)).mean()


@dataclass
class PairRegression(Objective):
    """Data loss over stored pairs of all gaps: the landing error ``X(s, t, x_s) − x_t``.

    ``loss="norm"`` (default) averages each pair's error norm ``‖X − x_t‖`` (in normalised
    coordinates); ``loss="squared"`` averages ``‖X − x_t‖²``. Accuracy is judged by the typical
    (median) landing error, and the squared loss spends its effort on the worst pairs instead:
    on Lotka–Volterra at 16,000 steps the norm loss gave 2.8e-4 / 9.9e-4 / 1.9e-3 median error
    at 0.01 / 0.1 / 0.46 T against 7.8e-4 / 2.1e-3 / 3.3e-3 for the squared loss
    (``benchmarks/accuracy.py --ablate loss …``).

    ``jump_weight=None`` (default) weighs all pairs equally: the error of the landing point, which
    is what single-jump accuracy is judged by. ``jump_weight=h0`` divides each pair's error by
    ``(h² + h0²)`` (``√(h² + h0²)`` for the norm loss; ``h`` the gap in timescales), fitting short
    jumps as closely, relative to how far they move, as long ones — at the cost of the long jumps
    (on Lotka–Volterra, 8,000 steps, squared loss: ``h0 = 0.3`` gave 6.9e-4 at 0.01 T but 1.9e-2
    at 1 T; uniform with more long gaps sampled, 1.7e-3 and 9.5e-3).

    Arguments
    ---------
    jump_weight:
        ``None`` or ``h0 > 0`` (see above).
    loss:
        ``"norm"`` or ``"squared"``.

    Raises
    ------
    ConfigError
        An unknown ``loss`` or a non-positive ``jump_weight``.

    Examples
    --------
    >>> from flowsim.train import PairRegression
    >>> PairRegression().needs.name, PairRegression().loss, PairRegression(jump_weight=0.3).jump_weight
    ('PAIRS', 'norm', 0.3)
    """

    jump_weight: float | None = None
    loss: str = "norm"
    name: str = "pairs"
    needs: BatchKind = BatchKind.PAIRS

    def __post_init__(self) -> None:
        if self.loss not in ("norm", "squared"):
            raise ConfigError(f"PairRegression(loss=…) must be 'norm' or 'squared'; got {self.loss!r}")
        if self.jump_weight is not None and not self.jump_weight > 0:
            raise ConfigError(f"jump_weight must be None or positive; got {self.jump_weight!r}")

    def __call__(self, fm: FlowMap, batch: PairBatch) -> Tensor:
        out = fm(batch.s, batch.t, batch.x_s, batch.p)
        err = _sq(_normalised(fm, out, batch.x_t))
        if self.jump_weight is not None:
            h = (batch.t - batch.s) / fm.config.timescale
            err = err * (1.0 + self.jump_weight**2) / (h * h + self.jump_weight**2)
        if self.loss == "norm":
            err = _norm(err)
        return err.mean()


@dataclass
class Lagrangian(Objective):
    """Lagrangian map distillation ``‖∂_t X(s,t,x) − b(t, sg[X(s,t,x)])‖²``.

    ``teacher="system"`` (LMD) uses the known vector field; ``teacher="self"`` (LSD) uses the
    map's own diagonal ``sg[v(t, t, ·)]`` and works without ``b``. ``∂_t X`` is one
    forward-mode JVP in the scalar ``t``.

    Examples
    --------
    >>> from flowsim.train import Lagrangian
    >>> Lagrangian().teacher, Lagrangian(teacher="self").teacher
    ('system', 'self')
    """

    teacher: str = "system"
    name: str = "lagrangian"
    needs: BatchKind = BatchKind.STATES

    def __post_init__(self) -> None:
        if self.teacher not in ("system", "self"):
            raise ConfigError("Lagrangian(teacher=…) must be 'system' or 'self'")
        if self.name == "lagrangian" and self.teacher == "self":
            self.name = "lsd"

    def __call__(self, fm: FlowMap, batch: StateBatch) -> Tensor:
        s, t, x, p = batch.s, batch.t, batch.x, batch.p
        out, dxdt = torch.func.jvp(lambda tt: fm(s, tt, x, p), (t,), (torch.ones_like(t),))
        xo = out.detach()
        if self.teacher == "system":
            target = _b(fm, t, xo, p).detach()  # sg, as in Diagonal
        else:
            with torch.no_grad():
                target = fm.velocity(t, xo, p, check=False)
        return _robust(_rate(fm, dxdt - target, xo)).mean()


@dataclass
class Eulerian(Objective):
    """Eulerian distillation ``‖∂_s X(s,t,x) + ∇_x X(s,t,x)·b(s,x)‖²`` (one JVP in ``(s, x)``).

    Can help on small systems; unstable at high dimension.

    Examples
    --------
    >>> from flowsim.train import Eulerian
    >>> Eulerian(weight=0.5).needs.name
    'STATES'
    """

    name: str = "eulerian"
    needs: BatchKind = BatchKind.STATES

    def __call__(self, fm: FlowMap, batch: StateBatch) -> Tensor:
        s, t, x, p = batch.s, batch.t, batch.x, batch.p
        b = _b(fm, s, x, p).detach()
        out, d = torch.func.jvp(lambda ss, xx: fm(ss, t, xx, p), (s, x), (torch.ones_like(s), b))
        return _robust(_rate(fm, d, out.detach())).mean()


@dataclass
class Semigroup(Objective):
    """Progressive self-distillation ``‖X(s,t,x) − sg[X(u,t,X(s,u,x))]‖²`` with ``s<u<t``.

    Examples
    --------
    >>> from flowsim.train import Semigroup
    >>> Semigroup(weight=0.1).needs.name
    'STATES'
    """

    name: str = "semigroup"
    needs: BatchKind = BatchKind.STATES

    def __call__(self, fm: FlowMap, batch: StateBatch) -> Tensor:
        s, t, x, p = batch.s, batch.t, batch.x, batch.p
        r = torch.rand(s.shape, generator=None, dtype=s.dtype, device=s.device) * 0.8 + 0.1
        u = s + r * (t - s)
        with torch.no_grad():
            target = fm(u, t, fm(s, u, x, p), p)
        out = fm(s, t, x, p)
        h = (t - s) / fm.config.timescale
        return (_sq(_normalised(fm, out, target)) / (h * h + 1e-2)).mean()


@dataclass
class Rollout(Objective):
    """Error of composed jumps along stored windows (mean over steps + ``max_weight`` × max).

    Examples
    --------
    >>> from flowsim.train import Rollout
    >>> Rollout(length=8, stride=2).needs.name
    'WINDOWS'
    """

    length: int = 5
    stride: int = 1
    max_weight: float = 0.0
    name: str = "rollout"
    needs: BatchKind = BatchKind.WINDOWS

    def __call__(self, fm: FlowMap, batch: WindowBatch) -> Tensor:
        x = batch.x[:, 0]
        errs = []
        for k in range(1, batch.x.shape[1]):
            x = fm(batch.t[:, k - 1], batch.t[:, k], x, batch.p)
            errs.append(_sq(_normalised(fm, x, batch.x[:, k])))
        e = torch.stack(errs, dim=1)
        return e.mean() + self.max_weight * e.amax(dim=1).mean()


_NAMES = {
    "pairs": lambda: [PairRegression()],
    "data": lambda: [PairRegression()],
    "physics": lambda: [Lagrangian(teacher="system")],
    "lmd": lambda: [Lagrangian(teacher="system")],
    "lsd": lambda: [PairRegression(weight=1.0), Lagrangian(teacher="self", weight=0.01)],
    "self": lambda: [PairRegression(weight=1.0), Lagrangian(teacher="self", weight=0.01)],
    # the physics term is noisier and larger than the data term: a small weight balances them
    "both": lambda: [PairRegression(), Lagrangian(teacher="system", weight=0.01)],
    "eulerian": lambda: [Eulerian()],
    "semigroup": lambda: [PairRegression(), Semigroup(weight=0.5)],
    "rollout": lambda: [PairRegression(), Rollout(weight=0.2)],
}


def make_objectives(spec: str | list[Objective]) -> list[Objective]:
    """Objectives from a preset name or a list.

    Presets: ``"pairs"``/``"data"`` (pair regression), ``"physics"``/``"lmd"`` (Lagrangian with
    known ``b``), ``"both"`` (pairs + LMD), ``"lsd"``/``"self"`` (pairs + self-distillation),
    ``"eulerian"``, ``"semigroup"``, ``"rollout"``; join with ``+`` (``"pairs+semigroup"``).

    Arguments
    ---------
    spec:
        A preset name (or several joined with ``+``), or a list of :class:`Objective`.

    Returns
    -------
    list of Objective
        Fresh objective objects, duplicates removed.

    Raises
    ------
    ConfigError
        Unknown preset names, or an empty or mixed list.

    Examples
    --------
    >>> from flowsim.train import make_objectives
    >>> [o.name for o in make_objectives("both")]
    ['pairs', 'lagrangian']
    """
    if isinstance(spec, str):
        out: list[Objective] = []
        for part in spec.split("+"):
            key = part.strip().lower()
            if key not in _NAMES:
                raise ConfigError(f"unknown objective {part!r}; presets: {sorted(_NAMES)}")
            for obj in _NAMES[key]():
                if obj.name not in [o.name for o in out]:
                    out.append(obj)
        return out
    if not spec or not all(isinstance(o, Objective) for o in spec):
        raise ConfigError("objectives must be a preset name or a non-empty list of Objective")
    return list(spec)
