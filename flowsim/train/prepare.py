"""Data preparation, the step before the training loop: :func:`prepare` → :class:`PreparedData`."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..maps.flowmap import FlowMap
from ..maps.transforms import StateTransform
from ..solve.options import SolverOptions
from ..solve.reference import reference_solve
from ..solve.solution import Solution
from ._provenance import check_belongs, fingerprint
from .bank import TrajectoryBank
from .config import FitConfig

__all__ = ["PreparedData", "prepare", "as_bank"]

#: stores whose states take more memory than this stream from disk instead of being loaded
STREAM_ABOVE_BYTES = 2 * 2**30
#: trajectories loaded from a streamed store for statistics, physics states and validation
STREAM_PROBE = 512


@dataclass
class PreparedData:
    """What :func:`prepare` gives the training loop: data, ranges and scales, all decided.

    Attributes
    ----------
    train:
        Training trajectories in memory (for a streamed store: a bounded sample of its training
        split), or ``None`` (physics objectives only).
    validation:
        Held-out trajectories the map is judged on.
    stream:
        The :class:`~flowsim.data.PairSampler` that streams training pairs from a store, or
        ``None`` (pairs come from ``train``).
    max_jump, min_jump:
        The range of jumps the map is for (time units), resolved from the config and the data.
    train_max_jump:
        Longest gap trained (``max_jump`` plus the config's ``jump_margin`` where data reach).
    val_jumps:
        The jump sizes validated at (those the validation data reach).
    state_transform:
        The state normalisation fitted to ``train`` (``None`` without data: the map keeps its own).
    velocity_scale:
        RMS rate of change of each normalised state per timescale (the map's output scale).
    generator:
        The random stream the loop continues to draw from (seeded by the config's ``seed``).
    split_by_store:
        Whether ``train`` / ``validation`` come from a store's own train / validation split
        (each caller of :func:`prepare` on that store gets the same split).
    fingerprint:
        A cheap fingerprint of ``data`` and ``validation`` as given (system, shapes, digests of
        a sample of the values), recorded with the trainer state: a resumed run must continue
        on the same data.

    Examples
    --------
    >>> from flowsim.train import PreparedData
    >>> "velocity_scale" in PreparedData.__dataclass_fields__
    True
    """

    train: TrajectoryBank | None
    validation: TrajectoryBank
    stream: Any
    max_jump: float
    min_jump: float
    train_max_jump: float
    val_jumps: list[float]
    state_transform: StateTransform | None
    velocity_scale: Tensor
    generator: torch.Generator
    split_by_store: bool = False
    fingerprint: dict[str, Any] | None = None


def prepare(flowmap: FlowMap, data: Any, config: FitConfig | None = None,
            validation: Any = None) -> PreparedData:
    """Turn ``data`` into what the training loop draws from, without changing ``flowmap``.

    The data are coerced to a :class:`~flowsim.train.TrajectoryBank` (or a stream from a large
    store), split into training and validation trajectories (a store's own split, else 10 % of
    the trajectories held out, else a fresh reference solve from the system's prior), and the
    jump range, the state normalisation and the velocity scale are fitted to them.
    :func:`flowsim.fit` is this step followed by the loop; it hands the ranges and scales to
    the map with :meth:`~flowsim.FlowMap.configure_for_data`.

    Arguments
    ---------
    flowmap:
        The map to be trained (read, not modified: its system, timescale, device, log states).
    data:
        A store path, an xarray Dataset, a :class:`~flowsim.Solution`, a
        :class:`~flowsim.train.TrajectoryBank`, or ``None`` (physics objectives only).
    config:
        The :class:`~flowsim.train.FitConfig` (its ``seed``, jump range, ``stream``,
        ``batch_size``, ``early_fraction``, ``val_jumps`` are used); default: the defaults.
    validation:
        Held-out trajectories (same types as ``data``); default: see above.

    Returns
    -------
    PreparedData

    Raises
    ------
    ConfigError
        Data of an unknown type, a Solution or TrajectoryBank of another system (name, numbers
        of states or parameters), or a jump range that is empty (``min_jump >= max_jump``).
    StoreError
        A store or Dataset of another system (name, state or parameter names, units), or a
        damaged store.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.train import FitConfig, prepare
    >>> lv = flowsim.get_system("lotka_volterra")
    >>> fm, times = flowsim.FlowMap(lv, width=8, depth=1), torch.linspace(0, 10, 41)
    >>> prep = prepare(fm, flowsim.reference_solve(lv, lv.sample_initial(20, 0), times),
    ...                FitConfig(max_jump=2.0))
    >>> len(prep.train), len(prep.validation), prep.max_jump
    (18, 2, 2.0)
    """
    config = config if config is not None else FitConfig()
    fm = flowmap
    store_path, split_by_store = None, False
    if isinstance(data, (str, os.PathLike)):
        from ..data import open_store

        store_path, data = data, open_store(data)
    if isinstance(validation, (str, os.PathLike)):
        from ..data import open_store

        validation = open_store(validation)
    check_belongs(fm.system, data, "training data")
    check_belongs(fm.system, validation, "validation data")
    prints = {"data": fingerprint(data), "validation": fingerprint(validation)}
    streaming = False
    if store_path is not None:
        streaming = (config.stream if config.stream is not None
                     else data["x"].nbytes > STREAM_ABOVE_BYTES)
    if hasattr(data, "data_vars") and validation is None and "trajectory" in data.dims:
        # a store: train on its train split, validate on its validation split; its test split
        # stays unseen for `flowsim evaluate --store`
        data, validation = store_splits(data, probe=STREAM_PROBE if streaming else None)
        split_by_store = validation is not None
    bank = as_bank(data)
    g = torch.Generator().manual_seed(config.seed)
    val_bank = as_bank(validation)
    if bank is not None and val_bank is None and len(bank) >= 10:
        bank, val_bank = bank.split(0.1, g)
    lo, hi, train_hi = _jump_range(fm, bank, config)
    if val_bank is None:
        val_bank = default_validation(fm, hi, config.seed)
    T = fm.config.timescale
    vj = list(config.val_jumps or sorted({round(v, 12) for v in (max(lo, 0.01 * T), 0.1 * T, hi)}))
    vj = [v for v in vj if v <= val_bank.max_gap]
    transform = None
    if bank is not None:  # normalise with the statistics of the training data
        # in the map's own buffer dtype, as the map will hold it (the velocity scale is
        # computed with exactly the transform the map trains with)
        transform = StateTransform.fit(bank.x, log=_log_mask(fm, bank)).to(
            device=fm.device, dtype=fm.state_transform.mean.dtype)
    stream = None
    if streaming:  # pairs stream from the store chunk by chunk; `bank` is a bounded probe of it
        from ..data import PairSampler

        stream = PairSampler(store_path, batch_size=config.batch_size, split="train",
                             min_gap=lo, max_gap=train_hi, gaps="log-uniform", seed=config.seed,
                             log_fraction=config.log_fraction,
                             early_fraction=config.early_fraction,
                             initial_fraction=config.initial_fraction, drop_last=True)
    if config.velocity_scale is not None:  # given: broadcast to the states (the map checks the count)
        vs = torch.as_tensor(config.velocity_scale, dtype=torch.float64).expand(fm.config.dim).clone() \
            if isinstance(config.velocity_scale, float) else torch.tensor(config.velocity_scale,
                                                                         dtype=torch.float64)
    else:
        vs = velocity_scale(fm, transform if transform is not None else fm.state_transform, bank,
                            config.seed)
    return PreparedData(train=bank, validation=val_bank, stream=stream, max_jump=hi, min_jump=lo,
                        train_max_jump=train_hi, val_jumps=vj, state_transform=transform,
                        velocity_scale=vs, generator=g, split_by_store=split_by_store,
                        fingerprint=prints)


def _jump_range(fm: FlowMap, bank: TrajectoryBank | None, config: FitConfig
                ) -> tuple[float, float, float]:
    """``(min_jump, max_jump, longest trained gap)`` from the config, capped by the data."""
    hi = config.max_jump if config.max_jump is not None else fm.config.timescale
    if bank is not None:
        if config.max_jump is not None and config.max_jump > bank.max_gap * (1 + 1e-9):
            warnings.warn(f"max_jump={config.max_jump:.4g} is longer than the data reach "
                          f"({bank.max_gap:.4g}): the map is trained up to {bank.max_gap:.4g} only "
                          f"(its max_jump). Simulate a longer horizon to train longer jumps",
                          UserWarning, stacklevel=4)
        hi = min(hi, bank.max_gap)
    lo = config.min_jump if config.min_jump is not None else hi / 200
    if bank is not None:
        lo = max(lo, bank.min_step)
    if not 0 < lo < hi:
        raise ConfigError(
            f"need 0 < min_jump < max_jump; got {lo:.4g}, {hi:.4g} (max_jump is capped by the "
            f"data's time span, min_jump raised to their shortest stored step). Pass a longer "
            f"max_jump (flowsim train --max-jump), store a finer time grid, or give the system's "
            f"timescale where it was estimated too short (its default max_jump is "
            f"{fm.config.timescale:.4g}): from_sbml(…, timescale=…), from_callable(…, "
            f"timescale=…), flowsim simulate --sbml … --timescale")
    train_hi = hi * (1 + config.jump_margin)
    if bank is not None:
        if config.max_jump is not None and config.jump_margin > 0 \
                and config.max_jump <= bank.max_gap * (1 + 1e-9) < train_hi:
            warnings.warn(f"the data reach {bank.max_gap:.4g}, not max_jump·(1 + jump_margin) = "
                          f"{train_hi:.4g}: the jumps near max_jump={hi:.4g} train with "
                          f"{max(bank.max_gap / hi - 1, 0):.0%} of margin instead of "
                          f"{config.jump_margin:.0%}, and their error is higher (docs/choosing.md). "
                          f"Simulate a longer horizon or lower max_jump", UserWarning, stacklevel=4)
        train_hi = max(hi, min(train_hi, bank.max_gap))
    return lo, hi, train_hi


def as_bank(data: Any) -> TrajectoryBank | None:
    """``data`` (a store path, an xarray Dataset, a Solution, a TrajectoryBank or ``None``) as a
    :class:`~flowsim.train.TrajectoryBank` in memory (``None`` stays ``None``).

    Arguments
    ---------
    data:
        Trajectories, or ``None``.

    Raises
    ------
    ConfigError
        Any other type.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.train import as_bank
    >>> sys = flowsim.get_system("lotka_volterra")
    >>> len(as_bank(flowsim.reference_solve(sys, sys.sample_initial(4, 0), torch.linspace(0, 1, 5))))
    4
    """
    if data is None or isinstance(data, TrajectoryBank):
        return data
    if isinstance(data, Solution):
        return TrajectoryBank.from_solution(data)
    if isinstance(data, (str, os.PathLike)):
        from ..data import open_store

        return TrajectoryBank.from_dataset(open_store(data))
    if hasattr(data, "data_vars"):  # an xarray Dataset
        return TrajectoryBank.from_dataset(data)
    raise ConfigError(
        f"data must be a store path, an xarray Dataset, a Solution or a TrajectoryBank; "
        f"got {type(data).__name__}"
    )


def store_splits(ds, probe: int | None = None):
    """A store's ``(train, validation)`` splits as Datasets; ``(ds, None)`` when it is too
    small to have both. ``probe`` bounds the trajectories kept (a sample of a streamed store)."""
    import numpy as np

    from ..data import split_of

    codes = split_of(np.arange(ds.sizes["trajectory"]))
    train, val = np.flatnonzero(codes == 0), np.flatnonzero(codes == 1)
    if probe is not None:  # streaming: only a bounded sample is loaded into memory
        train, val = train[:probe], val[: max(probe // 2, 1)]
    if len(train) == 0 or len(val) == 0:  # tiny stores: fall back to a random split
        return ds, None
    return ds.isel(trajectory=train), ds.isel(trajectory=val)


def default_validation(fm: FlowMap, max_jump: float, seed: int) -> TrajectoryBank:
    """96 fresh reference trajectories over ``2 max_jump`` from the system's prior (physics
    training, or data too few to hold any out)."""
    sys_ = fm.system
    g = torch.Generator().manual_seed(seed + 99991)
    n = 96
    x0 = sys_.sample_initial(n, g)
    p = fm.sample_params(n, g)
    t = torch.linspace(0, 2 * max_jump, 65, dtype=torch.float64)
    sol = reference_solve(sys_, x0, t, p, SolverOptions.reference(sys_, rtol=1e-9, atol=1e-11))
    return TrajectoryBank.from_solution(sol)


def _log_mask(fm: FlowMap, bank: TrajectoryBank) -> list[bool]:
    """Log-standardise states the map already logs, and positive states whose data span more
    than two decades (populations, concentrations) — unless the system's initial states may
    start at zero (SIR's recovered class, a species not yet made): a user jumps from there, and
    a log-standardised state cannot be zero. A map whose log states the user chose keeps them."""
    mask = fm.state_transform.log_mask.tolist()
    if fm.system.positive and not fm.config.log_states_fixed:
        flat = bank.x.reshape(-1, bank.x.shape[-1])
        lo, hi = flat.amin(0), flat.amax(0)
        starts = [float(a) for a, _ in fm.system.initial_box] if fm.system.initial_box else [1.0] * len(mask)
        mask = [m or bool(a > 0 and b > 100 * a and z > 0)
                for m, a, b, z in zip(mask, lo.tolist(), hi.tolist(), starts)]
    return mask


@torch.no_grad()
def velocity_scale(fm: FlowMap, tr: StateTransform, bank: TrajectoryBank | None, seed: int) -> Tensor:
    """RMS rate of change of each state normalised by ``tr`` per timescale, from the shortest
    stored steps (data) or from the vector field on prior states."""
    g = torch.Generator().manual_seed(seed + 7)
    T = fm.config.timescale
    dev = fm.device
    if bank is not None:
        b = bank.sample_pairs(4096, g, min_gap=bank.min_step, max_gap=bank.min_step)
        rate = (tr.encode(b.x_t.to(dev)) - tr.encode(b.x_s.to(dev))) / ((b.t - b.s) / T).to(dev)[:, None]
    else:
        sys_ = fm.system
        x, p = sys_.sample_initial(4096, g), fm.sample_params(4096, g)
        x, p = x.to(dev), p.to(dev)
        dx = sys_.vector_field(torch.zeros(4096, dtype=torch.float64, device=dev), x, p)
        if bool(tr.log_mask.any()):
            dx = torch.where(tr.log_mask, dx / x, dx)
        rate = dx / tr.std.to(dx.dtype) * T
    rate = rate[torch.isfinite(rate).all(dim=1)]
    return rate.pow(2).mean(dim=0).sqrt().clamp_min(1e-3).to(torch.float64)
