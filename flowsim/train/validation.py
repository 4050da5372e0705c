"""Validation during training: single-jump errors on held-out reference trajectories."""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..maps.flowmap import FlowMap
from ..metrics import normalised_error, relative_error, state_std, summarise_errors
from .bank import TrajectoryBank

__all__ = ["jump_errors"]


@torch.no_grad()
def jump_errors(fm: FlowMap, bank: TrajectoryBank, jumps: list[float], n: int = 512,
                seed: int = 1234, from_start: bool = False) -> dict[str, float]:
    """Median relative and normalised error of single jumps of each size in ``jumps``.

    The relative error is ``‖X − X_ref‖ / ‖X_ref‖``; the normalised error is
    ``‖(X − X_ref)/σ‖ / √dim`` with σ the per-state standard deviation of ``bank`` — both as
    :mod:`flowsim.metrics` defines them, and the median is
    :func:`flowsim.metrics.summarise_errors`' (a diverged jump counts as +inf), so these
    numbers match ``flowsim.analysis`` on the same map and trajectories.

    Arguments
    ---------
    fm:
        The flow map.
    bank:
        Held-out reference trajectories.
    jumps:
        Jump sizes, in time units.
    n, seed:
        Pairs drawn per jump size (starts uniform along the trajectories), and their seed.
    from_start:
        Start every jump at each trajectory's first stored state instead (its initial state:
        transients included), landing on the first stored time at least the jump later;
        trajectories too short for the jump are left out.

    Returns
    -------
    dict
        ``{"rel@<h>": …, "norm@<h>": …}`` for each jump ``h`` (formatted ``.4g``).

    Raises
    ------
    ConfigError
        ``from_start`` with a jump longer than every trajectory.

    Examples
    --------
    >>> import flowsim, torch
    >>> fm = flowsim.FlowMap("harmonic_oscillator", width=8, depth=1)
    >>> sol = flowsim.reference_solve(fm.system, fm.system.sample_initial(4),
    ...                               torch.linspace(0, 2, 21, dtype=torch.float64))
    >>> bank = flowsim.train.TrajectoryBank.from_solution(sol)
    >>> sorted(jump_errors(fm, bank, [1.0], from_start=True))
    ['norm@1', 'rel@1']
    """
    g = torch.Generator().manual_seed(seed)
    sigma = state_std(bank.x)
    dev, dt = fm.device, fm.dtype
    out: dict[str, float] = {}
    was_training = fm.training
    fm.eval()
    rows = torch.arange(len(bank))
    for h in jumps:
        if from_start:
            t0 = bank.t[:, 0]
            k = torch.searchsorted(bank.t, (t0 + h * (1 - 1e-9))[:, None])[:, 0]
            ok = k < bank.n_times  # trajectories long enough for this jump
            if not bool(ok.any()):
                raise ConfigError(f"no trajectory reaches a jump of {h:g} from its first state; "
                                  "store longer trajectories or drop that jump size")
            r, k = rows[ok], k[ok]
            s, t, x_s, x_t, p = t0[ok], bank.t[r, k], bank.x[r, 0], bank.x[r, k], bank.p[r]
        else:
            b = bank.sample_pairs(n, g, min_gap=h, max_gap=h)
            s, t, x_s, x_t, p = b.s, b.t, b.x_s, b.x_t, b.p
        pred = fm(s.to(dev, dt), t.to(dev, dt), x_s.to(dev, dt), p.to(dev, dt))
        pred = pred.double().cpu()
        rel = relative_error(pred, x_t)
        nrm = normalised_error(pred, x_t, sigma)
        out[f"rel@{h:.4g}"] = summarise_errors(rel, ())[0]
        out[f"norm@{h:.4g}"] = summarise_errors(nrm, ())[0]
    fm.train(was_training)
    return out
