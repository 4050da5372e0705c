"""What determines a training result: :class:`FitConfig` (typed, validated once, recorded whole)."""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, fields
from typing import Any

import torch

from .._utils import check_int, with_keywords
from ..errors import ConfigError
from .optim import OPTIMIZERS

__all__ = ["FitConfig", "RECIPE_128x6", "warn_if_tf32", "RESUME_MAY_DIFFER"]

#: config fields a resumed run may change: a run stopped by its time budget may be continued
#: with a new one, and checkpointing more or less often does not change the weights
RESUME_MAY_DIFFER = ("time_budget", "checkpoint_every", "cuda_graph")


@dataclass(frozen=True)
class FitConfig:
    """Every option that determines the result of :func:`flowsim.fit`, validated once.

    Frozen: make variants with :func:`dataclasses.replace`. :func:`flowsim.fit` records it whole
    in the checkpoint and refuses to resume a run written with another one. Options that do not
    change the result (device, checkpoint folder, progress bar, validation data) are keywords of
    :func:`flowsim.fit`, not fields here.

    Attributes
    ----------
    steps, batch_size, lr, weight_decay:
        Optimisation: ``warmup`` (fraction of steps) then cosine decay to zero.
    warmup:
        Fraction of ``steps`` over which the learning rate rises linearly, in ``[0, 1]``.
    clip:
        Gradient-norm clipping (positive).
    ema_decay:
        Exponential moving average of the weights, in ``[0, 1)``; the EMA model is evaluated
        and saved.
    optimizer:
        ``"muon"``: Muon on the backbone's weight matrices (all but the head's) and AdamW on the
        rest (:class:`~flowsim.train.optim.MuonAdamW`, needs torch ≥ 2.9); ``"adamw"``; or
        ``"auto"`` (default): Muon where torch has it, else AdamW. The name used is recorded in
        the training record. On the 2-core CPU, 10 minutes of Muon reached 1.6–2.5× lower
        single-jump error than AdamW on all five benchmark systems, in 51–63 % of the steps
        (docs/benchmarks.md).
    max_jump, min_jump:
        Range of jump sizes the map is for (time units). Default (``None``): the system's
        timescale (capped by the data's span) and 1/200 of it. ``max_jump`` becomes the map's
        :attr:`~flowsim.FlowMap.max_jump`, the longest jump ``odeint`` takes.
    jump_margin:
        Train gaps up to ``max_jump · (1 + jump_margin)`` where the data reach that far, in
        ``[0, 10]``. A network is least accurate at the edge of the range it was trained on: on
        Lotka–Volterra (16,000 steps) the median error at exactly ``max_jump`` was 2.6× that at
        0.85 ``max_jump`` with no margin, and 1.3× with 10 %.
    diagonal_fraction:
        Fraction of physics samples on the diagonal ``s = t``.
    log_fraction:
        Fraction of data pairs whose gaps are log-uniform (all scales); the rest are uniform,
        which puts more weight on the long jumps that are hardest to learn.
    early_fraction:
        Fraction of data pairs whose start is drawn log-uniformly in the stored index (as many
        near each trajectory's initial state as over the rest) instead of uniformly; default 1.0
        (all of them). Jumps from initial states cross the transients that a uniform draw rarely
        starts in, and a user of an initial-value problem jumps from there. On FitzHugh–Nagumo and
        Van der Pol (12,000 steps, ``benchmarks/accuracy.py --ablate early-fraction 0.25 0.5 1.0``)
        raising it from 0.25 (the previous default) to 1.0 lowered the worst median error from the
        initial states 1.6× (9.7e-3 → 6.2e-3 and 3.1e-3 → 1.9e-3) and raised it along the
        trajectories 1.2× (2.3e-3 → 2.9e-3 and 6.8e-4 → 7.9e-4): the worse of the two, what such a
        user gets, fell 1.6×. Lower it where the map is used mostly for long runs on the attractor.
        A streamed store draws gaps and starts exactly as an in-memory one
        (:mod:`flowsim.data.sampling`).
    initial_fraction:
        Fraction of data pairs that start exactly at their trajectory's initial state (whatever
        ``early_fraction`` drew), in ``[0, 1]``; default 0.3. The log-uniform early draw starts
        about one pair in nine there; where the first stored step already lies past a fast
        transient (a stiff system), only those starts see the states off the slow manifold.
        Measured at 12,000 steps (``benchmarks/accuracy.py --ablate initial-fraction 0 0.3 0.5``,
        docs/benchmarks.md "Levers"): 0.3 lowered the worst median error from the initial states
        on FitzHugh–Nagumo and Van der Pol 1.2× for up to 1.1× more along the trajectories (0.5
        was worse than 0.3 on both); on the stiff Van der Pol at μ = 1000, 0.3 and 0.5 lowered it
        2.4× and 3.9×. At 64,000 steps on nine systems (``latest-x0-initial-fraction.json``) 0.3
        lowered the worse of the two errors on seven (1.12–2.5×; Robertson then meets 1e-3) and
        raised it on two, which still meet 1e-3 (Van der Pol 3 %, the pendulum 12 %). Set 0 for
        the draw of versions before 0.3 became the default (a trainer state written before the
        field existed counts as 0: :meth:`resume_defaults`).
    val_jumps:
        Jump sizes (time units) to validate at; default: ``max(min_jump, 0.01 T)``, ``0.1 T``
        and ``max_jump`` (``T`` the system's timescale).
    val_every, log_every:
        Steps between validations (default: ``steps / 5``) and between logged rows.
    checkpoint_every:
        Steps between checkpoints (default: ``steps / 10``).
    seed:
        Seeds every random draw: same seed, same weights on CPU.
    stream:
        For a store path: stream pairs from disk chunk by chunk with
        :class:`~flowsim.data.PairSampler` (memory bounded by a few chunks) instead of loading
        the store; default (``None``): stream when its states exceed 2 GiB. Statistics, physics
        states and validation then use a bounded sample of the store. (Resuming a streamed run
        restarts the stream, so it is not bit-identical to an uninterrupted one.)
    velocity_scale:
        The map's rate scale per state (normalised units per timescale; a positive number or one
        per state): its network's output is multiplied by it. Default (``None``): measured, the
        RMS rate of the data's shortest steps, or of the vector field on prior states. Set it
        where neither is representative, e.g. a vector field trained in the same loop
        (:func:`flowsim.generative.train_jointly`).
    time_budget:
        Wall-clock seconds: stop when spent (the learning-rate schedule then follows the
        elapsed fraction of the budget, so it still decays to zero). Runs are then not
        reproducible step for step; ``steps`` becomes an upper bound.
    cuda_graph:
        On a GPU, capture the optimisation step (forward, backward, clipping, the update and
        the EMA) in a CUDA graph and replay it: one launch per step instead of hundreds
        (:mod:`flowsim.train.graphed`). Meant to be the same run to rounding (checked by
        ``tests/cuda``, not yet run on a GPU); batches are drawn as before.
        On a CPU it warns and trains eagerly. Default ``False``.

    Raises
    ------
    ConfigError
        A value of the wrong type or out of its range; the message names the field and what
        it accepts.

    Examples
    --------
    >>> import dataclasses
    >>> from flowsim.train import FitConfig
    >>> cfg = FitConfig(steps=500, lr=2e-3)
    >>> cfg.batch_size, cfg.early_fraction
    (1024, 1.0)
    >>> dataclasses.replace(cfg, seed=1).seed
    1
    >>> FitConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    steps: int = 2000
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: float = 0.05
    clip: float = 1.0
    ema_decay: float = 0.999
    optimizer: str = "auto"
    max_jump: float | None = None
    min_jump: float | None = None
    jump_margin: float = 0.1
    diagonal_fraction: float = 0.25
    log_fraction: float = 0.2
    early_fraction: float = 1.0
    initial_fraction: float = 0.3
    val_jumps: tuple[float, ...] | None = None
    val_every: int | None = None
    log_every: int = 50
    checkpoint_every: int | None = None
    seed: int = 0
    stream: bool | None = None
    time_budget: float | None = None
    cuda_graph: bool = False
    velocity_scale: float | tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every"):
            self._set(name, check_int(getattr(self, name), name, ConfigError))
        for name in ("val_every", "checkpoint_every"):
            if getattr(self, name) is not None:
                self._set(name, check_int(getattr(self, name), name, ConfigError))
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ConfigError(f"seed must be an integer; got {self.seed!r}")
        self._set("seed", int(self.seed))
        self._set("lr", _number("lr", self.lr, "a positive number", lambda v: v > 0))
        self._set("clip", _number("clip", self.clip, "a positive number", lambda v: v > 0))
        self._set("weight_decay", _number("weight_decay", self.weight_decay, "a number >= 0",
                                          lambda v: v >= 0))
        self._set("ema_decay", _number("ema_decay", self.ema_decay, "in [0, 1)",
                                       lambda v: 0 <= v < 1))
        self._set("jump_margin", _number("jump_margin", self.jump_margin, "in [0, 10]",
                                         lambda v: 0 <= v <= 10))
        for name in ("warmup", "diagonal_fraction", "log_fraction", "early_fraction", "initial_fraction"):
            self._set(name, _number(name, getattr(self, name), "in [0, 1]", lambda v: 0 <= v <= 1))
        for name in ("max_jump", "min_jump", "time_budget"):
            if getattr(self, name) is not None:
                self._set(name, _number(name, getattr(self, name), "None or a positive number",
                                        lambda v: v > 0))
        if self.max_jump is not None and self.min_jump is not None and self.min_jump >= self.max_jump:
            raise ConfigError(f"need min_jump < max_jump; got min_jump={self.min_jump}, "
                              f"max_jump={self.max_jump}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {list(OPTIMIZERS)}")
        if not isinstance(self.cuda_graph, bool):
            raise ConfigError(f"cuda_graph must be True or False; got {self.cuda_graph!r}")
        if self.stream is not None and not isinstance(self.stream, bool):
            raise ConfigError(f"stream must be None (decide by the store's size), True or False; "
                              f"got {self.stream!r}")
        if self.val_jumps is not None:
            vj = self.val_jumps
            if not isinstance(vj, (list, tuple)) or not vj:
                raise ConfigError(f"val_jumps must be None or a non-empty list of positive jump "
                                  f"sizes; got {vj!r}")
            self._set("val_jumps", tuple(_number("val_jumps", v, "a list of positive jump sizes",
                                                 lambda v: v > 0) for v in vj))
        vs = self.velocity_scale
        if vs is not None:
            what = "None, a positive number or a list of them (one per state)"
            self._set("velocity_scale", tuple(_number("velocity_scale", v, what, lambda v: v > 0) for v in vs)
                      if isinstance(vs, (list, tuple)) and vs else _number("velocity_scale", vs, what,
                                                                          lambda v: v > 0))

    @classmethod
    def resume_defaults(cls) -> dict[str, Any]:
        """The value each field had in a run written before the field existed: today's default,
        except where a later version changed it (``initial_fraction``: 0, the draw before the
        field). A trainer state whose recorded config lacks a field resumes with this value.

        Examples
        --------
        >>> from flowsim.train import FitConfig
        >>> FitConfig.resume_defaults()["initial_fraction"], FitConfig().initial_fraction
        (0.0, 0.3)
        """
        return {**cls().to_dict(), **_BEFORE_THEY_EXISTED}

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-safe dict (``val_jumps`` as a list); :meth:`from_dict` inverts it.

        Examples
        --------
        >>> from flowsim.train import FitConfig
        >>> FitConfig(val_jumps=[0.1, 1.0]).to_dict()["val_jumps"]
        [0.1, 1.0]
        """
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("val_jumps", "velocity_scale"):
            if isinstance(out[name], tuple):
                out[name] = list(out[name])
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitConfig:
        """A config from :meth:`to_dict`'s output (missing fields take their defaults).

        Raises
        ------
        ConfigError
            Unknown field names, or invalid values.

        Examples
        --------
        >>> from flowsim.train import FitConfig
        >>> FitConfig.from_dict({"steps": 10}).steps
        10
        """
        return cls.from_options(None, **d)

    @classmethod
    def from_options(cls, config: FitConfig | None = None, **options: Any) -> FitConfig:
        """``config`` (default: the defaults) with the fields named in ``options`` replaced —
        what :func:`flowsim.fit` does with its keyword options.

        Raises
        ------
        ConfigError
            A name that is not a field (the message lists the valid ones), or invalid values.

        Examples
        --------
        >>> from flowsim.train import FitConfig
        >>> FitConfig.from_options(FitConfig(steps=10), lr=5e-3).steps
        10
        """
        return with_keywords(cls, config, options, what="training", error=ConfigError,
                             hint=" (and fit's own keywords validation, device, checkpoint_dir, "
                                  "resume, progress)")

    def differences(self, other: FitConfig, ignore: tuple[str, ...] = ()) -> dict[str, tuple]:
        """``{field: (self's value, other's value)}`` for the fields that differ.

        Examples
        --------
        >>> from flowsim.train import FitConfig
        >>> FitConfig(lr=1e-3).differences(FitConfig(lr=2e-3))
        {'lr': (0.001, 0.002)}
        """
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k not in ignore and a[k] != b[k]}


