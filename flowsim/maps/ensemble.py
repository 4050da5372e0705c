"""An ensemble of flow maps: independently trained members, averaged, with their spread."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from .compose import compose_jumps
from .flowmap import FlowMap, FlowMapConfig
from .jump_api import JumpAPI

__all__ = ["FlowMapEnsemble", "stackable", "stack_members"]


class FlowMapEnsemble(JumpAPI, nn.Module):
    """Several flow maps of one system, trained independently; a jump is their average.

    Each member's error is partly its own (its initial weights and its draws of the data), so
    the average of ``K`` members is usually more accurate than any one of them, and how far the
    members disagree says how far a jump can be trusted (:meth:`jump_with_spread`). On
    FitzHugh–Nagumo, two maps trained for 10 minutes side by side had worst median errors of
    1.15e-3 and 1.14e-3 over jumps up to one timescale, and their average 9.0e-4
    (``benchmarks/accuracy.py --members 2``, ``docs/benchmarks.md``). Train one with
    :func:`flowsim.fit_ensemble`, which trains the members in parallel processes.

    The average is taken in the first member's normalised coordinates (per-state
    standardisation; log-standardised states are averaged geometrically, so positive states
    stay positive). ``X(s, s, x) = x`` holds exactly, as it does for every member. A jump costs
    ``K`` network evaluations; on a GPU, without gradients, members of one architecture
    (:attr:`stackable`) run as one ``torch.func.vmap`` call over their stacked weights and
    normalisations (one launch per layer instead of ``K``); on a CPU, where that call was
    1.04–1.32× slower than the loop, they run one by one (:attr:`vectorise` overrides).

    Arguments
    ---------
    members:
        Two or more :class:`FlowMap` of the same system (name, states, parameters), dtype,
        parameter range, log-standardised states, direction (``backward``) and device.

    Raises
    ------
    ConfigError
        Fewer than two members, a member that is not a :class:`FlowMap`, or members that do
        not match.

    Examples
    --------
    >>> import torch, flowsim
    >>> members = [flowsim.FlowMap("lotka_volterra", width=16, depth=1, seed=k) for k in (0, 1)]
    >>> ens = flowsim.FlowMapEnsemble(members)
    >>> x = torch.rand(5, 2) + 0.5
    >>> bool((ens.jump(x, 0.0, 0.0) == x).all()), ens.jump(x, 0.0, 1.0).shape, len(ens)
    (True, torch.Size([5, 2]), 2)
    >>> mean, spread = ens.jump_with_spread(x, 0.0, 1.0)
    >>> spread.shape
    torch.Size([5])
    """

    def __init__(self, members: Sequence[FlowMap]) -> None:
        super().__init__()
        members = list(members)
        _check_members(members)
        self.members = nn.ModuleList(members)
        self.system = members[0].system
        #: evaluate :attr:`stackable` members as one vmapped call: ``None`` (default) on a GPU
        #: only — on the 2-core CPU the vmapped call of 2 and 4 128×6 members took 1.04–1.32× the
        #: loop's time (10³ and 10⁵ states, ``benchmarks/throughput.py --ensemble 2 4``);
        #: ``True``/``False`` force it
        self.vectorise: bool | None = None
        self.training_record: dict[str, Any] = {
            "members": [getattr(m, "training_record", {}) for m in members]}

    def __len__(self) -> int:
        return len(self.members)

    # ------------------------------------------------------------------ shared attributes
    @property
    def config(self) -> FlowMapConfig:
        """The first member's configuration (system, states, parameters, timescale, …)."""
        return self.members[0].config

    @property
    def dtype(self) -> torch.dtype:
        return self.members[0].dtype

    @property
    def device(self) -> torch.device:
        return self.members[0].device

    @property
    def jump_limit(self) -> float:
        """The shortest of the members' :attr:`FlowMap.jump_limit`."""
        return min(m.jump_limit for m in self.members)

    @property
    def max_jump(self) -> float:
        """The shortest of the members' longest jumps (time units)."""
        return min(m.max_jump for m in self.members)

    @property
    def state_transform(self):
        """The normalisation the members are averaged in (the first member's)."""
        return self.members[0].state_transform

    @property
    def param_transform(self):
        return self.members[0].param_transform

    # ------------------------------------------------------------------ core
    @property
    def stackable(self) -> bool:
        """Whether the members share one architecture (same configuration up to the seed and
        the normalisation), device and dtype, so that :meth:`forward` evaluates all of them in
        one batched call (``torch.func.vmap`` over their stacked weights and their own
        normalisations, which :func:`~flowsim.fit_ensemble` estimates per member) when no
        gradient is needed. Otherwise they run one by one."""
        return stackable(list(self.members))

    def _stacked(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The members' weights, and the buffers that differ between them, stacked along a new
        first dimension; cached until any of them changes (training, ``load_state_dict``,
        ``.to``)."""
        key = tuple((id(t), t._version, t.device) for m in self.members
                    for t in (*m.parameters(), *m.buffers()))
        cache = getattr(self, "_stack_cache", None)
        if cache is None or cache[0] != key:
            object.__setattr__(self, "_stack_cache", (key, stack_members(list(self.members))))
            cache = self._stack_cache
        return cache[1]

    def _outputs(self, s: Tensor, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        """Every member's jump ``(members, batch, dim)``: one vmapped call over the stacked
        members under ``torch.no_grad`` where :attr:`vectorise` says so (one launch per layer on
        a GPU instead of ``K``), a loop where gradients are needed or the members differ in
        architecture."""
        vectorise = getattr(self, "vectorise", None)
        vectorise = vectorise if vectorise is not None else self.device.type != "cpu"
        if torch.is_grad_enabled() or not vectorise or not self.stackable:
            return torch.stack([m(s, t, x, p) for m in self.members])
        base = self.members[0]
        params, differ = self._stacked()
        shared = {n: b for n, b in base.named_buffers() if n not in differ}

        def one(params: dict, own: dict) -> Tensor:
            return torch.func.functional_call(base, (params, own, shared), (s, t, x, p))

        return torch.vmap(one)(params, differ)

    def _displacements(self, s: Tensor, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        """Every member's displacement in normalised coordinates, ``(members, batch, dim)``
        (exactly zero for a zero jump)."""
        tr = self.state_transform
        z0 = tr.encode(x)
        return tr.encode(self._outputs(s, t, x, p)) - z0

    def forward(self, s: Tensor, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        """Unchecked average jump (see :meth:`FlowMap.forward` for the shapes)."""
        return self.state_transform.advance(x, self._displacements(s, t, x, p).mean(dim=0))

    def jump_with_spread(
        self,
        x: Tensor,
        s: Tensor | float,
        t: Tensor | float,
        p: Tensor | dict | None = None,
        *,
        allow_extrapolation: bool | None = None,
    ) -> tuple[Tensor, Tensor]:
        """The average jump and how far the members disagree about it.

        Arguments
        ---------
        x, s, t, p, allow_extrapolation:
            As for :meth:`jump`.

        Returns
        -------
        tuple of Tensor
            ``X`` ``(batch, dim)``, as :meth:`jump` gives it, and the spread ``(batch,)``: the
            members' root-mean-square distance from ``X`` in normalised coordinates (state
            units of one standard deviation, log-differences for log-standardised states),
            divided by ``√dim`` — on the scale of the benchmarks' normalised error. It is an
            estimate of the members' own error, not of the average's (which is smaller), and
            it ranks jumps by how far to trust them (``flowsim.analysis.indicator_quality``).

        Raises
        ------
        ShapeError, TimeGridError, ParameterError
            As for :meth:`jump`.

        Examples
        --------
        >>> import torch, flowsim
        >>> ens = flowsim.FlowMapEnsemble(
        ...     [flowsim.FlowMap("lotka_volterra", width=16, depth=1, seed=k) for k in (0, 1)])
        >>> X, spread = ens.jump_with_spread(torch.ones(3, 2), 0.0, 0.0)
        >>> spread.tolist()
        [0.0, 0.0, 0.0]
        """
        x, s_, t_, p_ = self._check(x, s, t, p, allow_extrapolation)
        n = self._jumps_needed(s_, t_, allow_extrapolation)
        if n > 1:  # the average composed as jump() composes it; the spread of composed members
            tr = self.state_transform
            z0 = tr.encode(x)
            dz = torch.stack([tr.encode(compose_jumps(m.forward, x, s_, t_, p_, n=n)) - z0
                              for m in self.members])
            X = compose_jumps(self.forward, x, s_, t_, p_, n=n)
        else:
            dz = self._displacements(s_, t_, x, p_)
            X = self.state_transform.advance(x, dz.mean(dim=0))
        spread = (dz - dz.mean(dim=0)).pow(2).mean(dim=0).sum(dim=-1).div(dz.shape[-1]).sqrt()
        return X, spread

    def extra_repr(self) -> str:
        return f"{len(self)} members of {self.config.system!r}"


def _check_members(members: list) -> None:
    if len(members) < 2:
        raise ConfigError(f"an ensemble needs at least two flow maps; got {len(members)}")
    bad = [i for i, m in enumerate(members) if not isinstance(m, FlowMap)]
    if bad:
        raise ConfigError(f"ensemble members must be flowsim.FlowMap; member {bad[0]} is "
                          f"{type(members[bad[0]]).__name__}")
    first = members[0]
    for i, m in enumerate(members[1:], start=1):
        problems = [
            f"{what} {getattr(m.config, what)!r} != {getattr(first.config, what)!r}"
            for what in ("system", "state_names", "param_names", "dtype", "backward", "autonomous",
                         "log_states")
            if getattr(m.config, what) != getattr(first.config, what)
        ]
        for what in ("low", "high"):
            a, b = getattr(first.param_transform, what), getattr(m.param_transform, what)
            if a.shape != b.shape or not torch.equal(a.cpu(), b.cpu()):
                problems.append(f"parameter range ({what}) {b.tolist()} != {a.tolist()}")
        if m.device != first.device:
            problems.append(f"device {m.device} != {first.device}")
        if problems:
            raise ConfigError(f"ensemble member {i} does not match member 0: "
                              + "; ".join(problems))


def stackable(members: Sequence[FlowMap]) -> bool:
    """Whether ``members`` can run as one ``torch.vmap`` over their stacked weights: one
    architecture (the same configuration up to the seed and the normalisation), device and
    dtype, buffers of the same shapes, and equal non-float buffers (log masks: ``vmap`` refuses
    control flow on them). Each may keep its own normalisation (:func:`stack_members` stacks it).

    Examples
    --------
    >>> import flowsim
    >>> from flowsim.maps.ensemble import stackable
    >>> stackable([flowsim.FlowMap("lotka_volterra", width=8, depth=1, seed=k) for k in range(2)])
    True
    """
    first = members[0]
    ignore = ("seed", "state_transform", "velocity_scale", "max_jump")  # per member, stacked too

    def arch(m: FlowMap) -> dict:
        return {k: v for k, v in m.config.to_dict().items() if k not in ignore}

    buffers = dict(first.named_buffers())
    shapes = [p.shape for p in first.parameters()]
    for m in members[1:]:
        if (arch(m) != arch(first) or m.device != first.device or m.dtype != first.dtype
                or [p.shape for p in m.parameters()] != shapes):
            return False
        other = dict(m.named_buffers())
        if other.keys() != buffers.keys() or not all(
                other[k].shape == v.shape and (v.is_floating_point() or torch.equal(other[k], v))
                for k, v in buffers.items()):
            return False
    return True


def stack_members(members: Sequence[FlowMap]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """``(weights, own buffers)`` of :func:`stackable` members, each stacked along a new first
    dimension (``torch.func.stack_module_state``); ``own buffers`` are those that differ between
    the members (their normalisations), the others are the same for all and left out.

    Examples
    --------
    >>> import flowsim
    >>> from flowsim.maps.ensemble import stack_members
    >>> params, own = stack_members([flowsim.FlowMap("lotka_volterra", width=8, depth=1, seed=k)
    ...                              for k in range(3)])
    >>> params["net.head.weight"].shape[0], own
    (3, {})
    """
    params, buffers = torch.func.stack_module_state(list(members))
    differ = {n: b for n, b in buffers.items() if not all(torch.equal(b[0], b[k]) for k in range(1, len(b)))}
    return params, differ
