"""Validation during training: single-jump errors on held-out reference trajectories."""

from __future__ import annotations

import math

import torch

from ..maps.flowmap import FlowMap
from .bank import TrajectoryBank

__all__ = ["jump_errors"]


@torch.no_grad()
def jump_errors(fm: FlowMap, bank: TrajectoryBank, jumps: list[float], n: int = 512,
                seed: int = 1234) -> dict[str, float]:
    """Median relative and normalised error of single jumps of each size in ``jumps``.

    The relative error is ``‖X − X_ref‖ / ‖X_ref‖``; the normalised error is
    ``‖(X − X_ref)/σ‖ / √dim`` with σ the per-state standard deviation of ``bank``.
    Returns ``{"rel@<h>": …, "norm@<h>": …}`` for each jump ``h`` (time units).
    """
    g = torch.Generator().manual_seed(seed)
    sigma = bank.x.reshape(-1, bank.x.shape[-1]).std(dim=0).clamp_min(1e-12)
    dev, dt = fm.device, fm.dtype
    out: dict[str, float] = {}
    was_training = fm.training
    fm.eval()
    for h in jumps:
        b = bank.sample_pairs(n, g, min_gap=h, max_gap=h)
        pred = fm(b.s.to(dev, dt), b.t.to(dev, dt), b.x_s.to(dev, dt), b.p.to(dev, dt))
        pred = pred.double().cpu()
        err = pred - b.x_t
        rel = err.norm(dim=-1) / b.x_t.norm(dim=-1).clamp_min(1e-300)
        nrm = (err / sigma).norm(dim=-1) / math.sqrt(err.shape[-1])
        out[f"rel@{h:.4g}"] = float(rel.median())
        out[f"norm@{h:.4g}"] = float(nrm.median())
    fm.train(was_training)
    return out
