"""The :class:`FlowMap` module: ``X(s, t, x; p) = x + (t - s) v_θ(s, t - s, x̂, p̂)``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .._utils import as_generator
from ..errors import ConfigError
from ..systems.base import ODESystem
from ..systems.registry import get_system
from .jump_api import JumpAPI
from .networks import FourierEmbedding, make_backbone
from .transforms import ParamTransform, StateTransform

__all__ = ["FlowMap", "FlowMapConfig"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: typical largest displacement of a jump, in standard deviations of the states
_MAX_DISPLACEMENT = 4.0


@dataclass
class FlowMapConfig:
    """Everything needed to rebuild a :class:`FlowMap` (stored as JSON in checkpoints).

    Examples
    --------
    >>> import flowsim
    >>> cfg = flowsim.FlowMap("lotka_volterra", width=16, depth=1).config
    >>> cfg.system, cfg.dim, cfg.state_names, cfg.to_dict()["width"]
    ('lotka_volterra', 2, ['x', 'y'], 16)
    """

    system: str
    system_kwargs: dict[str, Any]
    dim: int
    state_names: list[str]
    param_names: list[str]
    autonomous: bool
    timescale: float
    width: int = 256
    depth: int = 4
    activation: str = "gelu"
    backbone: str = "mlp"
    n_frequencies: int = 8
    jump_scales: int = 0
    tangent: bool = False
    backward: bool = False
    max_jump: float | None = None
    log_states: list[bool] = field(default_factory=list)
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _param_range(sys_: ODESystem, spec: str | dict[str, Any]) -> tuple[Tensor, Tensor]:
    """``(low, high)`` of each parameter for ``FlowMap(param_range=spec)``."""
    lo = torch.tensor([q.prior[0] for q in sys_.parameters], dtype=torch.float64)
    hi = torch.tensor([q.prior[1] for q in sys_.parameters], dtype=torch.float64)
    if isinstance(spec, str):
        if spec == "prior":
            return lo, hi
        if spec == "default":
            d = sys_.default_params()
            return d.clone(), d.clone()
        raise ConfigError(f"param_range must be 'prior', 'default' or a dict; got {spec!r}")
    if not isinstance(spec, dict):
        raise ConfigError(f"param_range must be 'prior', 'default' or a dict; got {type(spec).__name__}")
    names = list(sys_.param_names)
    for name, value in spec.items():
        if name not in names:
            raise ConfigError(f"param_range names unknown parameter {name!r}; {sys_.name} has {names}")
        try:
            pair = (value, value) if isinstance(value, (int, float)) else (value[0], value[1])
            a, b = float(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            raise ConfigError(
                f"param_range[{name!r}] must be a number or (low, high); got {value!r}") from None
        if not (math.isfinite(a) and math.isfinite(b) and a <= b):
            raise ConfigError(f"param_range[{name!r}] must be finite with low <= high; got {value!r}")
        i = names.index(name)
        lo[i], hi[i] = a, b
    return lo, hi


class FlowMap(JumpAPI, nn.Module):
    """A neural flow map ``X(s, t, x; p)`` of an :class:`~flowsim.ODESystem`.

    ``X = x + (t - s) v`` in normalised coordinates, so ``X(s, s, x) = x`` holds exactly.
    Autonomous systems condition on ``t - s`` only; parameters are network inputs, so one
    map covers a whole prior of parameters. With ``tangent=True`` the known vector field is
    built in: ``X = x + Δ b(s, x) + Δ² w``, so the map is exact to first order in the jump.

    Arguments
    ---------
    system:
        The system (or its catalogue name).
    width, depth, activation, backbone:
        Network size (``"mlp"`` or ``"resnet"``; ``"gelu"``, ``"silu"``, ``"tanh"``, ``"softplus"``).
    n_frequencies:
        Fourier frequencies of the time embedding.
    jump_scales:
        Multi-scale decay features ``1 − exp(−|t − s|/τ)`` of the jump, for ``τ`` from 10⁻³ to 1
        timescale (0: Fourier features only), for transients much faster than the shortest
        jump the Fourier features resolve. Measured (``benchmarks/accuracy.py --ablate
        jump-scales 6``, 12,000 steps): no gain on FitzHugh–Nagumo or Van der Pol from their
        initial states (9.7e-3 → 9.5e-3, 3.1e-3 → 3.1e-3), whose transients last a few percent
        of the timescale; hence off by default.
    tangent:
        Build the system's vector field into the map (needs ``b``; off for data-only use).
    backward:
        Whether backward jumps (``t < s``) are allowed (train them too).
    max_jump:
        Longest jump a single evaluation should take (time units); ``odeint`` splits longer
        intervals. Default: the system's timescale (the trainer sets it to the longest gap trained).
    state_transform:
        A fitted :class:`StateTransform`; default: fitted on the system's initial-state prior,
        with log-standardisation of positive states spanning more than two decades.
    dtype:
        ``torch.float32`` (default) or ``torch.float64``.
    seed:
        Seed for the initial weights (``None``: torch's current state).
    param_range:
        The parameters the map is for: ``"prior"`` (default, each parameter's prior range — one
        map for the whole prior), ``"default"`` (the system's default parameters only), or a
        dict ``{name: value or (low, high)}`` overriding some parameters' ranges (the others
        keep their priors). Jumps with parameters outside it are refused unless
        ``allow_extrapolation=True``.

    Raises
    ------
    ConfigError
        Bad sizes or names.

    Examples
    --------
    >>> import torch, flowsim
    >>> fm = flowsim.FlowMap("lotka_volterra", width=32, depth=2)
    >>> x = torch.rand(5, 2) + 0.5
    >>> bool((fm.jump(x, 0.0, 0.0) == x).all())
    True
    >>> fm.jump(x, 0.0, torch.linspace(0.1, 1.0, 5)).shape
    torch.Size([5, 2])
    """

    def __init__(
        self,
        system: ODESystem | str,
        *,
        width: int = 256,
        depth: int = 4,
        activation: str = "gelu",
        backbone: str = "mlp",
        n_frequencies: int = 8,
        jump_scales: int = 0,
        tangent: bool = False,
        backward: bool = False,
        max_jump: float | None = None,
        state_transform: StateTransform | None = None,
        log_states: bool | list[bool] | str = "auto",
        dtype: torch.dtype = torch.float32,
        seed: int | None = 0,
        param_range: str | dict[str, Any] = "prior",
    ) -> None:
        super().__init__()
        self.system = get_system(system) if isinstance(system, str) else system
        if dtype not in _DTYPES.values():
            raise ConfigError(f"dtype must be torch.float32 or torch.float64; got {dtype}")
        if isinstance(jump_scales, bool) or not isinstance(jump_scales, int) or jump_scales < 0:
            raise ConfigError(f"jump_scales must be a non-negative integer (0: Fourier features "
                              f"only); got {jump_scales!r}")
        sys_ = self.system
        if state_transform is None:
            state_transform = _default_transform(sys_, log_states)
        if state_transform.dim != sys_.dim:
            raise ConfigError(f"state_transform has dim {state_transform.dim}, system {sys_.dim}")
        self.config = FlowMapConfig(
            system=sys_.name, system_kwargs=sys_.constructor_kwargs(), dim=sys_.dim,
            state_names=list(sys_.state_names), param_names=list(sys_.param_names),
            autonomous=bool(sys_.autonomous), timescale=float(sys_.timescale), width=int(width),
            depth=int(depth), activation=activation, backbone=backbone,
            n_frequencies=int(n_frequencies), jump_scales=int(jump_scales), tangent=bool(tangent),
            backward=bool(backward),
            max_jump=float(max_jump) if max_jump is not None else float(sys_.timescale),
            log_states=[bool(v) for v in state_transform.log_mask.tolist()],
            dtype=[k for k, v in _DTYPES.items() if v == dtype][0],
        )
        if seed is not None:
            torch.manual_seed(seed)
        self.state_transform = state_transform
        lo, hi = _param_range(sys_, param_range)
        self.param_transform = ParamTransform(lo, hi)
        self.jump_embedding = FourierEmbedding(n_frequencies, f_min=0.25, f_max=8.0,
                                               n_scales=int(jump_scales))
        self.time_embedding = (
            None if sys_.autonomous else FourierEmbedding(n_frequencies, f_min=0.25, f_max=4.0)
        )
        d_in = sys_.dim + sys_.n_params + self.jump_embedding.out_features
        if self.time_embedding is not None:
            d_in += self.time_embedding.out_features
        self.net = make_backbone(backbone, d_in, sys_.dim, int(width), int(depth), activation)
        # typical rate of change of each normalised state per timescale: keeps the network's
        # output O(1) (set from data or the vector field by the trainer)
        self.register_buffer("velocity_scale", torch.ones(sys_.dim, dtype=torch.float64))
        self.to(dtype)
        self._has_log = bool(state_transform.log_mask.any())

    # ------------------------------------------------------------------ properties
    @property
    def dtype(self) -> torch.dtype:
        return _DTYPES[self.config.dtype]

    @property
    def device(self) -> torch.device:
        return self.state_transform.mean.device

    def sample_params(self, n: int, generator: torch.Generator | int | None = None) -> Tensor:
        """``n`` parameter vectors drawn uniformly from the range this map covers, float64 on the CPU.

        That range is the system's prior unless the map was built for less
        (``FlowMap(system, param_range=…)``, e.g. the parameters a store holds); where it is the
        prior, the draws are exactly :meth:`ODESystem.sample_params`'s.

        Examples
        --------
        >>> import flowsim
        >>> lv = flowsim.get_system("lotka_volterra")
        >>> fm = flowsim.FlowMap(lv, width=8, depth=1, param_range="default")
        >>> torch.allclose(fm.sample_params(3, 0), lv.default_params(3))  # float32 buffers
        True
        """
        sys_ = self.system
        lo = self.param_transform.low.detach().double().cpu()
        hi = self.param_transform.high.detach().double().cpu()
        plo = torch.tensor([q.prior[0] for q in sys_.parameters], dtype=torch.float64)
        phi = torch.tensor([q.prior[1] for q in sys_.parameters], dtype=torch.float64)
        tol = 1e-6 * torch.maximum(plo.abs(), phi.abs()).clamp_min(1e-12)
        if bool(((lo - plo).abs() <= tol).all() and ((hi - phi).abs() <= tol).all()):
            return sys_.sample_params(n, generator)  # the prior: the system's own draws
        g = as_generator(generator)
        u = torch.rand(n, sys_.n_params, generator=g, dtype=torch.float64)
        return lo + (hi - lo) * u

    @property
    def has_log_states(self) -> bool:
        """Whether any state is log-standardised (cached: reading the mask would sync a GPU)."""
        return self._has_log

    @property
    def max_jump(self) -> float:
        """Longest single jump ``odeint`` takes by default (time units)."""
        return float(self.config.max_jump or self.config.timescale)

    def _apply(self, fn, recurse=True):  # keep config.dtype in step with .double()/.float()
        out = super()._apply(fn, recurse)
        w = next(self.net.parameters(), None)
        if w is not None and w.dtype in _DTYPES.values():
            self.config.dtype = [k for k, v in _DTYPES.items() if v == w.dtype][0]
        return out

    def set_state_transform(self, transform: StateTransform) -> None:
        """Replace the state normalisation (before training), keeping the config in step
        (``configure_for_data(state_transform=transform)``)."""
        self.configure_for_data(state_transform=transform)

    def configure_for_data(self, *, max_jump: float | None = None,
                           state_transform: StateTransform | None = None,
                           velocity_scale: Tensor | None = None) -> FlowMap:
        """Set what the map learns from its training data before its weights: the one place
        :func:`flowsim.fit` changes a map other than its weights (and its device).

        Each argument left ``None`` is unchanged. All are saved in the checkpoint.

        Arguments
        ---------
        max_jump:
            The longest jump the map is trained for (time units): :attr:`max_jump`, the
            longest single jump :meth:`odeint` takes by default.
        state_transform:
            The state normalisation (standardise, or log-standardise positive states) the
            network sees; the config's ``log_states`` follows it.
        velocity_scale:
            ``(dim,)`` positive RMS rate of change of each normalised state per timescale: the
            scale of the network's output.

        Returns
        -------
        FlowMap
            ``self``.

        Raises
        ------
        ConfigError
            A non-positive ``max_jump``, or a transform or scale of another dimension or with
            non-positive entries.

        Examples
        --------
        >>> import torch, flowsim
        >>> fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1)
        >>> fm.configure_for_data(max_jump=2.0, velocity_scale=torch.tensor([1.0, 3.0])).max_jump
        2.0
        """
        dim = self.config.dim
        if max_jump is not None and not (math.isfinite(float(max_jump)) and float(max_jump) > 0):
            raise ConfigError(f"max_jump must be a positive number of time units; got {max_jump!r}")
        if state_transform is not None and state_transform.dim != dim:
            raise ConfigError(f"transform has dim {state_transform.dim}, the map {dim}")
        if velocity_scale is not None:
            velocity_scale = torch.as_tensor(velocity_scale, dtype=torch.float64)
            if velocity_scale.shape != (dim,) or not bool((velocity_scale > 0).all()) \
                    or not bool(torch.isfinite(velocity_scale).all()):
                raise ConfigError(f"velocity_scale must be {dim} positive finite numbers; got "
                                  f"{velocity_scale.tolist()}")
        if max_jump is not None:
            self.config.max_jump = float(max_jump)
        if state_transform is not None:
            self.state_transform.load_state_dict(state_transform.state_dict())
            self.config.log_states = [bool(v) for v in state_transform.log_mask.tolist()]
            self._has_log = bool(state_transform.log_mask.any())
        if velocity_scale is not None:
            with torch.no_grad():
                self.velocity_scale.copy_(velocity_scale)
        return self

    # ------------------------------------------------------------------ core
    def forward(self, s: Tensor, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        """Unchecked evaluation: ``s``, ``t`` ``(batch,)``; ``x`` ``(batch, dim)``;
        ``p`` ``(batch, n_params)`` (raw, not normalised). Use :meth:`jump` for checked calls."""
        T = self.config.timescale
        delta = t - s
        h = delta / T
        feats = [self.state_transform.encode(x), self.param_transform.encode(p),
                 self.jump_embedding(h)]
        if self.time_embedding is not None:
            feats.append(self.time_embedding(s / T))
        # rate scale for short jumps, bounded displacement (a few σ) for long ones
        vs = self.velocity_scale.to(x.dtype)
        w = self.net(torch.cat(feats, dim=-1)) * vs / (1 + h.abs()[:, None] * vs / _MAX_DISPLACEMENT)
        if self.config.tangent:
            b = self.system.vector_field(s, x, p)
            std = self.state_transform.std.to(x.dtype)
            if self._has_log:
                b = torch.where(self.state_transform.log_mask, b / x, b)
            dz = delta[:, None] * (b / std) + (h * h.abs())[:, None] * w
        else:
            dz = h[:, None] * w
        return self.state_transform.advance(x, dz)

    def extra_repr(self) -> str:
        c = self.config
        return (f"system={c.system!r}, dim={c.dim}, backbone={c.backbone}({c.width}x{c.depth}),"
                f" tangent={c.tangent}, dtype={c.dtype}")


def _default_transform(system: ODESystem, log_states) -> StateTransform:
    x = system.sample_initial(4096, generator=12345)
    if isinstance(log_states, str):
        if log_states != "auto":
            raise ConfigError(f"log_states must be 'auto', a bool or a list; got {log_states!r}")
        if system.positive:
            box = torch.tensor(system.initial_box, dtype=torch.float64)
            lo, hi = box[:, 0], box[:, 1]
            mask = [bool(v) for v in ((lo > 0) & (hi > 100 * lo)).tolist()]
        else:
            mask = [False] * system.dim
    else:
        mask = log_states
    return StateTransform.fit(x, log=mask)
