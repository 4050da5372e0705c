"""A :func:`flowsim.fit` run's checkpoint: the trainer state written (to resume) and read back,
with the EMA weights swapped in for the saved map and for validation."""

from __future__ import annotations

import csv
import json
from typing import Any

import torch
from torch import Tensor

from .._utils import atomic_path
from ..errors import CheckpointError
from ..maps.flowmap import FlowMap
from . import checkpoint as ckpt
from ._provenance import fingerprint_diff
from .config import RESUME_MAY_DIFFER, FitConfig

__all__ = ["restore_run", "save_run", "swapped_ema"]


class swapped_ema:
    """Temporarily load EMA weights into the model."""

    def __init__(self, fm: FlowMap, ema: list[Tensor]) -> None:
        self.fm, self.ema = fm, ema

    def __enter__(self) -> None:
        self.saved = [p.detach().clone() for p in self.fm.parameters()]
        with torch.no_grad():
            for e, p in zip(self.ema, self.fm.parameters()):
                p.copy_(e)

    def __exit__(self, *exc) -> None:
        with torch.no_grad():
            for s, p in zip(self.saved, self.fm.parameters()):
                p.copy_(s)


def save_run(run: Any, step: int) -> None:
    """Checkpoint: the trainer state (to resume), the EMA map, and the log."""
    fm, ckdir, history = run.fm, run.ckdir, run.history
    ckpt.save_trainer_state(ckdir, {
        "step": step,
        "model": {k: v.detach().cpu() for k, v in fm.state_dict().items()},
        "optimizer": run.opt.state_dict(),
        "ema": [e.detach().cpu() for e in run.ema],
        "extra": [q.detach().cpu() for q in run.extra],
        "generator": run.prep.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": json.dumps(history),
        "run": json.dumps(run.record),
        "config": json.dumps(run.config.to_dict()),
        "system": fm.config.system,
        "data": json.dumps(run.prep.fingerprint),
    })
    with swapped_ema(fm, run.ema):
        ckpt.write_checkpoint(fm, ckdir, training={**run.record, "step": step})
    with atomic_path(ckdir / "log.csv", error=CheckpointError) as tmp:
        keys = sorted({k for row in history for k in row}, key=lambda k: (k != "step", k))
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(history)


def restore_run(run: Any) -> None:
    """Continue from the trainer state in ``run.ckdir`` (refused unless it is of the same
    system, config and objectives)."""
    fm, ckdir = run.fm, run.ckdir
    state = ckpt.load_trainer_state(ckdir, fm.config.system, run.config.to_dict(), run.record,
                                    may_differ=RESUME_MAY_DIFFER, defaults=FitConfig.resume_defaults())
    if "data" in state:  # states written before data were fingerprinted resume unchecked
        saved = json.loads(state["data"]) or {}
        diff = [f"{part} {d}" for part in ("data", "validation")
                for d in fingerprint_diff(saved.get(part), (run.prep.fingerprint or {}).get(part))]
        if diff:
            raise CheckpointError(
                f"{ckdir} holds a run trained on other data than given now ("
                + "; ".join(diff[:4]) + "); resuming would mix two data sets. Give the same data "
                "to resume, or pass resume=False (start over) or another checkpoint_dir")
    try:
        fm.load_state_dict(state["model"])
    except RuntimeError:
        raise CheckpointError(
            f"{ckdir} holds a map of another network than this one "
            f"({_architecture_diff(fm, state['model'])}): "
            "resume with the same network (width, depth, backbone, decay, relax …), or pass "
            "resume=False (start over) or another checkpoint_dir") from None
    try:
        run.opt.load_state_dict(state["optimizer"])
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(
            f"{ckdir} holds optimiser state that does not fit this run's optimiser ({err}); it was "
            "probably written by another flowsim version: pass resume=False or another "
            "checkpoint_dir") from None
    with torch.no_grad():
        for e, s in zip(run.ema, state["ema"]):
            e.copy_(s)
        for q, s in zip(run.extra, state.get("extra", [])):
            q.copy_(s)
    run.prep.generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    run.start, run.history = int(state["step"]), json.loads(state["history"])


def _architecture_diff(fm: Any, saved: dict[str, Any]) -> str:
    """The first few tensors whose names or shapes differ between ``saved`` and ``fm``'s state."""
    now = fm.state_dict()
    out = [f"{k}: checkpoint {tuple(v.shape)}, now {tuple(now[k].shape)}"
           for k, v in saved.items() if k in now and tuple(v.shape) != tuple(now[k].shape)]
    out += [f"{k} only in the checkpoint" for k in saved if k not in now]
    out += [f"{k} only in this map" for k in now if k not in saved]
    return "; ".join(out[:3]) + (f"; {len(out) - 3} more" if len(out) > 3 else "")
