"""Checkpoints: safetensors weights + JSON config; loading never executes code."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as dump_safetensors

from .._utils import atomic_path
from .._version import __version__
from ..errors import CheckpointError, FlowsimError
from ..maps.ensemble import FlowMapEnsemble
from ..maps.flowmap import FlowMap, FlowMapConfig
from ..maps.transforms import StateTransform
from ..systems.base import ODESystem
from ..systems.imports import rebuild_system
from ..systems.registry import get_system
from .checkpoint_folder import CONFIG, ENSEMBLE, TRAINER_STATE, WEIGHTS, check_target, member_dir

__all__ = ["save", "load", "FORMAT_VERSION"]

FORMAT_VERSION = 1


def save(flowmap: FlowMap | FlowMapEnsemble, path: str | os.PathLike, *,
         training: dict[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Save a flow map to the directory ``path`` (``model.safetensors`` + ``config.json``).

    Each file is written to a temporary name and renamed, so an interrupted save leaves the
    previous checkpoint intact. A :class:`~flowsim.FlowMapEnsemble` is saved as one checkpoint
    per member (``path/member-<k>``) and an ``ensemble.json`` listing them, written last.

    Arguments
    ---------
    flowmap:
        The model to save (its current weights; the trainer saves the EMA weights).
    path:
        Target directory (created if needed).
    training:
        JSON-serialisable training record (config, final metrics) stored beside the config.
    overwrite:
        Replace a checkpoint of another map in ``path``, or a training run's checkpoint, and
        remove that run's files (trainer state, log, metrics, report, ensemble members).
        Without it such a folder is refused: ``fit(checkpoint_dir=path)`` or ``flowsim train
        --out path`` would otherwise resume the old run, not this map. The same map saved
        again over a plain saved checkpoint needs no ``overwrite``.

    Returns
    -------
    Path
        The checkpoint directory.

    Raises
    ------
    CheckpointError
        ``path`` is a file, or holds another map's or a training run's checkpoint (without
        ``overwrite``).

    Examples
    --------
    >>> import flowsim, tempfile
    >>> fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1)
    >>> d = flowsim.save(fm, tempfile.mkdtemp())
    >>> flowsim.load(d).config.system
    'lotka_volterra'
    """
    _check_type(flowmap)
    check_target(Path(path), flowmap, overwrite)
    return write_checkpoint(flowmap, path, training=training)


def write_checkpoint(flowmap: FlowMap | FlowMapEnsemble, path: str | os.PathLike, *,
                     training: dict[str, Any] | None = None) -> Path:
    """:func:`save` without its checks of what ``path`` holds: how a training run writes its
    map beside its own trainer state."""
    _check_type(flowmap)
    if isinstance(flowmap, FlowMapEnsemble):
        return _save_ensemble(flowmap, path, training)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in flowmap.state_dict().items()}
    meta = {
        "format_version": FORMAT_VERSION,
        "flowsim_version": _version(),
        "flowmap": flowmap.config.to_dict(),
        "system": flowmap.system.describe(),
        "training": training or {},
    }
    blob = dump_safetensors(tensors)
    meta = json.loads(json.dumps(meta, default=_json_default))
    meta["integrity"] = {"config_sha256": config_hash(meta),
                         "weights_sha256": hashlib.sha256(blob).hexdigest()}
    # both files are written in full before either replaces its predecessor: a full disk or a
    # crash while writing leaves the previous checkpoint whole (the checksums catch the rest)
    with atomic_path(path / WEIGHTS, error=CheckpointError) as tmp_w:
        tmp_w.write_bytes(blob)
        with atomic_path(path / CONFIG, error=CheckpointError) as tmp_c:
            tmp_c.write_text(json.dumps(meta, indent=2))
    (path / ENSEMBLE).unlink(missing_ok=True)  # this folder now holds one map, not an ensemble
    return path


