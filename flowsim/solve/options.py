"""``SolverOptions``: which solver, which method, which tolerances — one typed, validated object.

The object is built (and validated) once, where the user writes it, and then passed unchanged
to the backend that runs it — the way diffrax passes solver and step-size-controller objects —
instead of strings and keyword arguments checked again at every layer. Stores and reports
record it with :meth:`SolverOptions.to_dict`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._utils import check_int, with_keywords
from ..errors import SolverError
from ..systems.base import ODESystem

__all__ = [
    "BACKENDS",
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "METHODS",
    "SCIPY_METHODS",
    "SolverOptions",
    "TORCHDIFFEQ_ADAPTIVE",
    "TORCHDIFFEQ_FIXED",
    "TORCHODE_METHODS",
    "solver_options",
]

#: Default relative tolerance of reference solves.
DEFAULT_RTOL = 1e-8
#: Default absolute tolerance of reference solves.
DEFAULT_ATOL = 1e-10

#: Adaptive torchdiffeq methods (``rtol``/``atol`` control the step).
TORCHDIFFEQ_ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
#: Fixed-step torchdiffeq methods (need ``step_size`` or ``n_steps``).
TORCHDIFFEQ_FIXED = ("euler", "midpoint", "heun3", "rk4", "explicit_adams", "implicit_adams")
#: Methods of ``scipy.integrate.solve_ivp`` (one trajectory at a time; Radau, BDF, LSODA for stiff systems).
SCIPY_METHODS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")
#: Adaptive torchode methods (per-trajectory step control).
TORCHODE_METHODS = ("dopri5", "tsit5", "heun")

#: ``{backend: methods}``; the first method of each is its default.
METHODS: dict[str, tuple[str, ...]] = {
    "torchdiffeq": TORCHDIFFEQ_ADAPTIVE + TORCHDIFFEQ_FIXED,
    "scipy": ("Radau",) + tuple(m for m in SCIPY_METHODS if m != "Radau"),
    "torchode": TORCHODE_METHODS,
}
#: Known backends.
BACKENDS = tuple(METHODS)


def _positive_float(name: str, v: Any) -> float:
    """``v`` as a float (numpy scalars included); refuses bools, non-numbers, ``≤ 0``, NaN, inf."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not (v > 0 and math.isfinite(v)):
        raise SolverError(f"{name} must be a positive finite number; got {name}={v!r}")
    return float(v)