#: Fields whose default changed after they were added: the value that reproduces a run written
#: before the field existed (``FitConfig.resume_defaults``).
_BEFORE_THEY_EXISTED: dict[str, Any] = {"initial_fraction": 0.0}


def _number(name: str, value: Any, what: str, ok) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be {what}; got {value!r}")
    value = float(value)
    if not math.isfinite(value) or not ok(value):
        raise ConfigError(f"{name} must be {what}; got {value!r}")
    return value


#: How ``flowsim train`` and ``flowsim quickstart`` train the 128×6 network they build: FitConfig's
#: defaults but lr 5e-3, batch 512 and 6,000 steps, the best measured per CPU second for that
#: network with Muon (docs/choosing.md, "Network size and steps"; ``benchmarks/accuracy.py`` uses
#: the same). FitConfig's own lr 1e-3 / batch 1024 are the safe defaults for a network of any size.
RECIPE_128x6 = FitConfig(lr=5e-3, batch_size=512, steps=6000)


def warn_if_tf32(device: torch.device | str) -> bool:
    """Warn (and return ``True``) when float32 matrix products on ``device`` may run in TF32.

    TF32's 10-bit mantissa (~1e-3) is as coarse as the accuracy a jump is trained for;
    :func:`flowsim.fit` calls this for a float32 map. Only CUDA devices are affected.

    Arguments
    ---------
    device:
        The device training runs on.

    Examples
    --------
    >>> from flowsim.train import warn_if_tf32
    >>> warn_if_tf32("cpu")
    False
    """
    device = torch.device(device)
    if device.type != "cuda":
        return False
    if torch.backends.cuda.matmul.allow_tf32 or torch.get_float32_matmul_precision() != "highest":
        warnings.warn(
            "TF32 matrix products are enabled (torch.backends.cuda.matmul.allow_tf32 or "
            "torch.set_float32_matmul_precision): they round to ~1e-3 and limit the accuracy of "
            "a float32 flow map; set torch.backends.cuda.matmul.allow_tf32 = False and "
            "torch.set_float32_matmul_precision('highest') for training",
            stacklevel=3,
        )
        return True
    return False
