"""The one implementation of how training samples are drawn from stored trajectories.

Both data paths draw through this module: the in-memory
:class:`~flowsim.train.TrajectoryBank` (whole ensembles held as tensors) and the streamed
:class:`~flowsim.data.PairSampler` / :class:`~flowsim.data.WindowSampler` (a few chunks of a
store at a time). Given the same trajectories and the same :class:`PairOptions`, the two give
the same distribution of gaps, start times and early starts.

* :class:`PairOptions` — the sampling options of a pair (jump) draw, their defaults and their
  validation.
* :class:`TimeGrid` — the stored times of some trajectories: one shared grid, or one per
  trajectory (``t(trajectory, time)``, shorter ones padded at the end).
* :func:`draw_pairs`, :func:`draw_windows`, :func:`draw_states`, :class:`PairTable` — indices
  ``(row, time index)`` drawn from a :class:`TimeGrid` with a ``torch.Generator``.

How a pair is drawn (:func:`draw_pairs`)
    1. The gap: log-uniform in ``[lo, hi]`` (as many short jumps per scale as long ones) for a
       fraction ``log_fraction`` of the pairs, uniform in ``[lo, hi]`` for the rest;
       ``lo = max(min_gap, smallest stored step)``, ``hi = min(max_gap, longest span)``.
    2. The trajectory: uniform among those at least ``lo`` long.
    3. The start: uniform over the stored times ``s`` that leave room for the gap
       (``s + gap <= last time``); a fraction ``early_fraction`` instead log-uniform in the
       stored index (as many starts near the first stored state as over the rest), so that
       jumps from the initial states, and the transients after them, are trained too; and a
       fraction ``initial_fraction`` exactly at the first stored state (the initial state).
    4. The end: the first stored time at or after ``s + gap`` (the gap is *snapped up* to the
       stored grid; never past the last stored time, at least one step). A pair's gap is therefore
       at least ``min_gap`` and may exceed ``max_gap`` by less than one stored step; a ``max_gap``
       below the smallest stored step gives one-step pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["PairOptions", "TimeGrid", "PairTable", "draw_pairs", "draw_states", "draw_windows"]


def _fraction(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class PairOptions:
    """Options of a pair draw, validated once (the single source of their defaults).

    Arguments
    ---------
    min_gap, max_gap:
        Limits on the jump ``t - s`` in time units (default: from the smallest stored step to
        the longest stored span). Gaps are snapped up to the stored grid, so a pair may exceed
        ``max_gap`` by less than one stored step (a ``max_gap`` below the smallest stored step
        gives one-step pairs); a ``min_gap`` longer than every trajectory is refused.
    log_fraction:
        Fraction of gaps drawn log-uniformly (all scales); the rest are uniform in
        ``[min_gap, max_gap]`` (more long jumps). Default 1.0: all log-uniform.
    early_fraction:
        Fraction of starts drawn log-uniformly in the stored index (as many near each
        trajectory's first stored state as over the rest) instead of uniformly. Default 0.0: a
        plain uniform start — what validation and diagnostics need; training recipes such as
        :func:`flowsim.fit` pass their own value.
    initial_fraction:
        Fraction of starts exactly at each trajectory's first stored state, whatever the other
        draws gave: the jumps a user of an initial-value problem makes. Default 0.0.

    Raises
    ------
    ConfigError
        A limit that is negative, not finite or zero (``max_gap``), ``min_gap > max_gap``, or a
        fraction outside ``[0, 1]``.

    Examples
    --------
    >>> from flowsim.data import PairOptions
    >>> PairOptions(max_gap=2.0, early_fraction=0.25)
    PairOptions(min_gap=None, max_gap=2.0, log_fraction=1.0, early_fraction=0.25, initial_fraction=0.0)
    >>> PairOptions(log_fraction=1.5)
    Traceback (most recent call last):
    ...
    flowsim.errors.ConfigError: log_fraction must be a number in [0, 1], got 1.5
    """

    min_gap: float | None = None
    max_gap: float | None = None
    log_fraction: float = 1.0
    early_fraction: float = 0.0
    initial_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("min_gap", "max_gap"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name} must be a finite non-negative number of time units, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.max_gap == 0:
            raise ConfigError("max_gap must be positive (a zero jump is the identity)")
        if self.min_gap is not None and self.max_gap is not None and self.min_gap > self.max_gap:
            raise ConfigError(f"min_gap={self.min_gap} exceeds max_gap={self.max_gap}")
        object.__setattr__(self, "log_fraction", _fraction(self.log_fraction, "log_fraction"))
        object.__setattr__(self, "early_fraction", _fraction(self.early_fraction, "early_fraction"))
        object.__setattr__(self, "initial_fraction", _fraction(self.initial_fraction, "initial_fraction"))


class TimeGrid:
    """Stored times of ``n_rows`` trajectories, increasing along each row.

    Arguments
    ---------
    tau:
        ``(time,)`` one grid shared by all rows, or ``(n_rows, time)`` one per row; a row may end
        in ``+inf`` padding (a shorter trajectory).
    n_rows:
        Number of trajectories (needed for a shared grid).
    n_valid:
        ``(n_rows,)`` stored times per row (default: counted from the finite entries of ``tau``).

    Examples
    --------
    >>> import torch
    >>> grid = TimeGrid(torch.linspace(0, 1, 5), n_rows=3)
    >>> grid.shared, grid.min_step, grid.max_span
    (True, 0.25, 1.0)
    """

    def __init__(self, tau: Tensor, n_rows: int, n_valid: Tensor | None = None) -> None:
        self.tau = torch.as_tensor(tau, dtype=torch.float64).contiguous()
        self.n_rows = int(n_rows)
        if n_valid is None:
            n_valid = (torch.isfinite(self.tau).sum(dim=-1) * torch.ones(self.n_rows, dtype=torch.int64))
        self.n_valid = torch.as_tensor(n_valid, dtype=torch.int64)
        self.full = bool((self.n_valid == self.tau.shape[-1]).all())
        rows = self.tau[None] if self.shared else self.tau
        last = self.n_valid[:1] if self.shared else self.n_valid
        self.last = rows.gather(1, (last - 1).clamp(min=0)[:, None])[:, 0].expand(self.n_rows)
        self.span = self.last - rows[:, 0]
        d = rows.diff(dim=1)
        d = d[torch.isfinite(d) & (d > 0)]
        self.min_step = float(d.min()) if d.numel() else 0.0
        self.max_span = float(self.span.max()) if self.n_rows else 0.0

    @property
    def shared(self) -> bool:
        return self.tau.ndim == 1

    def gap_range(self, options: PairOptions) -> tuple[float, float]:
        """``(lo, hi)`` of the drawn gaps: ``lo = max(min_gap, min_step)``, ``hi = min(max_gap,
        max_span)``. A ``max_gap`` below the smallest stored step gives ``hi < lo``: gaps between
        the two, snapped up to one stored step (the shortest pairs there are).

        Raises
        ------
        ConfigError
            ``min_gap`` longer than every trajectory, or fewer than two stored times.
        """
        lo = max(options.min_gap or self.min_step, self.min_step)
        hi = min(options.max_gap or self.max_span, self.max_span)
        if not 0 < lo <= self.max_span:
            raise ConfigError(f"no two stored times are between min_gap={options.min_gap} and "
                              f"max_gap={options.max_gap} apart (stored steps from {self.min_step:g}, "
                              f"spans up to {self.max_span:g})")
        return lo, hi


def _rand(n: int, g: torch.Generator) -> Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64)


def _rows(grid: TimeGrid, n: int, g: torch.Generator, ok: Tensor | None) -> Tensor:
    """``n`` rows uniform over those where ``ok`` (all rows if None: ``randint``)."""
    if ok is None or bool(ok.all()):
        return torch.randint(0, grid.n_rows, (n,), generator=g)
    eligible = torch.nonzero(ok)[:, 0]
    if eligible.numel() == 0:
        raise ConfigError("no stored trajectory is long enough for these gaps or windows")
    return eligible[torch.randint(0, eligible.numel(), (n,), generator=g)]


def draw_pairs(grid: TimeGrid, n: int, generator: torch.Generator,
               options: PairOptions = PairOptions()) -> tuple[Tensor, Tensor, Tensor]:
    """Draw ``n`` pairs ``(row, i, j)`` of stored time indices, ``i < j``, as the module explains.

    Arguments
    ---------
    grid:
        The stored times of the trajectories to draw from.
    n:
        Number of pairs.
    generator:
        The source of randomness (the same seed gives the same pairs).
    options:
        Gap limits and distributions, start distribution.

    Returns
    -------
    tuple of Tensor
        ``row``, ``i``, ``j``: ``(n,)`` int64 — trajectory, start index and end index.

    Raises
    ------
    ConfigError
        ``min_gap`` longer than every trajectory.

    Examples
    --------
    >>> import torch
    >>> grid = TimeGrid(torch.linspace(0, 10, 21), n_rows=4)
    >>> row, i, j = draw_pairs(grid, 1000, torch.Generator().manual_seed(0),
    ...                        PairOptions(min_gap=1.0, max_gap=4.0, early_fraction=0.25))
    >>> gap = grid.tau[j] - grid.tau[i]
    >>> bool((gap >= 1.0).all() and (gap <= 4.0).all() and (row < 4).all())
    True
    """
    lo, hi = grid.gap_range(options)
    u = _rand(n, generator)
    log_gap = torch.exp(math.log(lo) + u * math.log(hi / lo))
    lin = _rand(n, generator) >= options.log_fraction
    gap = torch.where(lin, lo + u * (hi - lo), log_gap)
    rows = _rows(grid, n, generator, None if grid.shared else grid.span >= lo)
    if grid.shared:  # one grid for all: 1-D searches (the common, fast case)
        tau, top = grid.tau, grid.n_valid[0] - 1
        last_start = torch.searchsorted(tau, tau[top] - gap, right=True) - 1
    else:
        tau, top = grid.tau[rows], grid.n_valid[rows] - 1
        gap = torch.minimum(gap, grid.span[rows])  # a trajectory shorter than the gap: its longest pair
        last_start = torch.searchsorted(tau, (grid.last[rows] - gap)[:, None], right=True)[:, 0] - 1
    # start uniformly among the times that leave room for the gap
    last_start = last_start.clamp(min=0)
    i = (_rand(n, generator) * (last_start + 1)).long()
    if options.early_fraction > 0:
        early = torch.exp(_rand(n, generator) * torch.log(last_start + 2.0)).long() - 1
        pick = _rand(n, generator) < options.early_fraction
        i = torch.where(pick, early, i)
    if options.initial_fraction > 0:  # exactly at the first stored state
        i = torch.where(_rand(n, generator) < options.initial_fraction, torch.zeros_like(i), i)
    i = torch.minimum(i, last_start)
    if grid.shared:
        j = torch.searchsorted(tau, tau[i] + gap)
    else:
        s = tau.gather(1, i[:, None])
        j = torch.searchsorted(tau, s + gap[:, None])[:, 0]
    j = torch.maximum(torch.minimum(j, top), i + 1)
    return rows, i, j


class PairTable:
    """All stored pairs ``i < j`` whose gap lies in ``[min_gap, max_gap]`` (no snapping), counted
    per row and start, to draw them uniformly: many short gaps, few long. Build it once per
    grid, then :meth:`draw` as often as needed.

    Raises
    ------
    ConfigError
        No stored pair satisfies the limits.

    Examples
    --------
    >>> import torch
    >>> grid = TimeGrid(torch.linspace(0, 10, 21), n_rows=4)
    >>> row, i, j = PairTable(grid, max_gap=2.0).draw(1000, torch.Generator().manual_seed(0))
    >>> bool(((grid.tau[j] - grid.tau[i]) <= 2.0).all() and (j > i).all())
    True
    """

    def __init__(self, grid: TimeGrid, min_gap: float | None = None, max_gap: float | None = None) -> None:
        tau = grid.tau[None] if grid.shared else grid.tau
        n_valid = grid.n_valid[:1] if grid.shared else grid.n_valid
        ar = torch.arange(tau.shape[1])[None, :].expand(tau.shape)
        lo = ar + 1
        if min_gap is not None:
            lo = torch.maximum(lo, torch.searchsorted(tau, tau + min_gap))
        hi = (n_valid[:, None] - 1).expand(tau.shape)
        if max_gap is not None:
            hi = torch.minimum(hi, torch.searchsorted(tau, tau + max_gap, right=True) - 1)
        cnt = (hi - lo + 1).clamp(min=0)
        cnt[ar >= n_valid[:, None]] = 0
        self.grid, self.lo, self.cnt, self.cum = grid, lo, cnt, cnt.cumsum(dim=1)
        self.total = self.cum[:, -1]
        if int(self.total.max()) == 0:
            raise ConfigError(f"no two stored times are between min_gap={min_gap} and max_gap={max_gap} "
                              "apart")

    def draw(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """``n`` pairs ``(row, i, j)``: a uniform row with some pair, then a uniform pair in it."""
        grid = self.grid
        rows = _rows(grid, n, generator, None if grid.shared else self.total > 0)
        rr = torch.zeros_like(rows) if grid.shared else rows
        k = (_rand(n, generator) * self.total[rr]).long()
        i = torch.searchsorted(self.cum[rr], k[:, None], right=True)[:, 0]
        j = self.lo[rr, i] + (k - (self.cum[rr, i] - self.cnt[rr, i]))
        return rows, i, j


def draw_windows(grid: TimeGrid, n: int, generator: torch.Generator, length: int,
                 stride: int = 1) -> tuple[Tensor, Tensor]:
    """Draw ``n`` windows ``(row, start)`` of ``length`` stored states ``stride`` apart, uniform
    over the trajectories long enough and the starts that fit; :class:`~flowsim.ConfigError` if
    none is long enough.

    Arguments
    ---------
    grid, n, generator:
        As in :func:`draw_pairs`.
    length, stride:
        States per window, and stored steps between them.

    Returns
    -------
    tuple of Tensor
        ``row``, ``start``: ``(n,)`` int64; the window's indices are ``start + stride * k``.

    Examples
    --------
    >>> import torch
    >>> row, start = draw_windows(TimeGrid(torch.linspace(0, 1, 11), n_rows=2), 5, torch.Generator(), 4, 2)
    >>> bool((start + 3 * 2 <= 10).all())
    True
    """
    reach = (length - 1) * stride
    if grid.full:
        if reach >= grid.tau.shape[-1]:
            raise ConfigError(f"a window of {length} states with stride {stride} spans {reach + 1} stored "
                              f"times, but trajectories have {grid.tau.shape[-1]}")
        rows = torch.randint(0, grid.n_rows, (n,), generator=generator)
        return rows, torch.randint(0, grid.tau.shape[-1] - reach, (n,), generator=generator)
    rows = _rows(grid, n, generator, grid.n_valid > reach)
    return rows, (_rand(n, generator) * (grid.n_valid[rows] - reach)).long()


def draw_states(grid: TimeGrid, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw ``n`` stored states ``(row, index)``, uniform over trajectories and their stored times.

    Arguments
    ---------
    grid, n, generator:
        As in :func:`draw_pairs`.

    Returns
    -------
    tuple of Tensor
        ``row``, ``index``: ``(n,)`` int64.

    Examples
    --------
    >>> import torch
    >>> row, i = draw_states(TimeGrid(torch.linspace(0, 1, 11), n_rows=2), 5, torch.Generator())
    >>> bool((i <= 10).all() and (row < 2).all())
    True
    """
    rows = torch.randint(0, grid.n_rows, (n,), generator=generator)
    if grid.full:
        return rows, torch.randint(0, grid.tau.shape[-1], (n,), generator=generator)
    return rows, (_rand(n, generator) * grid.n_valid[rows]).long()
