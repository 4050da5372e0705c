"""In-memory trajectories for training and validation: :class:`TrajectoryBank`."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor

from ..data.sampling import PairOptions, TimeGrid, draw_pairs, draw_states, draw_windows
from ..data.store import read_error
from ..errors import FailedTrajectoryWarning, ShapeError
from ..solve.solution import Solution

__all__ = ["TrajectoryBank", "PairBatch", "StateBatch", "WindowBatch"]


@dataclass
class PairBatch:
    """Pairs of states on reference trajectories: ``x_t`` is the solution at ``t`` from ``x_s`` at ``s``."""

    s: Tensor
    t: Tensor
    x_s: Tensor
    x_t: Tensor
    p: Tensor


@dataclass
class StateBatch:
    """Start states and jump times for the physics objectives (no targets)."""

    s: Tensor
    t: Tensor
    x: Tensor
    p: Tensor


@dataclass
class WindowBatch:
    """Windows of consecutive stored states (rollout losses): ``t`` (batch, w), ``x`` (batch, w, dim)."""

    t: Tensor
    x: Tensor
    p: Tensor


class TrajectoryBank:
    """Reference trajectories held in memory (float64), sampled into pairs, states and windows.

    Arguments
    ---------
    x:
        ``(n, time, dim)`` states.
    t:
        ``(time,)`` shared or ``(n, time)`` per-trajectory times (strictly increasing).
    p:
        ``(n, n_params)`` parameters.
    status:
        Optional ``(n,)`` codes; trajectories with a non-zero code are dropped.

    Examples
    --------
    >>> import torch, flowsim
    >>> sys = flowsim.get_system("lotka_volterra")
    >>> sol = flowsim.reference_solve(sys, sys.sample_initial(8, 0), torch.linspace(0, 5, 21))
    >>> bank = TrajectoryBank.from_solution(sol)
    >>> bank.sample_pairs(4, torch.Generator().manual_seed(0)).x_s.shape
    torch.Size([4, 2])
    """

    def __init__(self, x: Tensor, t: Tensor, p: Tensor, status: Tensor | None = None) -> None:
        x = torch.as_tensor(x, dtype=torch.float64)
        t = torch.as_tensor(t, dtype=torch.float64)
        p = torch.as_tensor(p, dtype=torch.float64)
        if x.ndim != 3:
            raise ShapeError(f"trajectories must be (n, time, dim); got {tuple(x.shape)}")
        n, nt, _ = x.shape
        if t.ndim == 1:
            t = t.expand(n, -1)
        if t.shape != (n, nt) or p.ndim != 2 or p.shape[0] != n:
            raise ShapeError(f"inconsistent shapes: x {tuple(x.shape)}, t {tuple(t.shape)}, "
                             f"p {tuple(p.shape)}")
        keep = torch.isfinite(x).all(dim=(1, 2))
        if status is not None:
            keep &= torch.as_tensor(status) == 0
        if int(keep.sum()) == 0:
            raise ShapeError("no successful trajectories to train on")
        if not bool(keep.all()):
            warnings.warn(f"{n - int(keep.sum())} of {n} trajectories failed or hold NaN/inf and "
                          f"are left out (Solution.status / the store's status says which)",
                          FailedTrajectoryWarning, stacklevel=2)
        if nt < 2:
            raise ShapeError("trajectories need at least two time points")
        self.x, self.t, self.p = x[keep].contiguous(), t[keep].contiguous(), p[keep].contiguous()
        shared = bool((self.t == self.t[:1]).all())
        self._grid = TimeGrid(self.t[0] if shared else self.t, len(self))

    @classmethod
    def from_solution(cls, sol: Solution) -> TrajectoryBank:
        """Build from a :class:`~flowsim.Solution` (failed trajectories are dropped)."""
        return cls(sol.x, sol.t, sol.p, sol.status)

    @classmethod
    def from_dataset(cls, ds) -> TrajectoryBank:
        """Build from a flowsim store opened with xarray (loads it into memory).

        Only complete trajectories are kept: failed ones and, on per-trajectory grids, shorter
        ones padded with NaN are dropped (the streamed :class:`~flowsim.data.PairSampler`
        draws from the shorter ones too).
        """
        try:
            x = torch.tensor(ds["x"].values)
            t = torch.tensor(ds["t"].values if "t" in ds else ds["time"].values)
            p = torch.tensor(ds["params"].values) if "params" in ds else torch.zeros(x.shape[0], 0)
            status = torch.tensor(ds["status"].values) if "status" in ds else None
        except Exception as err:  # noqa: BLE001 - blosc and zarr raise several types
            raise read_error(ds, err) from err
        return cls(x, t, p, status)

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def n_times(self) -> int:
        return self.x.shape[1]

    @property
    def max_gap(self) -> float:
        """Longest time span of a trajectory."""
        return self._grid.max_span

    @property
    def min_step(self) -> float:
        """Shortest stored time step."""
        return self._grid.min_step

    def split(self, fraction: float, generator: torch.Generator) -> tuple[TrajectoryBank, TrajectoryBank]:
        """Split by trajectory into two banks (e.g. train / validation)."""
        perm = torch.randperm(len(self), generator=generator)
        k = max(1, min(len(self) - 1, round(len(self) * (1 - fraction))))
        a, b = perm[:k], perm[k:]
        return (TrajectoryBank(self.x[a], self.t[a], self.p[a]),
                TrajectoryBank(self.x[b], self.t[b], self.p[b]))

    def sample_pairs(self, n: int, generator: torch.Generator, *, min_gap: float | None = None,
                     max_gap: float | None = None, log_fraction: float = PairOptions.log_fraction,
                     early_fraction: float = PairOptions.early_fraction,
                     initial_fraction: float = PairOptions.initial_fraction) -> PairBatch:
        """Draw ``n`` pairs with gaps in ``[min_gap, max_gap]``: a fraction ``log_fraction``
        spread log-uniformly (all scales), the rest uniformly (more long jumps). Starts are
        uniform over the times that leave room for the gap, except for a fraction
        ``early_fraction`` drawn log-uniformly in the index (as dense near the first stored state
        as over the rest), so that jumps from initial states, and the transients after them,
        are trained as well as the long-time behaviour; a fraction ``initial_fraction`` starts
        exactly at the first stored state. Gaps are snapped up to the stored grid.

        The draw is :func:`flowsim.data.sampling.draw_pairs` with
        :class:`~flowsim.data.PairOptions` (its defaults and validation), the same as the
        streamed :class:`~flowsim.data.PairSampler` ``(gaps="log-uniform")``.
        """
        options = PairOptions(min_gap=min_gap, max_gap=max_gap, log_fraction=log_fraction,
                              early_fraction=early_fraction, initial_fraction=initial_fraction)
        i, a, b = draw_pairs(self._grid, n, generator, options)
        return PairBatch(s=self.t[i, a], t=self.t[i, b], x_s=self.x[i, a], x_t=self.x[i, b], p=self.p[i])

    def sample_states(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        """Draw ``n`` stored states with their times and parameters: ``(t, x, p)``."""
        i, a = draw_states(self._grid, n, generator)
        return self.t[i, a], self.x[i, a], self.p[i]

    def sample_windows(self, n: int, length: int, generator: torch.Generator, stride: int = 1
                       ) -> WindowBatch:
        """Draw ``n`` windows of ``length`` states, ``stride`` stored steps apart."""
        span = (length - 1) * stride
        if span >= self.n_times:
            raise ShapeError(f"window of {length} states with stride {stride} exceeds "
                             f"trajectories of {self.n_times} points")
        i, a = draw_windows(self._grid, n, generator, length, stride)
        idx = a[:, None] + stride * torch.arange(length)[None]
        return WindowBatch(t=self.t[i[:, None], idx], x=self.x[i[:, None], idx], p=self.p[i])
