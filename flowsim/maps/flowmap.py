"""The :class:`FlowMap` module: ``X(s, t, x; p)`` = the start state, fading at a learned rate, plus a
learned displacement (``ẑ e^{−h r_θ} + h w_θ(s, h, ẑ, p̂)`` in normalised coordinates; for stiff
systems the start relaxes towards a learned state, ``+ (1 − e^{−h r_θ}) u_θ``)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .._utils import as_generator
from ..errors import ConfigError
from ..systems.base import ODESystem
from ..systems.registry import get_system
from .config import FlowMapConfig
from .jump_api import JumpAPI
from .networks import FourierEmbedding, make_backbone
from .transforms import ParamTransform, StateTransform, default_state_transform, param_bounds

__all__ = ["FlowMap", "FlowMapConfig"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: typical largest displacement of a jump, in standard deviations of the states
_MAX_DISPLACEMENT = 4.0
#: log of the start state's decay rate (per timescale) of an untrained ``decay=True`` map
_LOG_RATE0 = -4.0
#: cap on the network's log-rate output: rates up to e^16 ≈ 9e6 per timescale, finite in float32
#: (an unbounded rate made 0·∞ = NaN at zero jumps, and diverged a stiff Van der Pol run)
_LOG_RATE_CAP = 20.0


class FlowMap(JumpAPI, nn.Module):
    """A neural flow map ``X(s, t, x; p)`` of an :class:`~flowsim.ODESystem`.

    ``X = x e^{−h r} + h w`` in normalised coordinates (``h = (t − s)/T``; ``r ≥ 0`` and ``w``
    from the network; for a stiff system ``+ (1 − e^{−h r}) u``, a learned state its fast states
    relax to), so ``X(s, s, x) = x`` holds exactly.
    Autonomous systems condition on ``t - s`` only; parameters are network inputs, so one
    map covers a whole prior of parameters. With ``tangent=True`` the known vector field is
    built in: ``X = x + Δ b(s, x) + Δ² w``, so the map is exact to first order in the jump.

    Arguments
    ---------
    system:
        The system (or its catalogue name).
    width, depth, activation:
        Network size (``depth`` hidden layers of ``width`` units) and activation (``"gelu"``,
        ``"silu"``, ``"tanh"``, ``"softplus"``).
    backbone:
        ``"resnet"`` (default): a pre-norm residual network, ``depth // 2`` blocks of two layers
        each (at least one); ``"mlp"``: a plain multilayer perceptron. Measured at equal steps
        (``benchmarks/accuracy.py --ablate backbone resnet``, 128×6, 12,000 steps): the worse
        of the errors along trajectories and from the initial states is 1.13–1.48× lower with
        the residual network on seven of the eight systems of the evaluation (FitzHugh–Nagumo
        4.0e-3 → 2.9e-3) and 1.2× higher on the repressilator; at 64,000 steps 1.4–1.7× lower
        on FitzHugh–Nagumo, Hodgkin–Huxley, Van der Pol and the Brusselator, equal on the
        repressilator, 1.3× higher on Robertson. A step costs 1.2–1.25× more on a CPU
        (``benchmarks/step_time.py --compare-backbones``).
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
    decay:
        Let the start state fade at a learned rate ``r ≥ 0`` per state:
        ``z_out = z e^{−h r} + h w`` in normalised coordinates (``h`` the jump in timescales).
        A plain map writes where a state lands as the start plus a displacement, so its error
        grows with how far the state travels; a state that forgets its start (a fast transient
        onto a slow manifold, a long jump round a contracting cycle) can instead be written
        directly. Measured at equal steps (``benchmarks/accuracy.py --ablate decay 0 1``):
        1.3–1.5× lower error on FitzHugh–Nagumo, Van der Pol, the repressilator,
        Hodgkin–Huxley and the Brusselator; within noise on the conservative Lotka–Volterra
        and pendulum. Default (``None``): on, except with ``tangent=True`` or
        ``backward=True``; ``False``: the plain ``z + h w``.
    relax:
        Let the fading start relax towards a learned state ``u`` (``dim`` more outputs of the
        network): ``z_out = z e^{−h r} + (1 − e^{−h r}) u + h w``, the form of an exponential
        integrator. Where a fast state is slaved to the others within the shortest jump (a stiff
        system's fast relaxation onto its slow manifold), the plain decay leaves the landing
        state to ``h w`` alone, and ``w`` must then grow as ``1/h`` over the short jumps; ``u``
        writes it directly. Measured (``benchmarks/accuracy.py --ablate relax off on``, 12,000
        steps): on the stiff Van der Pol (μ = 1000) the error at 0.01 T fell 14× and the worse
        of the errors along trajectories and from the initial states 2.4× (3.9e-3 → 1.6e-3),
        on the stiff Robertson 1.07×; on the non-stiff systems it was within ±16 %
        (FitzHugh–Nagumo, Van der Pol and Hodgkin–Huxley 1.02–1.16× worse, the repressilator
        1.13× better). Default (``None``): on for systems marked ``stiff`` (with ``decay``), off
        otherwise.
    backward:
        Whether backward jumps (``t < s``) are allowed (train them too).
    max_jump:
        Longest jump a single evaluation should take (time units); ``odeint`` splits longer
        intervals. Default: the system's timescale (the trainer sets it to the longest gap trained).
    state_transform:
        A fitted :class:`StateTransform`; default: fitted on the system's initial-state prior,
        with log-standardisation of positive states spanning more than two decades.
    log_states:
        Which states the network sees as ``log x`` (standardised): ``"auto"`` (default) those of
        a positive system whose initial box spans more than two decades, and training
        (:func:`flowsim.fit`) adds those whose data do; ``True``/``False`` or one bool per state:
        exactly those, kept by training. A log state has errors of a constant *relative* size
        at every concentration; a linear one of a constant absolute size, which favours the
        large states that dominate the relative and normalised errors.
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
        backbone: str = "resnet",
        n_frequencies: int = 8,
        jump_scales: int = 0,
        tangent: bool = False,
        decay: bool | None = None,
        relax: bool | None = None,
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
        for flag, value in (("tangent", tangent), ("decay", decay), ("relax", relax),
                            ("backward", backward)):
            if not (isinstance(value, bool) or (flag in ("decay", "relax") and value is None)):
                raise ConfigError(f"{flag} must be True or False; got {value!r}")
        if decay is None:  # the default: on, except with the vector field built in or backward
            decay = not (tangent or backward)
        if tangent and decay:
            raise ConfigError("tangent=True and decay=True cannot be combined: the decay of the "
                              "start state would break the map's first-order exactness")
        if backward and decay:
            raise ConfigError("backward=True and decay=True cannot be combined: a start that fades "
                              "forward in time would grow without bound backward; pass decay=False")
        sys_ = self.system
        if relax is None:
            relax = bool(decay and sys_.stiff)
        if relax and not decay:
            raise ConfigError("relax=True needs decay=True: the start relaxes towards the learned "
                              "state at the decay's rate; keep the decay (CLI: drop --no-decay "
                              "and --tangent) or pass relax=False")
        state_transform_given = state_transform
        if state_transform is None:
            state_transform = default_state_transform(sys_, log_states)
        if state_transform.dim != sys_.dim:
            raise ConfigError(f"state_transform has dim {state_transform.dim}, system {sys_.dim}")
        self.config = FlowMapConfig(
            system=sys_.name, system_kwargs=sys_.constructor_kwargs(), dim=sys_.dim,
            state_names=list(sys_.state_names), param_names=list(sys_.param_names),
            autonomous=bool(sys_.autonomous), timescale=float(sys_.timescale), width=int(width),
            depth=int(depth), activation=activation, backbone=backbone,
            n_frequencies=int(n_frequencies), jump_scales=int(jump_scales), tangent=bool(tangent),
            decay=bool(decay), relax=bool(relax), backward=bool(backward),
            max_jump=float(max_jump) if max_jump is not None else float(sys_.timescale),
            log_states=[bool(v) for v in state_transform.log_mask.tolist()],
            log_states_fixed=not (isinstance(log_states, str) and state_transform_given is None),
            dtype=[k for k, v in _DTYPES.items() if v == dtype][0],
        )
        if seed is not None:
            torch.manual_seed(seed)
        self.state_transform = state_transform
        lo, hi = param_bounds(sys_, param_range)
        self.param_transform = ParamTransform(lo, hi)
        self.jump_embedding = FourierEmbedding(n_frequencies, f_min=0.25, f_max=8.0,
                                               n_scales=int(jump_scales))
        self.time_embedding = (
            None if sys_.autonomous else FourierEmbedding(n_frequencies, f_min=0.25, f_max=4.0)
        )
        d_in = sys_.dim + sys_.n_params + self.jump_embedding.out_features
        if self.time_embedding is not None:
            d_in += self.time_embedding.out_features
        # decay: a log-rate per state as well; relax: the state the start relaxes towards
        d_out = sys_.dim * (1 + bool(decay) + bool(relax))
        self.net = make_backbone(backbone, d_in, d_out, int(width), int(depth), activation)
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
        z = self.state_transform.encode(x)
        feats = [z, self.param_transform.encode(p), self.jump_embedding(h)]
        if self.time_embedding is not None:
            feats.append(self.time_embedding(s / T))
        out = self.net(torch.cat(feats, dim=-1))
        d = self.config.dim
        if self.config.decay:
            out, log_rate, target = out[:, :d], out[:, d:2 * d], out[:, 2 * d:]
        # rate scale for short jumps, bounded displacement (a few σ) for long ones
        vs = self.velocity_scale.to(x.dtype)
        w = out * vs / (1 + h.abs()[:, None] * vs / _MAX_DISPLACEMENT)
        if self.config.tangent:
            b = self.system.vector_field(s, x, p)
            std = self.state_transform.std.to(x.dtype)
            if self._has_log:
                b = torch.where(self.state_transform.log_mask, b / x, b)
            dz = delta[:, None] * (b / std) + (h * h.abs())[:, None] * w
        else:
            dz = h[:, None] * w
        if self.config.decay:  # the start state fades at a learned rate: z e^{-h r} + h w
            # (h >= 0: forward maps only; smooth at h = 0)
            rate = torch.exp(log_rate.clamp(max=_LOG_RATE_CAP) + _LOG_RATE0)
            # relax: towards the learned state, z e^{-h r} + (1 - e^{-h r}) u
            dz = dz + torch.expm1(-h[:, None] * rate) * (z - target if self.config.relax else z)
        return self.state_transform.advance(x, dz)

    def extra_repr(self) -> str:
        c = self.config
        return (f"system={c.system!r}, dim={c.dim}, backbone={c.backbone}({c.width}x{c.depth}),"
                f" tangent={c.tangent}, decay={c.decay}, relax={c.relax}, dtype={c.dtype}")
