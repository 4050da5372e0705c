""":func:`from_sbml`: an SBML model as an :class:`~flowsim.ODESystem`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..._utils import as_generator, check_int
from ...errors import ConfigError, ParameterError, UnsupportedModelError
from ..base import ODESystem
from ..checks import call_vector_field, check_batched, estimate_timescale
from ..parameters import Parameter, box_log_density
from .code import compile_vector_field, derived_symbols
from .model import ModelEquations, equations, initial_values
from .read import read_document, unsupported_constructs

__all__ = ["SBMLSystem", "from_sbml", "rebuild_sbml"]

_CACHE: dict[str, tuple[dict, Any]] = {}  # record json -> (table, vector field), per process


class SBMLSystem(ODESystem):
    """An ODESystem read from SBML by :func:`from_sbml`. It pickles as its SBML text and the
    options of :func:`from_sbml` (rebuilt on unpickling, e.g. in Dask workers)."""

    def __init__(self, table: dict, f: Any, **overrides: float) -> None:
        self._table, self._f = table, f
        for key in ("name", "state_names", "units", "time_units", "timescale", "positive",
                    "description", "citation", "initial_box", "default_x0", "stiff"):
            setattr(self, key, table[key])
        self.autonomous = not table["time_dependent"]
        self._init_kwargs = dict(overrides)
        self.parameters = self._override_defaults(table["parameters"], overrides)
        self._check_layout()

    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        return self._f(t, x, p)

    def with_params(self, **overrides: float) -> ODESystem:
        return SBMLSystem(self._table, self._f, **{**self._init_kwargs, **overrides})

    def __reduce__(self):
        return (rebuild_sbml, (self._table["record"], dict(self._init_kwargs)))

    @property
    def sbml(self) -> dict[str, Any]:
        """The SBML text and the :func:`from_sbml` options this system was built with."""
        return dict(self._table["record"])

    def describe(self) -> dict[str, Any]:
        """As :meth:`ODESystem.describe`, plus ``sbml`` (the text and options that rebuild it,
        :func:`rebuild_sbml`), the SBML names and units of states and parameters, and the
        model's fixed (non-parameter) symbols."""
        t = self._table
        return {**super().describe(), "timescale_estimated": t["timescale_estimated"],
                "sbml": t["record"], "sbml_names": t["sbml_names"], "sbml_units": t["sbml_units"],
                "sbml_fixed": t["fixed"]}

    def sample_params(self, n: int, generator: torch.Generator | int | None = None, *,
                      dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> Tensor:
        """Draw ``n`` parameter vectors, log-uniformly inside each positive prior range (uniformly
        where a range reaches zero or below)."""
        return _draw(n, [q.prior for q in self.parameters], generator).to(dtype=dtype, device=device)

    def log_prior(self, p: Tensor) -> Tensor:
        """Log density, up to a constant, of :meth:`sample_params`' prior: log-uniform inside each
        positive range (``-Σ log θ``), uniform where a range reaches zero; ``-inf`` outside."""
        return box_log_density(p, [q.prior for q in self.parameters], log_uniform=True)

    def sample_initial(self, n: int, generator: torch.Generator | int | None = None, *,
                       dtype: torch.dtype = torch.float64,
                       device: torch.device | str | None = None) -> Tensor:
        """Draw ``n`` initial states log-uniformly inside :attr:`initial_box` (uniformly for
        states whose box reaches zero)."""
        return _draw(n, list(self.initial_box), generator).to(dtype=dtype, device=device)


def _draw(n: int, boxes: Sequence[tuple[float, float]], generator) -> Tensor:
    n = check_int(n, "n (how many to draw)", ConfigError, low=0)
    g = as_generator(generator)
    u = torch.rand(n, len(boxes), generator=g, dtype=torch.float64)
    lo = torch.tensor([b[0] for b in boxes], dtype=torch.float64).reshape(len(boxes))
    hi = torch.tensor([b[1] for b in boxes], dtype=torch.float64).reshape(len(boxes))
    logs = (lo > 0) & (hi > lo)
    lin = lo + (hi - lo) * u
    lg = torch.exp(torch.log(lo.clamp_min(1e-300)) + (torch.log(hi.clamp_min(1e-300))
                                                       - torch.log(lo.clamp_min(1e-300))) * u)
    return torch.where(logs, lg, lin)


def _factor(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value <= 1:
        raise ParameterError(f"the {what} factor f must be a finite number > 1 (the range is "
                             f"[value / f, value · f]); got {value!r}")
    return float(value)


def _ranges(spec: Any, what: str, allowed: Sequence[str]) -> tuple[float, dict[str, tuple[float, float]]]:
    """``(factor, {id: (low, high)})`` from a factor or a mapping (``"*"``: the factor)."""
    if isinstance(spec, Mapping):
        unknown = sorted(set(spec) - set(allowed) - {"*"})
        if unknown:
            raise ParameterError(f"{what} names {unknown}, which are not among {list(allowed)}")
        f = _factor(spec.get("*", 3.0), what)
        out = {}
        for k, v in spec.items():
            if k == "*":
                continue
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[k] = ("factor", _factor(v, f"{what} {k!r}"))
                continue
            try:
                lo, hi = (float(a) for a in v)
            except (TypeError, ValueError):
                raise ParameterError(f"{what} {k!r}: give a factor > 1 or a (low, high) range; got {v!r}") \
                    from None
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ParameterError(f"{what} {k!r}: the range ({lo}, {hi}) must be finite with low <= high")
            out[k] = (lo, hi)
        return f, out
    return _factor(spec, what), {}


def _box(v: float, f: float, given: Any, scale: float) -> tuple[float, float]:
    if given is not None and given[0] != "factor":
        return given
    if given is not None:
        f = given[1]
    if v > 0:
        return (v / f, v * f)
    if v < 0:
        return (v * f, v / f)
    return (0.0, scale)


def _free(eq: ModelEquations, parameters: Sequence[str] | None, values: dict[str, float]) -> list[str]:
    if parameters is None:
        return [k for k in eq.candidates if eq.kinds[k] in ("parameter", "local") and values.get(k, 0.0) > 0
                and not math.isnan(values[k])]
    if isinstance(parameters, str):
        parameters = [parameters]
    names = list(parameters)
    bad = [k for k in names if k not in eq.candidates]
    if bad:
        raise ParameterError(f"the model has no constant parameter or compartment {bad}; choose among "
                             f"{eq.candidates}")
    if len(set(names)) != len(names):
        raise ParameterError(f"parameters {names} names one twice")
    return names


def from_sbml(source: Any, *, parameters: Sequence[str] | None = None,
              prior: float | Mapping[str, Any] = 3.0, initial: float | Mapping[str, Any] = 3.0,
              name: str | None = None, timescale: float | None = None, stiff: bool = False) -> ODESystem:
    """Read an SBML model into an :class:`~flowsim.ODESystem` (needs ``flowsim[sbml]``).

    Arguments
    ---------
    source:
        A file path, an XML string or a ``libsbml.SBMLDocument``.
    parameters:
        SBML ids of the constant global parameters (or compartments) that become flowsim
        parameters, in column order. ``None``: every constant global parameter with a positive
        value that no initial assignment or rule sets; the others stay fixed.
    prior:
        The prior factor ``f > 1``: each parameter's prior is ``[value / f, value · f]``, drawn
        log-uniformly. Or a mapping ``{id: f or (low, high)}`` (key ``"*"``: the factor of the
        rest).
    initial:
        The same for the initial-state box around the model's initial values (a state whose
        initial value is 0 gets ``[0, largest initial value of the model]``).
    name:
        The system's name (default: the model id).
    timescale:
        A characteristic time (default: estimated from the vector field, as in
        :func:`~flowsim.from_callable`).
    stiff:
        Whether the reference solver should be implicit (scipy Radau).

    Returns
    -------
    ODESystem
        States are the species (concentration, or amount where ``hasOnlySubstanceUnits``) and
        parameters that reactions or rate rules change, named by their SBML ids.

    Raises
    ------
    UnsupportedModelError
        Events, delays, algebraic rules, fast reactions, variable compartments, … (all named).
    ConfigError
        Unreadable or invalid SBML, missing initial values, undefined symbols, a zero-size
        compartment holding concentrations, a model without states.
    ParameterError
        A parameter the model does not have, a prior factor ≤ 1.

    Examples
    --------
    >>> import flowsim, libsbml
    >>> doc = libsbml.SBMLDocument(3, 2); m = doc.createModel(); _ = m.setId("decay")
    >>> c = m.createCompartment(); _ = c.setId("cell"); _ = c.setSize(1.0); _ = c.setConstant(True)
    >>> s = m.createSpecies(); _ = s.setId("A"); _ = s.setCompartment("cell")
    >>> _ = s.setInitialConcentration(1.0); _ = s.setHasOnlySubstanceUnits(False)
    >>> _ = s.setBoundaryCondition(False); _ = s.setConstant(False)
    >>> k = m.createParameter(); _ = k.setId("k"); _ = k.setValue(0.5); _ = k.setConstant(True)
    >>> r = m.createReaction(); _ = r.setId("R"); _ = r.setReversible(False)
    >>> sr = r.createReactant(); _ = sr.setSpecies("A"); _ = sr.setStoichiometry(1); _ = sr.setConstant(True)
    >>> _ = r.createKineticLaw().setMath(libsbml.parseL3Formula("k * A * cell"))
    >>> sys = flowsim.from_sbml(doc)
    >>> sys.state_names, sys.param_names, sys.parameters[0].prior
    (('A',), ('k',), (0.16666666666666666, 1.5))
    """
    _, text = read_document(source)
    record = {"text": text, "parameters": None if parameters is None else list(
        [parameters] if isinstance(parameters, str) else parameters),
        "prior": dict(prior) if isinstance(prior, Mapping) else prior,
        "initial": dict(initial) if isinstance(initial, Mapping) else initial,
        "name": name, "timescale": timescale, "stiff": bool(stiff)}
    try:
        key = json.dumps(record, sort_keys=True, default=list)
    except TypeError as err:
        raise ConfigError(f"from_sbml options must be numbers, strings and lists: {err}") from None
    if key not in _CACHE:
        _CACHE[key] = _build(json.loads(key))
    table, f = _CACHE[key]
    return SBMLSystem(table, f)


def rebuild_sbml(record: Mapping[str, Any], overrides: Mapping[str, float] | None = None) -> ODESystem:
    """The system :meth:`SBMLSystem.describe`'s ``"sbml"`` record describes (stores and
    checkpoints keep it), with parameter ``overrides``.

    Examples
    --------
    >>> import flowsim, libsbml
    >>> from flowsim.systems.sbml import rebuild_sbml
    >>> doc = libsbml.SBMLDocument(3, 1); m = doc.createModel(); _ = m.setId("growth")
    >>> p = m.createParameter(); _ = p.setId("x"); _ = p.setValue(1.0); _ = p.setConstant(False)
    >>> _ = m.createRateRule().setVariable("x"); _ = m.getRule(0).setMath(libsbml.parseL3Formula("x"))
    >>> sys = flowsim.from_sbml(doc, timescale=1.0)
    >>> rebuild_sbml(sys.describe()["sbml"]).state_names
    ('x',)
    """
    rec = dict(record)
    sys_ = from_sbml(rec.pop("text"), **rec)
    return sys_.with_params(**dict(overrides)) if overrides else sys_


def _build(record: dict) -> tuple[dict, Any]:
    doc, _ = read_document(record["text"])
    bad = unsupported_constructs(doc)
    if bad:
        raise UnsupportedModelError(f"model {doc.getModel().getId()!r} uses what flowsim does not support: "
                                    f"{'; '.join(bad)}. See docs/sbml.md for the supported subset")
    model = doc.getModel()
    eq = equations(model)
    values = initial_values(eq, {})
    for s in model.getListOfSpecies():
        v = values.get(s.getCompartment())
        if not s.getHasOnlySubstanceUnits() and v is not None and v == 0:
            raise ConfigError(f"compartment {s.getCompartment()} has size 0, so the concentration of "
                              f"species {s.getId()} is undefined; give the compartment a positive size")
    bad_init = [k for k in eq.states if not math.isfinite(values[k])]
    if bad_init:
        raise ConfigError(f"the initial values of {bad_init} are not finite; check their initial "
                          "assignments and compartment sizes")
    free = _free(eq, record["parameters"], values)
    pf, pranges = _ranges(record["prior"], "prior", free)
    params = []
    for k in free:
        v = values[k]
        given = pranges.get(k)
        if given is None and v <= 0:
            raise ParameterError(f"parameter {k} = {v} is not positive, so [value / f, value · f] is no "
                                 f"range; give prior={{{k!r}: (low, high)}}")
        lo, hi = _box(v, pf, given, 0.0)
        dom = (0.0, math.inf) if lo >= 0 else (-math.inf, math.inf)
        params.append(Parameter(k, v, prior=(lo, hi), domain=dom, units=eq.units.get(k, ""),
                                description=eq.names.get(k, "")))
    fi, iranges = _ranges(record["initial"], "initial", eq.states)
    x0 = [values[k] for k in eq.states]
    scale = max([abs(v) for v in x0 if v != 0] or [1.0])
    box = tuple(_box(v, fi, iranges.get(k), scale) for k, v in zip(eq.states, x0))
    below = [k for k, (lo, _) in zip(eq.states, box) if lo < 0 and eq.kinds[k] == "species"]
    if below:
        raise ParameterError(f"initial {below}: a species' range must not reach below 0 (got "
                             f"{[box[eq.states.index(k)] for k in below]}); give (low, high) with "
                             f"low >= 0")
    f = compile_vector_field(eq, free, values)
    name = record["name"] or eq.model_id or "sbml_model"
    fixed = {k: values[k] for k, kind in eq.kinds.items() if kind in ("parameter", "compartment", "local")
             and k not in free and k not in eq.states and k not in eq.rules
             and k not in derived_symbols(eq, free)}
    table = dict(
        record=record, name=name, state_names=tuple(eq.states),
        units=tuple(eq.units.get(k, "") for k in eq.states), time_units=eq.time_units,
        timescale=1.0 if record["timescale"] is None else record["timescale"],  # 0 is refused, not 1
        timescale_estimated=record["timescale"] is None,
        positive=all(eq.kinds[k] == "species" for k in eq.states) and min(x0) >= 0,
        description=f"SBML model {eq.model_id!r}" + (f" ({eq.model_name})" if eq.model_name else ""),
        citation="", initial_box=box, default_x0=tuple(x0), stiff=record["stiff"],
        parameters=tuple(params), fixed=fixed, time_dependent=eq.time_dependent,
        sbml_names={k: eq.names.get(k, "") for k in (*eq.states, *free)},
        sbml_units={k: eq.units.get(k, "") for k in (*eq.states, *free)},
    )
    system = SBMLSystem(table, f)
    _probe(system)
    if record["timescale"] is None:
        try:
            table["timescale"] = estimate_timescale(system)
        except ConfigError as err:
            raise ConfigError(f"{err}; pass from_sbml(…, timescale=…)") from None
    return table, f


def _probe(system: SBMLSystem) -> None:
    k = 3
    while k in (system.dim, system.n_params):
        k += 1
    x = system.sample_initial(k, generator=0)
    p = system.sample_params(k, generator=0)
    t = torch.zeros((), dtype=torch.float64)
    check_batched(system, t, x, p, call_vector_field(system, t, x, p))
