"""What a checkpoint folder holds: its file names, and the check :func:`flowsim.save` makes
before writing into a folder that already holds another map or a training run."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from ..maps.ensemble import FlowMapEnsemble
from ..maps.flowmap import FlowMap

__all__ = ["CONFIG", "ENSEMBLE", "RUN_FILES", "TRAINER_STATE", "WEIGHTS", "check_target", "member_dir"]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
ENSEMBLE = "ensemble.json"
TRAINER_STATE = "trainer_state.pt"
#: What a training run writes beside its map (:func:`flowsim.fit` with ``checkpoint_dir``, and
#: ``flowsim evaluate``'s report): stale once another map is saved in the folder.
RUN_FILES = (TRAINER_STATE, "log.csv", "metrics.json")


def member_dir(path: str | os.PathLike, k: int) -> Path:
    """Where member ``k`` of an ensemble saved at ``path`` lives (``path/member-<k>``)."""
    return Path(path) / f"member-{k}"


def _words(config: dict[str, Any] | None = None, *, members: int = 0, system: str = "") -> str:
    """A map (its config as a dict) or an ensemble of ``members`` maps of ``system``, in words."""
    if members:
        return f"an ensemble of {members} {system} maps"
    c = config or {}
    return f"a {c['system']} map, {c['backbone']} {c['width']}x{c['depth']}"


def _describe(flowmap: FlowMap | FlowMapEnsemble) -> str:
    if isinstance(flowmap, FlowMapEnsemble):
        return _words(members=len(flowmap), system=flowmap.config.system)
    return _words(flowmap.config.to_dict())


def _held(path: Path) -> str | None:
    """What the checkpoint in ``path`` is, in :func:`_words` (``None``: none)."""
    try:
        if (path / ENSEMBLE).exists():
            meta = json.loads((path / ENSEMBLE).read_text())
            return _words(members=len(meta["members"]), system=meta["system"])
        if (path / CONFIG).exists():
            return _words(json.loads((path / CONFIG).read_text())["flowmap"])
    except (OSError, ValueError, KeyError, TypeError):
        return "an unreadable checkpoint"
    return None


def check_target(path: Path, flowmap: FlowMap | FlowMapEnsemble, overwrite: bool) -> None:
    """Refuse (or, with ``overwrite``, clear) a target holding another map or a training run.

    Examples
    --------
    >>> import tempfile, flowsim
    >>> d = flowsim.save(flowsim.FlowMap("lotka_volterra", width=8, depth=1), tempfile.mkdtemp())
    >>> try:
    ...     check_target(d, flowsim.FlowMap("lotka_volterra", width=16, depth=1), overwrite=False)
    ... except flowsim.CheckpointError as err:
    ...     print(str(err).split("holds ")[1].split(". Save")[0])
    a lotka_volterra map, resnet 8x1; this is a lotka_volterra map, resnet 16x1
    """
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path} is a file; save a flow map to a directory (a new one, or "
                              f"a folder holding an earlier checkpoint of this map)")
    if not path.is_dir():
        return
    held, ours = _held(path), _describe(flowmap)
    if overwrite:
        for name in RUN_FILES + (ENSEMBLE,):
            (path / name).unlink(missing_ok=True)
        for sub in [path / "report", *path.glob("member-*")]:
            if sub.is_dir():
                shutil.rmtree(sub)
        return
    if (path / TRAINER_STATE).exists():
        raise CheckpointError(
            f"{path} is a training run's checkpoint ({held or 'no map yet'}, with its "
            f"{TRAINER_STATE}): training with it as checkpoint_dir would resume that run, not this "
            f"map. Save to a new folder, or pass overwrite=True to replace it (its trainer state, "
            f"log, metrics and report are removed)")
    if held is not None and held != ours:
        raise CheckpointError(
            f"{path} holds {held}; this is {ours}. Save to a new folder, or pass overwrite=True "
            f"to replace it")