def load(path: str | os.PathLike, *, system: ODESystem | None = None,
         map_location: str | torch.device = "cpu") -> FlowMap | FlowMapEnsemble:
    """Load a flow map saved by :func:`save`, :func:`flowsim.fit` or
    :func:`flowsim.train.fit_ensemble`.

    Arguments
    ---------
    path:
        Checkpoint directory (or its ``config.json`` / ``model.safetensors``).
    system:
        The ODESystem (or a catalogue name), needed for systems that are not in the registry
        (``from_callable``); checked against the stored name and state layout.
    map_location:
        Device to put the weights on.

    Returns
    -------
    FlowMap or FlowMapEnsemble
        Ready to use, in evaluation mode, with ``.training_record`` holding the training config
        (an ensemble where ``path`` holds an ``ensemble.json``).

    Raises
    ------
    CheckpointError
        Missing or corrupted files, an unknown format, or a ``system`` that does not match.

    Examples
    --------
    >>> import tempfile, torch, flowsim
    >>> fm = flowsim.FlowMap("lotka_volterra", width=16, depth=1)
    >>> path = flowsim.save(fm, tempfile.mkdtemp() + "/lv")
    >>> back = flowsim.load(path)
    >>> x = torch.ones(3, 2)
    >>> bool(torch.equal(back.jump(x, 0.0, 1.0), fm.jump(x, 0.0, 1.0)))
    True
    """
    path = Path(path)
    if path.is_file():
        path = path.parent
    if isinstance(system, str):  # a catalogue name, as everywhere else
        system = get_system(system)
    elif system is not None and not isinstance(system, ODESystem):
        raise CheckpointError(f"system must be an ODESystem or a catalogue name; got "
                              f"{type(system).__name__}")
    if (path / ENSEMBLE).exists():
        return _load_ensemble(path, system, map_location)
    cfg_file, w_file = path / CONFIG, path / WEIGHTS
    if not cfg_file.exists() or not w_file.exists():
        raise CheckpointError(
            f"{path} is not a flowsim checkpoint: expected {CONFIG} and {WEIGHTS} inside it"
        )
    try:
        meta = json.loads(cfg_file.read_text())
        cfg = FlowMapConfig(**meta["flowmap"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{cfg_file} is corrupted or not a flowsim config: {err}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {meta.get('format_version')} is not supported by this flowsim "
            f"(format {FORMAT_VERSION}); retrain or use the flowsim version that wrote it"
        )
    blob = w_file.read_bytes()
    check_integrity(meta, blob, cfg_file, w_file)
    if system is None:
        try:
            system = rebuild_system(cfg.system, cfg.system_kwargs, meta.get("system", {}).get("import_path"),
                                    recorded_in="the checkpoint", sbml=meta.get("system", {}).get("sbml"))
        except Exception as err:  # noqa: BLE001 - reported as a checkpoint problem
            hint = "" if "pass system=" in str(err) else (
                "; pass system=… (e.g. the from_callable system it was trained on)")
            raise CheckpointError(
                f"checkpoint is for system {cfg.system!r}, which is not registered here ({err}){hint}"
            ) from None
    check_compatible(cfg, system)
    try:
        tensors = {k: v.to(map_location) for k, v in load_safetensors(blob).items()}
    except Exception as err:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"{w_file} is corrupted: {err}") from None
    n_log = len(cfg.log_states)
    transform = StateTransform(torch.zeros(cfg.dim), torch.ones(cfg.dim),
                               torch.tensor(cfg.log_states or [False] * cfg.dim)[:n_log or cfg.dim])
    fm = FlowMap(
        system, width=cfg.width, depth=cfg.depth, activation=cfg.activation, backbone=cfg.backbone,
        n_frequencies=cfg.n_frequencies, jump_scales=cfg.jump_scales, tangent=cfg.tangent,
        decay=cfg.decay, relax=cfg.relax,
        backward=cfg.backward,
        max_jump=cfg.max_jump, state_transform=transform,
        dtype=torch.float64 if cfg.dtype == "float64" else torch.float32, seed=None,
    )
    fm.config.log_states_fixed = cfg.log_states_fixed  # as trained, not as rebuilt here
    try:
        fm.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"weights in {w_file} do not match the config: {err}") from None
    fm.to(map_location)
    fm.training_record = meta.get("training", {})
    return fm.eval()


