"""Wrap a user's own right-hand side as an :class:`ODESystem`: :func:`from_callable`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, ParameterError, ShapeError
from .base import ODESystem, Parameter
from .checks import call_vector_field, check_batched, estimate_timescale

__all__ = ["CallableSpec", "from_callable"]


class CallableSystem(ODESystem):
    """An ODESystem built by :func:`from_callable`."""

    def __init__(self, spec: dict, **overrides: float) -> None:
        self._spec = spec
        for key in (
            "name", "state_names", "units", "time_units", "timescale", "autonomous", "stiff",
            "positive", "invariant_names", "description", "citation", "initial_box", "default_x0",
        ):
            setattr(self, key, spec[key])
        type_params = spec["parameters"]
        self._init_kwargs = dict(overrides)
        self.parameters = self._override_defaults(type_params, overrides)
        self._check_layout()

    def with_params(self, **overrides: float) -> ODESystem:
        return CallableSystem(self._spec, **{**self._init_kwargs, **overrides})

    def describe(self) -> dict:
        """As :meth:`ODESystem.describe`, and whether the timescale was estimated
        (``from_callable`` without ``timescale=``)."""
        return {**super().describe(), "timescale_estimated": bool(self._spec["timescale_estimated"])}

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        return self._spec["f"](t, x, p)

    def _invariants(self, x: Tensor, p: Tensor) -> dict[str, Tensor]:
        fn = self._spec["invariants"]
        return fn(x, p) if fn is not None else {}

    def sample_initial(self, n, generator=None, *, dtype=torch.float64, device=None) -> Tensor:
        sampler = self._spec["sampler"]
        if sampler is None:
            return super().sample_initial(n, generator, dtype=dtype, device=device)
        from .._utils import as_generator, check_int

        n = check_int(n, "n (how many to draw)", ConfigError, low=0)
        x = torch.as_tensor(sampler(n, as_generator(generator)))
        return x.to(dtype=dtype, device=device)


@dataclass(frozen=True)
class CallableSpec:
    """Everything :func:`from_callable` needs besides ``f``: names, parameters and their priors,
    how to draw initial states, and metadata. ``from_callable(f, name=…, …)`` builds one from its
    keywords; build one yourself to reuse or vary it (``dataclasses.replace``).

    Attributes
    ----------
    name:
        A name for the system (used in stores and checkpoints).
    state_names:
        One name per state; fixes ``dim``.
    params:
        ``{name: default}`` or a sequence of :class:`Parameter`.
    prior:
        ``{name: (low, high)}`` ranges for sampling; default ±50 % around each default.
    initial_box, default_x0, sample_initial:
        How to draw initial states: a ``(low, high)`` box per state (in state order, or a dict by
        state name), or a function ``(n, generator) -> (n, dim)``.
        Default box: ``[-1, 1]`` per state, or ``[0.1, 1]`` where ``positive=True`` (whose boxes
        must lie above 0: a state at or below 0 is outside a positive system).
    invariants, invariant_names:
        Optional conserved quantities ``(x, p) -> {name: (batch,)}``.
    timescale:
        A characteristic time (e.g. one period; it is a new :class:`~flowsim.FlowMap`'s default
        ``max_jump``). ``None`` (default): estimated from ``f`` on 64 prior samples as
        ``2π / median rate``, the rate being how many of its own spreads a state moves per unit
        time, rounded down to 1, 2 or 5 × 10ᵏ (:func:`flowsim.systems.checks.estimate_timescale`;
        on the catalogue it is never longer than the hand-set timescale and within a factor 1–7
        of it for 14 of the 18 measured; stiff systems get their fast scale: give it for them).
        ``describe()["timescale_estimated"]`` records which.
    autonomous, stiff, positive, units, time_units, description:
        Metadata, as on :class:`ODESystem`. ``autonomous`` defaults to ``False`` (safe).

    Examples
    --------
    >>> import flowsim
    >>> spec = flowsim.systems.CallableSpec("decay", ["x"], params={"k": 0.5}, autonomous=True)
    >>> flowsim.from_callable(lambda t, x, p: -p[:, :1] * x, spec).timescale
    10.0
    """

    name: str
    state_names: Sequence[str]
    params: Mapping[str, float] | Sequence[Parameter] = ()
    prior: Mapping[str, tuple[float, float]] | None = None
    initial_box: Sequence[tuple[float, float]] | Mapping[str, tuple[float, float]] | None = None
    default_x0: Sequence[float] | None = None
    sample_initial: Callable[[int, torch.Generator], Tensor] | None = None
    invariants: Callable[[Tensor, Tensor], dict[str, Tensor]] | None = None
    invariant_names: Sequence[str] = ()
    timescale: float | None = None
    autonomous: bool = False
    stiff: bool = False
    positive: bool = False
    units: Sequence[str] | None = None
    time_units: str = ""
    description: str = ""


def from_callable(
    f: Callable[[Tensor, Tensor, Tensor], Tensor],
    spec: CallableSpec | None = None,
    *,
    check: bool = True,
    **fields: Any,
) -> ODESystem:
    """Turn a plain torch function ``f(t, x, p)`` into an :class:`ODESystem`.

    Arguments
    ---------
    f:
        The vector field: ``t`` a scalar or ``(batch,)`` tensor, ``x`` ``(batch, dim)``,
        ``p`` ``(batch, n_params)`` with columns in the order of ``params``; returns ``(batch, dim)``.
    spec:
        A :class:`CallableSpec`; or give its fields as keywords instead (not both): ``name``
        and ``state_names`` (required), ``params``, ``prior``, ``initial_box``, ``default_x0``,
        ``sample_initial``, ``invariants``, ``invariant_names``, ``timescale`` (``None``:
        estimated), ``autonomous``, ``stiff``, ``positive``, ``units``, ``time_units``,
        ``description``.
    check:
        Call ``f`` on a small batch of prior samples: it must run, return a tensor of ``x``'s
        shape and dtype, and treat each row of the batch on its own (row ``i`` of a batch equals
        that sample evaluated alone), which catches a function written for one state.

    Returns
    -------
    ODESystem

    Raises
    ------
    VectorFieldError
        ``f`` raises on a batch (its error chained), returns a non-tensor, the wrong shape or
        dtype, or mixes the samples of a batch (written for one state).
    ParameterError
        Names in ``prior`` are not parameters; a prior with low > high or not around its default.
    ConfigError
        ``f`` not callable; unknown or missing fields, or both ``spec`` and keywords; a
        timescale that is not positive, or one that cannot be estimated (``f`` zero or not
        finite on the prior samples).

    Examples
    --------
    >>> import torch, flowsim
    >>> def decay(t, x, p):
    ...     return -p[:, :1] * x
    >>> sys = flowsim.systems.from_callable(decay, name="decay", state_names=["x"],
    ...                                     params={"k": 0.5}, autonomous=True)
    >>> sol = flowsim.reference_solve(sys, torch.ones(3, 1), torch.linspace(0, 1, 5))
    >>> sol.x.shape
    torch.Size([3, 5, 1])
    """
    if not callable(f):
        raise ConfigError(f"f must be a callable f(t, x, p); got {type(f).__name__}")
    spec = _spec(spec, fields)
    state_names = tuple(spec.state_names)
    if not state_names:
        raise ShapeError("from_callable needs at least one state name")
    name, params, prior = spec.name, spec.params, spec.prior
    if isinstance(params, Mapping):
        prior = dict(prior or {})
        unknown = [k for k in prior if k not in params]
        if unknown:
            raise ParameterError(f"prior names {unknown} are not among params {list(params)}")
        plist = []
        for k, v in params.items():
            v = float(v)
            lo, hi = prior.get(k, (v - 0.5 * abs(v), v + 0.5 * abs(v)) if v else (-1.0, 1.0))
            plist.append(Parameter(k, v, prior=(float(lo), float(hi))))
        parameters = tuple(plist)
    else:
        parameters = tuple(params)
    dim = len(state_names)
    box = _initial_box(spec.initial_box, state_names, positive=spec.positive)
    x0 = tuple(spec.default_x0) if spec.default_x0 is not None else tuple(0.5 * (a + b) for a, b in box)
    timescale = spec.timescale
    table = dict(
        f=f,
        name=name,
        state_names=state_names,
        units=tuple(spec.units) if spec.units else ("",) * dim,
        time_units=spec.time_units,
        timescale=1.0 if timescale is None else timescale,
        timescale_estimated=timescale is None,
        autonomous=spec.autonomous,
        stiff=spec.stiff,
        positive=spec.positive,
        invariant_names=tuple(spec.invariant_names),
        description=spec.description or f"user-defined system {name!r}",
        citation="",
        initial_box=box,
        default_x0=x0,
        parameters=parameters,
        invariants=spec.invariants,
        sampler=spec.sample_initial,
    )
    system = CallableSystem(table)
    if check:
        _probe(system)
    if timescale is None:
        table["timescale"] = system.timescale = estimate_timescale(system)
    return system


def _spec(spec: CallableSpec | None, fields: Mapping[str, Any]) -> CallableSpec:
    """``spec``, or one built from the keyword form; both, unknown or missing fields refused."""
    names = [fd.name for fd in dataclasses.fields(CallableSpec)]
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise ConfigError(f"from_callable got unknown keyword(s) {unknown}; the fields of "
                          f"CallableSpec are {names} (and check=)")
    if spec is not None:
        if fields:
            raise ConfigError(f"give either spec=CallableSpec(…) or the keywords {sorted(fields)}, "
                              "not both; e.g. dataclasses.replace(spec, …)")
        if not isinstance(spec, CallableSpec):
            raise ConfigError(f"spec must be a flowsim.systems.CallableSpec; got {type(spec).__name__}")
        return spec
    missing = [k for k in ("name", "state_names") if k not in fields]
    if missing:
        raise ConfigError(f"from_callable needs {' and '.join(f'{k}=…' for k in missing)}")
    return CallableSpec(**fields)


def _probe(system: ODESystem) -> None:
    """One call of the vector field on a few prior samples (a batch size unlike ``dim`` and
    ``n_params``, so that row and column indexing differ), and two rows again alone."""
    k = 3
    while k in (system.dim, system.n_params):
        k += 1
    x = system.sample_initial(k, generator=0).to(torch.float64)
    if x.shape != (k, system.dim):
        raise ShapeError(f"{system.name}: sample_initial(n, generator) must return (n, dim) = "
                         f"({k}, {system.dim}) initial states; got {tuple(x.shape)}")
    p = system.sample_params(k, generator=0, dtype=torch.float64)
    t = torch.zeros((), dtype=torch.float64)
    out = call_vector_field(system, t, x, p)
    check_batched(system, t, x, p, out)


def _initial_box(given: Any, state_names: Sequence[str],
                 positive: bool = False) -> tuple[tuple[float, float], ...]:
    """``initial_box`` as one ``(low, high)`` per state: from a sequence in state order or a dict
    keyed by state name (default ``(-1, 1)`` each, ``(0.1, 1)`` for a positive system)."""
    dim = len(state_names)
    if not given:
        return ((0.1, 1.0) if positive else (-1.0, 1.0),) * dim
    if isinstance(given, Mapping):
        unknown = sorted(set(given) - set(state_names))
        if unknown or len(given) != dim:
            raise ConfigError(f"initial_box as a dict needs one (low, high) for each state "
                              f"{list(state_names)}; got keys {list(given)}")
        given = [given[n] for n in state_names]
    try:
        box = tuple((float(lo), float(hi)) for lo, hi in given)
    except (TypeError, ValueError):
        raise ConfigError(f"initial_box must give one (low, high) pair of numbers per state "
                          f"{list(state_names)}, as a sequence or a dict by state name; "
                          f"got {given!r}") from None
    if len(box) != dim or not all(lo <= hi for lo, hi in box):
        raise ConfigError(f"initial_box must have {dim} pairs with low <= high; got {given!r}")
    if positive and not all(lo > 0 for lo, _ in box):
        bad = [n for n, (lo, _) in zip(state_names, box) if not lo > 0]
        raise ConfigError(f"positive=True: the initial box of {bad} reaches 0 or below, where a "
                          f"positive system's states never are; give each a low bound above 0 "
                          f"(e.g. initial_box={{{bad[0]!r}: (0.1, 10.0)}})")
    return box
