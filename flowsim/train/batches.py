"""What objectives consume: :class:`BatchKind`, and :class:`BatchSampler`, which draws each kind."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import ConfigError, ShapeError
from ..maps.flowmap import FlowMap
from .bank import PairBatch, StateBatch, TrajectoryBank, WindowBatch

if TYPE_CHECKING:  # pragma: no cover
    from .objectives import Objective

__all__ = ["BatchKind", "BatchSampler", "batch_kind", "check_needs"]


class BatchKind(Enum):
    """The kind of batch an objective consumes (its ``needs``), and the batch class it gets.

    ``PAIRS``: stored pairs of all gaps with their targets (:class:`PairBatch`);
    ``SHORT_PAIRS``: stored pairs one shortest step apart (finite differences, a
    :class:`PairBatch`); ``STATES``: start states and jump times without targets (physics and
    self-consistency, a :class:`StateBatch`); ``WINDOWS``: runs of consecutive stored states (a
    :class:`WindowBatch`, of the objective's ``length`` and ``stride``).

    Examples
    --------
    >>> from flowsim.train import BatchKind
    >>> BatchKind.PAIRS.batch_type.__name__, BatchKind.STATES.needs_data
    ('PairBatch', False)
    """

    PAIRS = "pairs"
    SHORT_PAIRS = "short_pairs"
    STATES = "states"
    WINDOWS = "windows"

    @property
    def batch_type(self) -> type:
        """The batch class an objective of this kind is called with."""
        return {"pairs": PairBatch, "short_pairs": PairBatch, "states": StateBatch,
                "windows": WindowBatch}[self.value]

    @property
    def needs_data(self) -> bool:
        """Whether this kind is drawn from stored trajectories (``STATES`` also comes from the
        system's prior and the map itself)."""
        return self is not BatchKind.STATES


def batch_kind(objective: Objective) -> BatchKind:
    """The :class:`BatchKind` ``objective`` declares in ``needs``.

    The strings of earlier versions (``"pairs"``, ``"short_pairs"``, ``"states"``,
    ``"windows"``) are accepted with a :class:`DeprecationWarning`.

    Arguments
    ---------
    objective:
        An :class:`~flowsim.train.Objective`.

    Raises
    ------
    ConfigError
        ``needs`` is neither a BatchKind nor one of those strings.

    Examples
    --------
    >>> from flowsim.train import PairRegression, batch_kind
    >>> batch_kind(PairRegression())
    <BatchKind.PAIRS: 'pairs'>
    """
    needs = getattr(objective, "needs", None)
    if isinstance(needs, BatchKind):
        return needs
    if isinstance(needs, str) and needs in {k.value for k in BatchKind}:
        warnings.warn(f"{type(objective).__name__}.needs = {needs!r}: declare the batch kind as "
                      f"flowsim.train.BatchKind.{BatchKind(needs).name} (strings are deprecated)",
                      DeprecationWarning, stacklevel=3)
        return BatchKind(needs)
    raise ConfigError(f"objective {getattr(objective, 'name', objective)!r} declares needs={needs!r}; "
                      f"it must be a flowsim.train.BatchKind: {[k.name for k in BatchKind]}")


def check_needs(objectives: list[Objective], has_data: bool) -> list[BatchKind]:
    """The batch kinds ``objectives`` need; a :class:`ConfigError` if one needs stored
    trajectories and there are none (``has_data`` false).

    Arguments
    ---------
    objectives:
        The objectives of a run.
    has_data:
        Whether the run has stored trajectories.

    Returns
    -------
    list of BatchKind
        One per objective.

    Examples
    --------
    >>> import flowsim
    >>> from flowsim.train import Lagrangian, PairRegression, check_needs
    >>> check_needs([Lagrangian()], has_data=False)
    [<BatchKind.STATES: 'states'>]
    >>> try:
    ...     check_needs([PairRegression()], has_data=False)
    ... except flowsim.ConfigError as err:
    ...     print(str(err)[:60])
    objectives ['pairs'] need trajectory data (batches of kind P
    """
    kinds = [batch_kind(o) for o in objectives]
    if not has_data:
        short = [(o.name, k.name) for o, k in zip(objectives, kinds) if k.needs_data]
        if short:
            raise ConfigError(
                f"objectives {[n for n, _ in short]} need trajectory data (batches of kind "
                f"{', '.join(sorted({k for _, k in short}))}); pass data=… (a store, Solution or "
                "TrajectoryBank) or use objectives='physics'")
    return kinds


class BatchSampler:
    """Draws the batches objectives need, from data, the system's prior and the map itself.

    Arguments
    ---------
    flowmap:
        The map in training (physics states follow some of its own jumps).
    bank:
        Stored training trajectories, or ``None`` (``STATES`` only, from the system's prior).
    batch_size:
        States per batch.
    min_jump, max_jump:
        Range of gaps drawn (``max_jump``: the longest trained gap).
    diagonal_fraction, log_fraction, early_fraction, initial_fraction:
        As in :class:`~flowsim.train.FitConfig`.
    generator:
        The random stream every draw takes from.
    stream:
        An iterable of pair dicts (:class:`~flowsim.data.PairSampler`) to draw ``PAIRS`` from
        instead of ``bank``, or ``None``.
    states:
        A state source that replaces the default ``STATES`` draw (see :func:`flowsim.fit`):
        ``states(n, generator)`` returning ``(s, x, p)`` (jump times ``t`` are then drawn as
        usual), ``(s, t, x, p)`` or a ``flowsim.train.bank.StateBatch``; or ``None``.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.train import BatchKind, BatchSampler
    >>> sys = flowsim.get_system("lotka_volterra")
    >>> fm = flowsim.FlowMap(sys, width=8, depth=1)
    >>> sampler = BatchSampler(fm, None, 16, 0.01, 1.0, generator=torch.Generator().manual_seed(0))
    >>> sampler.draw(BatchKind.STATES).x.shape
    torch.Size([16, 2])
    """

    def __init__(self, flowmap: FlowMap, bank: TrajectoryBank | None, batch_size: int,
                 min_jump: float, max_jump: float, *, diagonal_fraction: float = 0.25,
                 log_fraction: float = 0.2, early_fraction: float = 0.0, initial_fraction: float = 0.0,
                 generator: torch.Generator, stream: Any = None,
                 states: Callable[[int, torch.Generator], Any] | None = None) -> None:
        self.fm, self.bank, self.n = flowmap, bank, batch_size
        self.lo, self.hi = min_jump, max_jump
        self.diag, self.log_fraction, self.early_fraction = diagonal_fraction, log_fraction, early_fraction
        self.initial_fraction = initial_fraction
        self.g = generator
        self.stream, self._it = stream, None
        self.source = states
        self.states_hi = max_jump
        self._draw: dict[BatchKind, Callable[..., Any]] = {
            BatchKind.PAIRS: self.pairs, BatchKind.SHORT_PAIRS: self.short_pairs,
            BatchKind.STATES: self.states, BatchKind.WINDOWS: self.windows,
        }

    def set_states_max_jump(self, max_jump: float) -> None:
        """Cap the jumps of ``STATES`` batches (the physics curriculum from short to long)."""
        self.states_hi = max_jump

    def draw(self, kind: BatchKind, objective: Objective | None = None):
        """A batch of ``kind`` (``WINDOWS`` takes its ``length`` and ``stride`` from ``objective``)."""
        if kind is BatchKind.WINDOWS:
            return self._draw[kind](objective)
        return self._draw[kind]()

    def _cast(self, *xs: Tensor) -> list[Tensor]:
        return [x.to(device=self.fm.device, dtype=self.fm.dtype) for x in xs]

    def _jumps(self, n: int) -> Tensor:
        hi = self.states_hi
        u = torch.rand(n, generator=self.g, dtype=torch.float64)
        h = torch.exp(math.log(self.lo) + u * math.log(hi / self.lo))
        diag = torch.rand(n, generator=self.g) < self.diag
        return torch.where(diag, torch.zeros_like(h), h)

    def _next_streamed(self) -> PairBatch:
        for _ in range(2):
            if self._it is None:
                self._it = iter(self.stream)
            try:
                d = next(self._it)
                return PairBatch(*self._cast(d["s"], d["t"], d["x_s"], d["x_t"], d["p"]))
            except StopIteration:  # next epoch
                self.stream.set_epoch(self.stream.epoch + 1)
                self._it = None
        raise ConfigError("the store's training split yields no pairs; is it empty?")

    def pairs(self) -> PairBatch:
        """Stored pairs of all gaps in ``[min_jump, max_jump]``."""
        if self.stream is not None:
            return self._next_streamed()
        b = self.bank.sample_pairs(self.n, self.g, min_gap=self.lo, max_gap=self.hi,
                                   log_fraction=self.log_fraction, early_fraction=self.early_fraction,
                                   initial_fraction=self.initial_fraction)
        return PairBatch(*self._cast(b.s, b.t, b.x_s, b.x_t, b.p))

    def short_pairs(self) -> PairBatch:
        """Stored pairs one shortest stored step apart."""
        gap = self.bank.min_step
        b = self.bank.sample_pairs(self.n, self.g, min_gap=gap, max_gap=gap)
        return PairBatch(*self._cast(b.s, b.t, b.x_s, b.x_t, b.p))

    def windows(self, objective: Objective) -> WindowBatch:
        """Windows of ``objective.length`` stored states, ``objective.stride`` steps apart."""
        w = self.bank.sample_windows(self.n, objective.length, self.g, objective.stride)
        return WindowBatch(*self._cast(w.t, w.x, w.p))

    def states(self) -> StateBatch:
        """Half prior, half stored states; a quarter moved by the map's own (detached) jumps
        (or the state source's draw, when there is one)."""
        if self.source is not None:
            return self._sourced()
        sys_ = self.fm.system
        n = self.n
        n_data = n // 2 if self.bank is not None else 0
        n_prior = n - n_data
        x = sys_.sample_initial(n_prior, self.g)
        p = self.fm.sample_params(n_prior, self.g)
        s = torch.zeros(n_prior, dtype=torch.float64)
        if not sys_.autonomous:
            s = torch.rand(n_prior, generator=self.g, dtype=torch.float64) * self.hi
        if n_data:
            sd, xd, pd = self.bank.sample_states(n_data, self.g)
            s, x, p = torch.cat([s, sd]), torch.cat([x, xd]), torch.cat([p, pd])
        s, x, p = self._cast(s, x, p)
        k = n // 4
        if k:
            with torch.no_grad():
                hop = self._cast(self._jumps(k).clamp_min(self.lo))[0]
                moved = self.fm(s[:k], s[:k] + hop, x[:k], p[:k])
            # keep only jumps that land where states live (within 6 σ of the data/prior)
            z = self.fm.state_transform.encode(moved)
            ok = torch.isfinite(moved).all(dim=1) & (z.abs() < 6).all(dim=1)
            x = torch.cat([torch.where(ok[:, None], moved, x[:k]), x[k:]])
            s = torch.cat([torch.where(ok, s[:k] + hop, s[:k]), s[k:]])
        t = s + self._cast(self._jumps(n))[0]
        return StateBatch(s=s, t=t, x=x, p=p)

    def _sourced(self) -> StateBatch:
        """A ``STATES`` batch from the state source: ``(s, x, p)``, ``(s, t, x, p)`` or a StateBatch."""
        n = self.n
        out = self.source(n, self.g)
        if isinstance(out, StateBatch):
            out = (out.s, out.t, out.x, out.p)
        if not isinstance(out, (tuple, list)) or len(out) not in (3, 4):
            raise ConfigError("a state source must return (s, x, p), (s, t, x, p) or a StateBatch; "
                              f"got {type(out).__name__}")
        if len(out) == 3:
            s, x, p = out
            t = torch.as_tensor(s, dtype=torch.float64) + self._jumps(len(s))
        else:
            s, t, x, p = out
        s, t, x, p = (torch.as_tensor(v) for v in (s, t, x, p))
        m, dim, n_p = x.shape[0] if x.ndim == 2 else -1, self.fm.config.dim, self.fm.system.n_params
        if x.ndim != 2 or x.shape[1] != dim or s.shape != (m,) or t.shape != (m,) or p.shape != (m, n_p):
            raise ShapeError(f"the state source returned s {tuple(s.shape)}, t {tuple(t.shape)}, "
                             f"x {tuple(x.shape)}, p {tuple(p.shape)}; expected (n,), (n,), "
                             f"(n, {dim}), (n, {n_p})")
        s, t, x, p = self._cast(s, t, x, p)
        return StateBatch(s=s, t=t, x=x, p=p)