def _save_ensemble(ens: FlowMapEnsemble, path: str | os.PathLike,
                   training: dict[str, Any] | None) -> Path:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    # an interrupted save must not load as a mix of old and new members: no ensemble.json
    # until every member is written
    (path / ENSEMBLE).unlink(missing_ok=True)
    records = ens.training_record.get("members", [])
    for k, member in enumerate(ens.members):
        record = records[k] if k < len(records) else getattr(member, "training_record", {})
        write_checkpoint(member, member_dir(path, k), training=record)
    return write_ensemble_index(path, len(ens), ens.config.system, training)


def _check_type(flowmap: Any) -> None:
    if not isinstance(flowmap, (FlowMap, FlowMapEnsemble)):
        raise CheckpointError(f"save() takes a flowsim.FlowMap or FlowMapEnsemble; got "
                              f"{type(flowmap).__name__}")


def write_ensemble_index(path: str | os.PathLike, n_members: int, system: str,
                         training: dict[str, Any] | None) -> Path:
    """Write ``path/ensemble.json`` over member checkpoints already saved in ``path/member-<k>``
    (what :func:`save` does last for an ensemble, and :func:`~flowsim.fit_ensemble` once its
    members' own checkpoints are written)."""
    path = Path(path)
    meta = {"format_version": FORMAT_VERSION, "flowsim_version": _version(), "kind": "ensemble",
            "members": [member_dir(".", k).name for k in range(n_members)],
            "system": system, "training": training or {}}
    with atomic_path(path / ENSEMBLE, error=CheckpointError) as tmp:
        tmp.write_text(json.dumps(meta, indent=2, default=_json_default))
    return path


def _load_ensemble(path: Path, system: ODESystem | None,
                   map_location: str | torch.device) -> FlowMapEnsemble:
    try:
        meta = json.loads((path / ENSEMBLE).read_text())
        names = [str(n) for n in meta["members"]]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path / ENSEMBLE} is corrupted: {err}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"ensemble format {meta.get('format_version')} is not supported by this flowsim "
            f"(format {FORMAT_VERSION}); retrain or use the flowsim version that wrote it")
    # member folders are named member-<k>, inside path: nothing else is loaded from here
    if any(not re.fullmatch(r"member-\d+", n) for n in names):
        raise CheckpointError(f"{path / ENSEMBLE} lists member folders other than member-<k> "
                              f"inside {path}: {names}")
    if any((path / n / ENSEMBLE).exists() for n in names):
        raise CheckpointError(f"{path / ENSEMBLE} lists an ensemble as a member")
    members = [load(path / n, system=system, map_location=map_location) for n in names]
    try:
        ens = FlowMapEnsemble(members)
    except FlowsimError as err:
        raise CheckpointError(f"the members in {path} do not form an ensemble: {err}") from None
    training = meta.get("training", {})
    ens.training_record = {**(training if isinstance(training, dict) else {}),
                           "members": [m.training_record for m in members]}
    return ens.eval()


