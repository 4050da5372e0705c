"""Private: held-out reference trajectories from a Solution or a store Dataset, and the
``(trajectory, start, end)`` index pairs that single-jump analyses evaluate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from .._utils import as_generator
from ..data.store import read_error
from ..errors import (
    CheckpointError,
    ConfigError,
    FlowsimError,
    ParameterError,
    ShapeError,
    StoreError,
    TimeGridError,
)
from ..solve import Solution, SolverOptions, reference_solve
from ..systems.base import ODESystem
from .metrics import state_std

__all__ = ["Reference", "load_reference"]

#: Relative mismatch tolerated between a requested jump and the stored gap used for it
#: (irregular grids); the error is always measured at the stored gap itself.
SNAP_RTOL = 0.05


@dataclass
class Reference:
    """Successful reference trajectories, float64 on the CPU.

    ``t`` ``(n, T)``, ``x`` ``(n, T, dim)``, ``p`` ``(n, n_params)``, ``sigma`` ``(dim,)``
    (per-state std of all stored states), ``n_skipped`` failed trajectories left out.
    """

    t: Tensor
    x: Tensor
    p: Tensor
    sigma: Tensor
    n_skipped: int
    shared_grid: bool

    @property
    def n(self) -> int:
        return self.x.shape[0]

    @property
    def span(self) -> float:
        """Longest stored time span of any trajectory."""
        return float((self.t[:, -1] - self.t[:, 0]).max())

    @property
    def min_gap(self) -> float:
        return float(self.t.diff(dim=1).min()) if self.t.shape[1] > 1 else math.inf

    def stored_gaps(self) -> Tensor:
        """Sorted distinct gaps ``t_j − t_i`` (``j > i``) of a shared grid.

        Gaps within ``1e-6`` of the span of each other count once: a float32 time grid (what
        ``torch.linspace`` gives by default) makes equal gaps differ in their last digits."""
        g = self.t[0]
        d = g[None, :] - g[:, None]
        d = d[d > 0]
        if not d.numel():
            return d
        q = 1e6
        return torch.unique(torch.round(d / self.span * q) * self.span / q)

    def snap(self, jumps: Sequence[float], strict: bool = True) -> list[float]:
        """For a shared grid, each jump replaced by the nearest stored gap (with ``strict``,
        only within :data:`SNAP_RTOL`; otherwise it is kept, and will find no pairs)."""
        if not self.shared_grid or self.t.shape[1] < 2:
            return [float(j) for j in jumps]
        gaps = self.stored_gaps().numpy()
        out = []
        for j in jumps:
            k = int(np.argmin(np.abs(np.log(gaps) - math.log(j))))
            near = abs(gaps[k] - j) <= SNAP_RTOL * j or not strict
            out.append(float(gaps[k]) if near else float(j))
        return out

    def pairs(self, jump: float, n_starts: int | None, generator: torch.Generator,
              from_start: bool = False) -> tuple[Tensor, ...]:
        """Index triples ``(traj, i, j)`` with ``t[traj, j] − t[traj, i] ≈ jump``.

        Up to ``n_starts`` random start indices per trajectory (all when ``None``); with
        ``from_start``, only the first stored state of each trajectory.
        """
        n, T = self.t.shape
        target = self.t + jump  # (n, T): wanted end time for each start
        j = torch.searchsorted(self.t.contiguous(), target.contiguous()).clamp(max=T - 1)
        jm = (j - 1).clamp(min=0)
        tj = torch.gather(self.t, 1, j)
        tjm = torch.gather(self.t, 1, jm)
        use_lower = (target - tjm).abs() < (tj - target).abs()
        j = torch.where(use_lower, jm, j)
        got = torch.gather(self.t, 1, j) - self.t
        i = torch.arange(T).expand(n, T)
        tol = SNAP_RTOL * jump if not self.shared_grid else min(SNAP_RTOL * jump, 0.25 * self.min_gap)
        valid = (j > i) & ((got - jump).abs() <= tol)
        if from_start:
            valid &= i == 0
        score = torch.rand(n, T, generator=generator, dtype=torch.float64)
        score = torch.where(valid, score, torch.full_like(score, -1.0))
        k = T if n_starts is None else min(int(n_starts), T)
        top = score.topk(k, dim=1)
        keep = top.values >= 0
        traj = torch.arange(n)[:, None].expand(n, k)[keep]
        start = top.indices[keep]
        end = j[traj, start]
        return traj, start, end


def load_reference(reference: Any, system: ODESystem) -> Reference:
    """Normalise a :class:`~flowsim.Solution` or store-schema Dataset; check it matches ``system``."""
    if isinstance(reference, Solution):
        if reference.system != system.name:
            raise CheckpointError(
                f"the reference Solution is of system {reference.system!r} but the flow map is for "
                f"{system.name!r}; evaluate on reference trajectories of the map's own system"
            )
        x, t, p, status = reference.x, reference.t, reference.p, reference.status
    elif isinstance(reference, xr.Dataset):
        try:
            x, t, p, status = _from_dataset(reference, system)
        except FlowsimError:
            raise
        except Exception as err:  # a damaged chunk: named, not blosc's RuntimeError
            raise read_error(reference, err) from err
    else:
        raise ConfigError(
            "reference must be a flowsim.Solution (from reference_solve) or an xarray Dataset with "
            f"x(trajectory, time, state); got {type(reference).__name__}"
        )
    x = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
    if x.ndim != 3 or x.shape[-1] != system.dim:
        raise ShapeError(
            f"reference states must be (trajectory, time, {system.dim}) for {system.name} with states "
            f"{system.state_names}; got {tuple(x.shape)}"
        )
    n, T, _ = x.shape
    t = torch.as_tensor(t).detach().to(device="cpu", dtype=torch.float64)
    if t.ndim == 1:
        t = t.expand(n, -1)
    if t.shape != (n, T):
        raise TimeGridError(f"reference times must be (time,) = ({T},) or ({n}, {T}); got {tuple(t.shape)}")
    p = system.params_tensor(torch.as_tensor(p).detach().cpu().to(torch.float64), n, dtype=torch.float64)
    if status is None:
        ok = torch.ones(n, dtype=torch.bool)
    else:
        st = status.detach().cpu() if isinstance(status, Tensor) else torch.from_numpy(np.array(status))
        ok = st.to(torch.int64).reshape(-1) == 0
    if ok.shape != (n,):
        raise ShapeError(f"reference status must be ({n},); got {tuple(ok.shape)}")
    ok = ok & torch.isfinite(x).flatten(1).all(dim=1) & torch.isfinite(t).all(dim=1)
    n_skipped = int((~ok).sum())
    x, t, p = x[ok], t[ok], p[ok]
    if x.shape[0] == 0:
        raise StoreError(f"the reference has no successful trajectories (all {n} failed or are non-finite)")
    if T < 2:
        raise TimeGridError("the reference needs at least two stored times per trajectory")
    if not bool((t.diff(dim=1) > 0).all()):
        raise TimeGridError("reference times must be strictly increasing along each trajectory")
    shared = bool((t == t[:1]).all())
    return Reference(t=t.contiguous(), x=x, p=p, sigma=state_std(x), n_skipped=n_skipped, shared_grid=shared)


def _system_name(attrs: dict) -> str | None:
    v = attrs.get("system", attrs.get("system_name"))
    if isinstance(v, dict):
        v = v.get("name")
    return v if isinstance(v, str) else None


def _from_dataset(ds: xr.Dataset, system: ODESystem) -> tuple[Any, Any, Any, Any]:
    if "x" not in ds:
        raise StoreError(
            "the reference Dataset has no variable 'x'; expected the flowsim store schema "
            "x(trajectory, time, state), params(trajectory, param), status(trajectory), coord time"
        )
    name = _system_name(dict(ds.attrs))
    if name is not None and name != system.name:
        raise CheckpointError(
            f"the reference store is of system {name!r} but the flow map is for {system.name!r}; "
            "evaluate on a store of the map's own system"
        )
    xv = ds["x"]
    if xv.ndim != 3:
        raise ShapeError(f"store variable x must be 3-D (trajectory, time, state); got dims {xv.dims}")
    if {"trajectory", "time", "state"} <= set(xv.dims):
        xv = xv.transpose("trajectory", "time", "state")
    if xv.shape[-1] != system.dim:
        raise ShapeError(
            f"the store has {xv.shape[-1]} states per time but the flow map's system {system.name} has "
            f"{system.dim} {list(system.state_names)}"
        )
    if "state" in ds.coords:
        names = [str(v) for v in ds["state"].values.tolist()]
        if names != list(system.state_names):
            raise CheckpointError(
                f"the store's states {names} differ from the flow map's system {system.name!r} states "
                f"{list(system.state_names)}"
            )
    if "t" in ds and ds["t"].ndim == 2:
        t = ds["t"].transpose(*[d for d in ("trajectory", "time") if d in ds["t"].dims]).values
    elif "time" in ds.coords:
        t = ds["time"].values
    else:
        raise StoreError("the reference Dataset has neither a 'time' coordinate nor a t(trajectory, time)")
    if np.issubdtype(np.asarray(t).dtype, np.datetime64):
        raise StoreError("store times must be numbers in the system's time units, not datetimes")
    if system.n_params == 0:
        p = torch.zeros(xv.shape[0], 0, dtype=torch.float64)
    elif "params" in ds:
        pv = ds["params"]
        if "param" in pv.dims:
            pv = pv.transpose(*[d for d in pv.dims if d != "param"], "param")
            if "param" in ds.coords:
                have = [str(v) for v in ds["param"].values.tolist()]
                missing = [q for q in system.param_names if q not in have]
                if missing:
                    raise ParameterError(
                        f"the store lacks parameter column(s) {missing} of {system.name}; it has {have}"
                    )
                pv = pv.sel(param=list(system.param_names))
        p = np.array(pv.values, dtype=np.float64)
    else:
        raise StoreError(f"the reference Dataset has no 'params' variable but {system.name} has parameters")
    status = ds["status"].values if "status" in ds else None
    # copies: store-backed arrays may be read-only, which torch tensors must not wrap
    return np.array(xv.values, dtype=np.float64), np.array(t, dtype=np.float64), np.array(p), status


def make_generator(generator: torch.Generator | int | None) -> torch.Generator:
    return as_generator(generator)


#: tolerance of the tight reference solve that work-precision compares against
REFERENCE_TOL = 1e-10


def final_states(
    system: ODESystem, x0: Tensor, p: Tensor, t0: float, h: float, reference: Any, n_reference: int | None
) -> tuple[Tensor, Tensor, Tensor, str]:
    """Final reference states ``(m, dim)`` of one jump of ``h`` from ``t0`` (a tight solve, a given
    :class:`Solution` or given final states), their ok mask, σ and a description."""
    n = x0.shape[0]
    m = n if n_reference is None else int(n_reference)
    if not 1 <= m <= n:
        raise ConfigError(f"n_reference must be between 1 and the batch size {n}; got {n_reference!r}")
    if reference is None:
        grid = torch.linspace(t0, t0 + h, 11, dtype=torch.float64)
        opts = SolverOptions.reference(system, rtol=REFERENCE_TOL, atol=REFERENCE_TOL)
        sol = reference_solve(system, x0[:m], grid, p[:m], solver=opts)
        desc = f"{sol.backend} {sol.method} rtol=atol={REFERENCE_TOL:g}, float64"
        return sol.x[:, -1].cpu(), sol.ok.cpu(), state_std(sol.x[sol.ok]), desc
    if isinstance(reference, Solution):
        if reference.system != system.name:
            raise CheckpointError(f"reference is of system {reference.system!r}, not {system.name!r}")
        t = reference.t if reference.t.ndim == 1 else reference.t[0]
        if abs(float(t[0]) - t0) > 1e-9 * max(1.0, h) or abs(float(t[-1] - t[0]) - h) > 1e-6 * h:
            raise TimeGridError(
                f"reference covers [{float(t[0]):.6g}, {float(t[-1]):.6g}] but the comparison runs over "
                f"[{t0:.6g}, {t0 + h:.6g}]; solve the reference over the same interval"
            )
        x_all = reference.x.detach().cpu().to(torch.float64)
        ok = reference.ok.cpu()
        desc = (f"given Solution: {reference.backend} {reference.method} rtol={reference.rtol:g} "
                f"atol={reference.atol:g}")
        x_fin, sig = x_all[:, -1], state_std(x_all[ok])
    else:
        x_fin = torch.as_tensor(reference).detach().cpu().to(torch.float64)
        ok = torch.isfinite(x_fin).all(dim=-1) if x_fin.ndim == 2 else torch.ones(0, dtype=torch.bool)
        desc = "given final states"
        sig = None
    if x_fin.ndim != 2 or x_fin.shape[1] != system.dim or not 1 <= x_fin.shape[0] <= n:
        raise ShapeError(
            f"reference final states must be (m, {system.dim}) with 1 <= m <= {n} (the first m states of "
            f"x0); got {tuple(x_fin.shape)}"
        )
    x_fin, ok = x_fin[:m], ok[:m]
    if sig is None:
        sig = state_std(torch.cat([x0[: x_fin.shape[0]], x_fin[ok]]))
    return x_fin, ok, sig, desc