@dataclass(frozen=True)
class SolverOptions:
    """How to solve: backend, method, tolerances and step limits, validated at construction.

    Build one and pass it to :func:`flowsim.reference_solve`, :func:`flowsim.data.simulate_ensemble`
    or :func:`flowsim.solve.integrate`; it reaches the backend unchanged. Change a field with
    :func:`dataclasses.replace` (which validates again).

    Attributes
    ----------
    backend:
        ``"torchdiffeq"`` (batched, default), ``"scipy"`` (``solve_ivp`` per trajectory; stiff
        systems and validation) or ``"torchode"`` (batched with per-trajectory step control;
        ``pip install torchode``).
    method:
        A method of the backend (see :data:`METHODS`); ``None`` takes the backend's default:
        ``dopri5`` (torchdiffeq, torchode) or ``Radau`` (scipy). torchdiffeq's fixed-step
        methods (``rk4``, ``euler``, …) need ``step_size`` or ``n_steps``.
    rtol, atol:
        Tolerances of the adaptive methods (positive).
    step_size:
        Step of a fixed-step method.
    n_steps:
        Instead of ``step_size``: this many equal steps from the first to the last output time.
    max_steps:
        Step limit per solve; trajectories exceeding it get ``Status.MAX_STEPS``.
    stacked:
        scipy only: solve the whole batch as one stacked system (one vector-field call per
        evaluation for every trajectory, and for the implicit methods a block-diagonal Jacobian:
        sparse for Radau/BDF, banded for LSODA) instead of one ``solve_ivp`` per trajectory.
        Much faster on large batches; the steps are then shared and the error is controlled in
        the batch's root-mean-square norm, as in torchdiffeq.

    Raises
    ------
    SolverError
        Unknown backend or method, non-positive tolerances or limits, a fixed-step method
        without a step (or with both ``step_size`` and ``n_steps``), a step for an adaptive method.

    Examples
    --------
    >>> import flowsim
    >>> opts = flowsim.SolverOptions(method="dopri5", rtol=1e-6, atol=1e-9)
    >>> opts.backend, opts.max_steps
    ('torchdiffeq', 100000)
    >>> flowsim.SolverOptions.from_dict(opts.to_dict()) == opts
    True
    >>> flowsim.SolverOptions(method="rk4", n_steps=100).method
    'rk4'
    """

    backend: str = "torchdiffeq"
    method: str | None = None
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    step_size: float | None = None
    n_steps: int | None = None
    max_steps: int = 100_000
    stacked: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.backend, str) or self.backend not in METHODS:
            raise SolverError(f"unknown backend {self.backend!r}; choose one of {BACKENDS}")
        methods = METHODS[self.backend]
        method = methods[0] if self.method is None else self.method
        if method not in methods:
            others = [b for b, ms in METHODS.items() if method in ms and b != self.backend]
            hint = f", or backend={others[0]!r}" if others else ""
            raise SolverError(f"unknown {self.backend} method {method!r}; choose one of {methods}{hint}")
        set_ = object.__setattr__
        set_(self, "method", method)
        set_(self, "rtol", _positive_float("rtol", self.rtol))
        set_(self, "atol", _positive_float("atol", self.atol))
        set_(self, "max_steps", check_int(self.max_steps, "max_steps", SolverError, integral_floats=True))
        if self.step_size is not None:
            set_(self, "step_size", _positive_float("step_size", self.step_size))
        if self.n_steps is not None:
            set_(self, "n_steps", check_int(self.n_steps, "n_steps", SolverError, integral_floats=True))
        if not isinstance(self.stacked, bool):
            raise SolverError(f"stacked must be True or False; got {self.stacked!r}")
        if self.stacked and self.backend != "scipy":
            raise SolverError(
                f"stacked=True is for the scipy backend (one solve_ivp over the whole batch); got "
                f"backend={self.backend!r}")
        fixed = self.is_fixed_step
        given = [k for k in ("step_size", "n_steps") if getattr(self, k) is not None]
        if fixed and len(given) != 1:
            raise SolverError(
                f"fixed-step method {method!r} needs exactly one of step_size=… or n_steps=…"
                f"{' (got both)' if given else ''}; or use an adaptive method {TORCHDIFFEQ_ADAPTIVE}"
            )
        if not fixed and given:
            raise SolverError(
                f"{given[0]} is for fixed-step methods {TORCHDIFFEQ_FIXED}; the adaptive "
                f"{self.backend} {method} chooses its steps from rtol and atol"
            )

    @property
    def is_fixed_step(self) -> bool:
        """Whether the method takes fixed steps (``step_size`` / ``n_steps``) rather than adaptive ones."""
        return self.backend == "torchdiffeq" and self.method in TORCHDIFFEQ_FIXED

    @classmethod
    def reference(
        cls, system: ODESystem | None = None, *, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL,
        max_steps: int = 100_000,
    ) -> SolverOptions:
        """The reference solver for ``system``: scipy Radau where it is stiff, else torchdiffeq dopri5.

        Examples
        --------
        >>> import flowsim
        >>> flowsim.SolverOptions.reference(flowsim.get_system("robertson")).method
        'Radau'
        >>> flowsim.SolverOptions.reference(flowsim.get_system("lotka_volterra"), rtol=1e-10).method
        'dopri5'
        """
        if system is not None and system.stiff:
            return cls(backend="scipy", method="Radau", rtol=rtol, atol=atol, max_steps=max_steps)
        return cls(backend="torchdiffeq", method="dopri5", rtol=rtol, atol=atol, max_steps=max_steps)

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-friendly dict (what stores and reports record).

        Examples
        --------
        >>> import flowsim
        >>> flowsim.SolverOptions(backend="scipy", rtol=1e-6).to_dict()["method"]
        'Radau'
        """
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SolverOptions:
        """Rebuild (and validate) options from :meth:`to_dict`'s output; unknown keys are refused.

        Examples
        --------
        >>> import flowsim
        >>> flowsim.SolverOptions.from_dict({"method": "bosh3", "rtol": 1e-5}).rtol
        1e-05
        """
        if not isinstance(d, Mapping):
            raise SolverError(f"solver options must be a mapping; got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise SolverError(f"unknown solver option(s) {unknown}; known: {sorted(names)}")
        return cls(**dict(d))

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> SolverOptions:
        """The options an ensemble store was solved with, from its attributes (``ds.attrs``).

        Stores record ``solver_json``; older stores only ``backend``, ``method``, ``rtol``, ``atol``.

        Examples
        --------
        >>> import flowsim
        >>> flowsim.SolverOptions.from_attrs({"backend": "scipy", "method": "BDF", "rtol": 1e-6}).method
        'BDF'
        """
        import json

        if "solver_json" in attrs:
            return cls.from_dict(json.loads(attrs["solver_json"]))
        return cls.from_dict({k: attrs[k] for k in ("backend", "method", "rtol", "atol") if k in attrs})

    def describe(self) -> str:
        """A one-line summary, e.g. ``"torchdiffeq dopri5 rtol=1e-08 atol=1e-10"``.

        Examples
        --------
        >>> import flowsim
        >>> flowsim.SolverOptions(method="rk4", n_steps=64).describe()
        'torchdiffeq rk4 n_steps=64'
        """
        if self.step_size is not None:
            return f"{self.backend} {self.method} step_size={self.step_size:g}"
        if self.n_steps is not None:
            return f"{self.backend} {self.method} n_steps={self.n_steps}"
        stacked = " stacked" if self.stacked else ""
        return f"{self.backend} {self.method}{stacked} rtol={self.rtol:g} atol={self.atol:g}"


def solver_options(
    solver: SolverOptions | Mapping[str, Any] | None, keywords: Mapping[str, Any],
    system: ODESystem | None = None,
) -> SolverOptions:
    """``solver`` as :class:`SolverOptions`, or one built from the keyword form (``None`` = default).

    Used by the entry points that accept both ``solver=`` and the convenience keywords
    ``method=``, ``rtol=``, … ; giving both is refused. With neither a backend nor a method
    named, a stiff ``system`` gets the implicit reference method (scipy Radau, as
    :meth:`SolverOptions.reference`) and any other system torchdiffeq dopri5.

    Arguments
    ---------
    solver:
        A :class:`SolverOptions`, a dict of its fields, or ``None``.
    keywords:
        The keyword form: ``{field: value}``, where ``None`` means "not given".
    system:
        The system to be solved, for its default method (implicit where it is stiff).

    Returns
    -------
    SolverOptions

    Raises
    ------
    SolverError
        Invalid options, or both ``solver`` and keywords given.

    Examples
    --------
    >>> from flowsim.solve import solver_options
    >>> solver_options(None, {"method": "bosh3", "rtol": None}).method
    'bosh3'
    """
    names = {f.name for f in dataclasses.fields(SolverOptions)}
    # None means "not given"; unknown names stay, for with_keywords to refuse
    given = {k: v for k, v in keywords.items() if v is not None or k not in names}
    if solver is None:
        if system is not None and system.stiff and not {"backend", "method"} & set(given):
            given = {"backend": "scipy", "method": "Radau", **given}
        hint = ""
        if {"params", "parameters", "x", "x0", "t", "times"} & set(given):
            hint = ("; the states, times and parameters are reference_solve(system, x0, t, p) "
                    "— parameters as p=")
        return with_keywords(SolverOptions, None, given, what="solver", error=SolverError, hint=hint)
    if given:
        raise SolverError(
            f"give either solver=SolverOptions(…) or the keywords {sorted(given)}, not both; "
            f"e.g. dataclasses.replace(solver, {', '.join(f'{k}=…' for k in sorted(given))})"
        )
    if isinstance(solver, SolverOptions):
        return solver
    if isinstance(solver, Mapping):
        return SolverOptions.from_dict(solver)
    raise SolverError(f"solver must be a flowsim.SolverOptions; got {type(solver).__name__}")