def config_hash(meta: dict[str, Any]) -> str:
    """SHA-256 of a checkpoint's config (everything in ``config.json`` but ``integrity``); the
    ``config_sha256`` that :func:`check_integrity` verifies."""
    body = {k: v for k, v in meta.items() if k != "integrity"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_integrity(meta: dict[str, Any], blob: bytes, cfg_file: Path, w_file: Path) -> None:
    """Refuse a ``config.json`` or weights file changed since :func:`save` wrote them
    (checkpoints written before the hashes were recorded load unchecked); also used by the
    checkpoints of :mod:`flowsim.generative`, whose ``integrity`` entry has the same form."""
    sums = meta.get("integrity")
    if sums is None:
        return
    if not isinstance(sums, dict):
        raise CheckpointError(f"{cfg_file} has a malformed 'integrity' entry; the checkpoint was "
                              "edited: retrain, or restore the files from a backup")
    how = ("if the edit was meant, save the map again with flowsim.save (load the original "
           "files first); otherwise restore the checkpoint from a backup or retrain")
    if sums.get("config_sha256") != config_hash(meta):
        raise CheckpointError(f"{cfg_file} was modified after it was saved (its checksum does not "
                              f"match; e.g. an edited system, dtype or layout): {how}")
    if sums.get("weights_sha256") != hashlib.sha256(blob).hexdigest():
        raise CheckpointError(f"{w_file} does not match the checksum recorded in {cfg_file} "
                              f"(truncated, corrupted or replaced weights): {how}")


def check_compatible(cfg: FlowMapConfig, system: ODESystem) -> None:
    """Refuse a checkpoint whose system, state layout or parameters differ from ``system``."""
    problems = []
    if cfg.system != system.name:
        problems.append(f"system {cfg.system!r} != {system.name!r}")
    if list(cfg.state_names) != list(system.state_names):
        problems.append(f"states {cfg.state_names} != {list(system.state_names)}")
    if list(cfg.param_names) != list(system.param_names):
        problems.append(f"parameters {cfg.param_names} != {list(system.param_names)}")
    if problems:
        raise CheckpointError(
            "checkpoint does not match the system: " + "; ".join(problems)
            + ". Load it with the system it was trained on."
        )


def save_trainer_state(path: Path, state: dict[str, Any]) -> None:
    """Write a training run's state (weights, optimiser, EMA, random streams, history, the
    run's ``config`` and ``run`` record as JSON strings) to ``path/trainer_state.pt``."""
    buffer = io.BytesIO()  # serialised in memory: a full disk surfaces as an OSError below
    torch.save(state, buffer)
    with atomic_path(path / TRAINER_STATE, error=CheckpointError) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def load_trainer_state(path: Path, system: str, config: dict[str, Any], run: dict[str, Any],
                       may_differ: tuple[str, ...] = (), defaults: dict[str, Any] | None = None
                       ) -> dict[str, Any]:
    """Read ``path/trainer_state.pt`` and refuse it unless it is a run of ``system`` with the
    same ``config`` (every field but ``may_differ``) and the same objectives. A field the saved
    config lacks (written before the field existed) counts as its value in ``defaults``.

    A state written before configs were recorded whole holds only the ``run`` record: each
    key it holds must then agree with ``run``."""
    try:
        state = torch.load(path / TRAINER_STATE, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path / TRAINER_STATE} is corrupted or not a trainer state "
                              f"({type(err).__name__}: {first[:200]}); delete it to restart the run, "
                              f"or pass resume=False") from None
    if state.get("system") != system:
        raise CheckpointError(
            f"{path} holds a training run of {state.get('system')!r}, not {system!r}; "
            "choose another checkpoint_dir or pass resume=False")
    saved_run = json.loads(state["run"])
    saved_run.setdefault("optimizer", "adamw")  # checkpoints from before the option
    run = json.loads(json.dumps(run, default=_json_default))
    if "config" in state:
        saved_cfg = {**(defaults or {}), **json.loads(state["config"])}
        keys = [k for k in sorted(set(saved_cfg) | set(config)) if k not in may_differ]
        diff = {k: (saved_cfg.get(k), config.get(k)) for k in keys if saved_cfg.get(k) != config.get(k)}
        keys = ("objectives", "weights", "optimizer")
    else:  # an older checkpoint: the keys it recorded must agree
        diff = {}
        keys = tuple(k for k in saved_run if k in run and k not in may_differ and k != "config")
    diff.update({k: (saved_run.get(k), run.get(k)) for k in keys if saved_run.get(k) != run.get(k)})
    if diff:
        raise CheckpointError(
            f"{path} was written by a run with other settings: "
            + "; ".join(f"{k}: checkpoint {a!r}, now {b!r}" for k, (a, b) in diff.items())
            + ". Resume with the same settings, or pass resume=False / another checkpoint_dir")
    return state


def _version() -> str:
    return __version__


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)
