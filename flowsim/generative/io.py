"""Saving and loading teachers and generative flow maps: safetensors weights + a JSON config with
checksums (the form of :func:`flowsim.save`), written into a temporary folder that replaces the
target only once it is complete. Loading never executes code."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as dump_safetensors

from .._utils import atomic_path
from .._version import __version__
from ..errors import CheckpointError, FlowsimError
from ..train import checkpoint as ckpt
from .samples import SampleSet
from .system import teacher_system
from .teacher import Teacher, TeacherConfig

__all__ = ["save_teacher", "load_teacher", "save_generative", "load_generative", "GENERATIVE_FORMAT"]

#: the format version of the checkpoints written here
GENERATIVE_FORMAT = 1
CONFIG = "config.json"
TEACHER_WEIGHTS = "teacher.safetensors"
KIND_TEACHER = "flowsim.generative.Teacher"
KIND_GENERATIVE = "flowsim.generative.GenerativeFlowMap"
TEACHER_DIR, FLOWMAP_DIR = "teacher", "flowmap"


@contextmanager
def staged_dir(path: str | os.PathLike, kind: str) -> Iterator[Path]:
    """A fresh temporary folder beside ``path`` that replaces ``path`` when the block succeeds; on
    any failure it is removed and ``path`` is left as it was. ``path`` may be missing, empty, or a
    checkpoint of the same ``kind`` (overwritten); anything else is refused untouched."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path} exists and is not a folder; save to a folder path (nothing written)")
    if path.is_dir() and any(path.iterdir()) and stored_kind(path) != kind:
        raise CheckpointError(f"{path} is a non-empty folder that does not hold a saved "
                              f"{kind.split('.')[-1]}; choose a new or empty folder (nothing overwritten)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise CheckpointError(f"cannot save to {path}: {err}") from None
    try:
        yield tmp
        old = None
        if path.exists():  # the previous checkpoint leaves only once the new one is whole
            old = tmp.with_name(tmp.name[:-4] + ".old")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        raise CheckpointError(f"cannot save to {path}: {err}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def stored_kind(path: Path) -> str | None:
    """The ``kind`` recorded in ``path/config.json`` (``"flowsim.FlowMap"`` for a plain
    :func:`flowsim.save` checkpoint), or ``None``."""
    try:
        meta = json.loads((path / CONFIG).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    return meta.get("kind") or ("flowsim.FlowMap" if "flowmap" in meta else None)


def _found(path: Path) -> str | None:
    """What ``path`` holds, for error messages (a FlowMapEnsemble has no config.json of its own)."""
    return "flowsim.FlowMapEnsemble" if (path / ckpt.ENSEMBLE).is_file() else stored_kind(path)


def _write_config(path: Path, meta: dict, blob: bytes | None = None) -> dict:
    meta = json.loads(json.dumps(meta))
    meta["integrity"] = {"config_sha256": ckpt.config_hash(meta)}
    if blob is not None:
        meta["integrity"]["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    with atomic_path(path / CONFIG, error=CheckpointError) as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return meta["integrity"]


def _read_config(path: str | os.PathLike, kind: str, loader: str) -> tuple[Path, dict]:
    """``(folder, config)`` of a checkpoint of ``kind``; clear errors for anything else."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not (path / CONFIG).is_file() and _found(path) is None:
        raise CheckpointError(f"{path} is not a saved model: no {CONFIG} inside (missing folder or "
                              "wrong path)")
    found = _found(path)
    if found != kind:
        hints = {"flowsim.FlowMap": "a FlowMap checkpoint: load it with flowsim.load",
                 "flowsim.FlowMapEnsemble": "a FlowMapEnsemble: load it with flowsim.load",
                 KIND_TEACHER: "a Teacher: load it with Teacher.load",
                 KIND_GENERATIVE: "a GenerativeFlowMap: load it with GenerativeFlowMap.load (its "
                                  "teacher is .teacher)"}
        what = hints.get(found, f"no flowsim model (or a corrupted {CONFIG})")
        raise CheckpointError(f"{path} holds {what}, not a {kind.split('.')[-1]} ({loader} cannot read it)")
    meta = json.loads((path / CONFIG).read_text())  # readable: _found parsed it
    if meta.get("format_version") != GENERATIVE_FORMAT:
        raise CheckpointError(f"{path} has format {meta.get('format_version')!r}; this flowsim reads "
                              f"format {GENERATIVE_FORMAT}: use the flowsim version that wrote it")
    return path, meta


def save_teacher(teacher: Teacher, path: str | os.PathLike, *, samples: bool = True) -> Path:
    """Save ``teacher`` to the folder ``path``: ``teacher.safetensors`` (weights, standardisation
    and condition statistics, and with ``samples`` its training samples, which :func:`distill`
    needs) and ``config.json`` (its :class:`TeacherConfig`, dimensions, interpolant, base, and
    checksums). Written whole or not at all; a teacher saved at ``path`` before is replaced (the
    whole folder). See :meth:`Teacher.save`."""
    if not isinstance(teacher, Teacher):
        raise CheckpointError(f"save_teacher takes a Teacher; got {type(teacher).__name__}")
    with staged_dir(path, KIND_TEACHER) as tmp:
        write_teacher(teacher, tmp, samples)
    return Path(path)


def write_teacher(teacher: Teacher, folder: Path, samples: bool) -> dict:
    tensors = {k: v.detach().cpu().contiguous() for k, v in teacher.state_dict().items()}
    has = bool(samples) and teacher.samples is not None
    if has:
        tensors["samples.x"] = teacher.samples.x.detach().cpu().contiguous()
        if teacher.samples.c is not None:
            tensors["samples.c"] = teacher.samples.c.detach().cpu().contiguous()
    blob = dump_safetensors(tensors)
    meta = {"format_version": GENERATIVE_FORMAT, "kind": KIND_TEACHER, "flowsim_version": __version__,
            "teacher": dataclasses.asdict(teacher.config), "dim": teacher.dim, "n_cond": teacher.n_cond,
            "interpolant": teacher.interpolant.name, "base": "standard_normal", "samples": has,
            "train_seconds": getattr(teacher, "train_seconds", None)}
    with atomic_path(folder / TEACHER_WEIGHTS, error=CheckpointError) as tmp:
        tmp.write_bytes(blob)
    return _write_config(folder, meta, blob)


def load_teacher(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Teacher:
    """Load a teacher saved by :func:`save_teacher`, in eval mode with frozen weights. See
    :meth:`Teacher.load`."""
    path, meta = _read_config(path, KIND_TEACHER, "Teacher.load")
    w_file = path / TEACHER_WEIGHTS
    try:
        blob = w_file.read_bytes()
    except OSError as err:
        raise CheckpointError(f"{w_file} is missing or unreadable: {err}") from None
    ckpt.check_integrity(meta, blob, path / CONFIG, w_file)
    try:
        tensors = load_safetensors(blob)
        config = TeacherConfig(**meta["teacher"])
        dim, n_cond = int(meta["dim"]), int(meta["n_cond"])
        if meta.get("base", "standard_normal") != "standard_normal":
            raise ValueError(f"unknown base {meta.get('base')!r}")
    except (KeyError, TypeError, ValueError, FlowsimError) as err:
        raise CheckpointError(f"{path} is corrupted or from another flowsim: {err}") from None
    stored = SampleSet(tensors.pop("samples.x"), tensors.pop("samples.c", None)) \
        if "samples.x" in tensors else None
    dummy = SampleSet(torch.zeros(2, dim, dtype=torch.float64),
                      torch.zeros(2, n_cond, dtype=torch.float64) if n_cond else None)
    with torch.random.fork_rng(devices=[]):  # building the network must not reseed the caller's RNG
        teacher = Teacher(dummy, config)
    try:
        teacher.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weights in {w_file} do not match its config: {err}") from None
    if teacher.interpolant.name != meta.get("interpolant"):
        raise CheckpointError(f"{path}: interpolant {meta.get('interpolant')!r} does not match its config")
    teacher.samples = stored
    teacher.train_seconds = meta.get("train_seconds")
    teacher.net.requires_grad_(False)
    return teacher.to(map_location).eval()


def save_generative(gen, path: str | os.PathLike, *, samples: bool = True) -> Path:
    """Save a :class:`GenerativeFlowMap` to the folder ``path``: its teacher (``teacher/``, as
    :func:`save_teacher`), its :class:`~flowsim.FlowMap` (``flowmap/``, :func:`flowsim.save`) and a
    ``config.json`` holding both parts' checksums. Written whole or not at all; a model saved at
    ``path`` before is replaced (the whole folder). See :meth:`GenerativeFlowMap.save`."""
    from .flowmap import GenerativeFlowMap

    if not isinstance(gen, GenerativeFlowMap):
        raise CheckpointError(f"save_generative takes a GenerativeFlowMap; got {type(gen).__name__}")
    with staged_dir(path, KIND_GENERATIVE) as tmp:
        parts = {TEACHER_DIR: write_teacher(gen.teacher, _mkdir(tmp / TEACHER_DIR), samples)}
        ckpt.write_checkpoint(gen.flowmap, tmp / FLOWMAP_DIR,
                              training=getattr(gen.flowmap, "training_record", None))
        parts[FLOWMAP_DIR] = json.loads((tmp / FLOWMAP_DIR / CONFIG).read_text())["integrity"]
        metrics = getattr(gen.fit_result, "metrics", None) or {}
        _write_config(tmp, {"format_version": GENERATIVE_FORMAT, "kind": KIND_GENERATIVE,
                            "flowsim_version": __version__, "dim": gen.dim, "n_cond": gen.n_cond,
                            "parts": parts, "metrics": metrics})
    return Path(path)


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def load_generative(path: str | os.PathLike, *, map_location: str | torch.device = "cpu"):
    """Load a :class:`GenerativeFlowMap` saved by :func:`save_generative` (its map rebuilt on the
    loaded teacher's probability-flow ODE). See :meth:`GenerativeFlowMap.load`."""
    from .flowmap import GenerativeFlowMap

    path, meta = _read_config(path, KIND_GENERATIVE, "GenerativeFlowMap.load")
    if meta.get("integrity", {}).get("config_sha256") != ckpt.config_hash(meta):
        raise CheckpointError(f"{path / CONFIG} was modified after it was saved (checksum mismatch); "
                              "restore it from a backup or save the model again")
    parts = meta.get("parts", {})
    for name in (TEACHER_DIR, FLOWMAP_DIR):
        stored = stored_integrity(path / name)
        if not isinstance(parts, dict) or parts.get(name) != stored:
            raise CheckpointError(f"{path / name} is not the part saved with {path / CONFIG} (missing, "
                                  "replaced or edited); restore the folder whole or save the model again")
    teacher = load_teacher(path / TEACHER_DIR, map_location=map_location)
    fm = ckpt.load(path / FLOWMAP_DIR, system=teacher_system(teacher), map_location=map_location)
    return GenerativeFlowMap(teacher, fm)


def stored_integrity(folder: Path) -> dict | None:
    try:
        return json.loads((folder / CONFIG).read_text()).get("integrity")
    except (OSError, ValueError, AttributeError):
        return None
