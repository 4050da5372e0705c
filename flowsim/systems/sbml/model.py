"""An SBML model as equations: which symbols are states, parameters and constants, the
initial values, and the generated torch code of the vector field.

Semantics (SBML Level 1–3, with constant compartments):

- a species' symbol is its concentration (amount / compartment size) unless
  ``hasOnlySubstanceUnits``, then its amount; the flowsim state holds that same quantity, so
  ``d[S]/dt = cf · Σ stoichiometry · rate / V`` and ``dS/dt = cf · Σ stoichiometry · rate``
  (``cf`` the species' or the model's conversion factor, rates in substance per time);
- boundary and constant species, and species no reaction or rule changes, are constants;
- parameters with rate rules are states; assignment-rule variables and reaction rates are
  evaluated in dependency order at every call;
- initial assignments and assignment rules fix the initial values, in dependency order; an
  initial assignment (or a constant species' amount over a compartment size) that depends on
  free parameters only, directly or through assignment rules, is re-evaluated per sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigError, UnsupportedModelError
from .mathml import RUNTIME, Translator, mangle, symbols_of

__all__ = ["ModelEquations", "equations", "moving_symbols"]


@dataclass
class ModelEquations:
    """What :func:`equations` reads from a model (all ids are SBML ids)."""

    model_id: str
    model_name: str
    states: list[str]
    candidates: list[str]  # constant global parameters and compartments (may become flowsim params)
    kinds: dict[str, str]  # id -> species | parameter | compartment | reaction | reference | local
    names: dict[str, str]  # id -> SBML name
    units: dict[str, str]
    time_units: str
    functions: list[str]  # python source of the function definitions
    attrs: dict[str, tuple[str, set[str]]]  # id -> (source, deps): values from attributes
    initial: dict[str, tuple[str, set[str]]]  # initial assignments
    rules: dict[str, tuple[str, set[str]]]  # assignment rules and reaction rates
    rates: dict[str, str]  # state id -> source of d(state)/dt
    locals: dict[str, float] = field(default_factory=dict)  # mangled local parameter -> value
    local_names: dict[str, str] = field(default_factory=dict)  # "reaction.local" -> mangled name
    uses_time: set[str] = field(default_factory=set)
    time_dependent: bool = False  # a rule or kinetic law uses time


def _units(model, el, kind: str) -> str:
    if kind == "species":
        sub = el.getSubstanceUnits() or model.getSubstanceUnits()
        if el.getHasOnlySubstanceUnits():
            return sub
        comp = model.getCompartment(el.getCompartment())
        vol = (comp.getUnits() if comp is not None else "") or model.getVolumeUnits()
        return f"{sub}/{vol}" if sub or vol else ""
    return el.getUnits() if el.isSetUnits() else ""


def _translate(tr: Translator, node, libsbml) -> tuple[str, set[str], bool]:
    has_time = False
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        has_time |= n.getType() == libsbml.AST_NAME_TIME
        stack.extend(n.getChild(i) for i in range(n.getNumChildren()))
    return tr(node), symbols_of(node), has_time


def equations(model) -> ModelEquations:  # noqa: C901 - one pass over the model's elements
    """Read ``model`` (a libsbml Model without unsupported constructs) into equations.

    Raises
    ------
    ConfigError
        Missing initial values, undefined symbols, a model without states.
    """
    import libsbml

    fids = frozenset(fd.getId() for fd in model.getListOfFunctionDefinitions())
    kinds: dict[str, str] = {}
    names: dict[str, str] = {}
    units: dict[str, str] = {}
    for kind, items in (("compartment", model.getListOfCompartments()),
                        ("species", model.getListOfSpecies()),
                        ("parameter", model.getListOfParameters()),
                        ("reaction", model.getListOfReactions())):
        for el in items:
            kinds[el.getId()] = kind
            names[el.getId()] = el.getName() if el.isSetName() else ""
            units[el.getId()] = _units(model, el, kind) if kind != "reaction" else ""
    for r in model.getListOfReactions():
        for sr in (*r.getListOfReactants(), *r.getListOfProducts()):
            if sr.isSetId():
                kinds[sr.getId()] = "reference"
    functions = []
    for fd in model.getListOfFunctionDefinitions():
        args = [fd.getArgument(i).getName() for i in range(fd.getNumArguments())]
        tr = Translator({}, f"function definition {fd.getId()}", fids, frozenset(args))
        body = tr(fd.getBody())
        functions.append(f"def f_{fd.getId()}({', '.join('a_' + a for a in args)}):\n    return {body}\n")

    eq = ModelEquations(model.getId(), model.getName(), [], [], kinds, names, units,
                        model.getTimeUnits() if model.isSetTimeUnits() else "", functions, {}, {}, {}, {})
    level = model.getLevel()
    # values from attributes
    for c in model.getListOfCompartments():
        if c.isSetSize():
            eq.attrs[c.getId()] = (repr(float(c.getSize())), set())
        elif level < 3:
            eq.attrs[c.getId()] = ("1.0", set())  # as libroadrunner: Level 1/2 default size 1
    for p in model.getListOfParameters():
        if p.isSetValue():
            eq.attrs[p.getId()] = (repr(float(p.getValue())), set())
    for s in model.getListOfSpecies():
        sid, cid, hosu = s.getId(), s.getCompartment(), s.getHasOnlySubstanceUnits()
        v = mangle(cid)
        if s.isSetInitialConcentration():
            val = repr(float(s.getInitialConcentration()))
            eq.attrs[sid] = (f"({val} * {v})", {cid}) if hosu else (val, set())
        elif s.isSetInitialAmount():
            val = repr(float(s.getInitialAmount()))
            eq.attrs[sid] = (val, set()) if hosu else (f"_div({val}, {v})", {cid})
    for r in model.getListOfReactions():
        for sr in (*r.getListOfReactants(), *r.getListOfProducts()):
            if sr.isSetId():
                eq.attrs[sr.getId()] = (repr(_stoich(sr)), set())
    for ia in model.getListOfInitialAssignments():
        tr = Translator({}, f"initial assignment to {ia.getSymbol()}", fids)
        src, deps, has_t = _translate(tr, ia.getMath(), libsbml)
        eq.initial[ia.getSymbol()] = (src, deps)
        if has_t:
            eq.uses_time.add(ia.getSymbol())
    rate_rules: dict[str, str] = {}
    for rule in model.getListOfRules():
        tr = Translator({}, f"rule for {rule.getVariable()}", fids)
        src, deps, has_t = _translate(tr, rule.getMath(), libsbml)
        eq.time_dependent |= has_t
        if has_t:
            eq.uses_time.add(rule.getVariable())
        if rule.isAssignment():
            eq.rules[rule.getVariable()] = (src, deps)
        elif rule.isRate():
            rate_rules[rule.getVariable()] = src
            eq.rules.setdefault("#rate " + rule.getVariable(), ("", deps))
    # reactions: rates and species' rates of change
    change: dict[str, list[str]] = {}
    for r in model.getListOfReactions():
        kl = r.getKineticLaw()
        local = {}
        for lp in (*kl.getListOfParameters(), *kl.getListOfLocalParameters()):
            lname = f"l_{r.getId()}__{lp.getId()}"
            local[lp.getId()] = lname
            if not lp.isSetValue():
                raise ConfigError(f"local parameter {lp.getId()} of reaction {r.getId()} has no value; "
                                  "give it a value")
            eq.locals[lname] = float(lp.getValue())
            qual = f"{r.getId()}.{lp.getId()}"
            eq.local_names[qual] = lname
            eq.kinds[qual], eq.names[qual] = "local", lp.getName() if lp.isSetName() else ""
            eq.units[qual] = lp.getUnits() if lp.isSetUnits() else ""
        tr = Translator(local, f"reaction {r.getId()}", fids)
        src, deps, has_t = _translate(tr, kl.getMath(), libsbml)
        eq.time_dependent |= has_t
        eq.rules[r.getId()] = (src, deps - set(local))
        for sign, refs in ((-1.0, r.getListOfReactants()), (1.0, r.getListOfProducts())):
            for sr in refs:
                st = _stoich_src(sr, f"reaction {r.getId()}", fids)
                if st[1]:
                    eq.rules.setdefault(f"#stoich {r.getId()}", ("", set()))[1].update(st[1])
                term = f"{st[0]} * {mangle(r.getId())}"
                change.setdefault(sr.getSpecies(), []).append(term if sign > 0 else f"-{term}")
    # which species and parameters are states
    for s in model.getListOfSpecies():
        sid = s.getId()
        if s.getId() in eq.rules:
            continue
        if sid in rate_rules:
            eq.states.append(sid)
            eq.rates[sid] = rate_rules[sid]
        elif sid in change and not s.getBoundaryCondition() and not s.getConstant():
            terms = " + ".join(change[sid])
            cf = s.getConversionFactor() if s.isSetConversionFactor() else (
                model.getConversionFactor() if model.isSetConversionFactor() else "")
            expr = f"({terms})" if not cf else f"({mangle(cf)} * ({terms}))"
            if cf:
                eq.rules.setdefault(f"#cf {sid}", ("", set()))[1].add(cf)
            if not s.getHasOnlySubstanceUnits():
                expr = f"({expr} / {mangle(s.getCompartment())})"
            eq.states.append(sid)
            eq.rates[sid] = expr
    for p in model.getListOfParameters():
        if p.getId() in rate_rules:
            eq.states.append(p.getId())
            eq.rates[p.getId()] = rate_rules[p.getId()]
    if not eq.states:
        raise ConfigError(f"model {model.getId()!r} has no state that changes in time (no reaction changes a "
                          "species and there is no rate rule); there is no ODE to solve")
    ruled = set(eq.rules) | set(eq.initial)
    eq.candidates = [el.getId() for el in (*model.getListOfParameters(), *model.getListOfCompartments())
                     if el.getId() not in ruled and el.getId() not in rate_rules] + list(eq.local_names)
    _check_defined(eq)
    _check_compartments(eq)
    return eq


def moving_symbols(eq: ModelEquations) -> set[str]:
    """States, reactions, symbols that use time, and the assignment rules that depend on any of
    them (transitively): what changes along a trajectory."""
    moving = set(eq.states) | {k for k, kind in eq.kinds.items() if kind == "reaction"} | eq.uses_time
    rules = {k: v for k, v in eq.rules.items() if not k.startswith("#")}
    for k in toposort(rules, "assignment rules and reactions"):
        if rules[k][1] & moving:
            moving.add(k)
    return moving


def _check_compartments(eq: ModelEquations) -> None:
    """Refuse compartments whose assignment rule makes them change in time (through a state, a
    reaction rate or time); a rule over constants only is a constant size."""
    moving = moving_symbols(eq)
    rules = {k for k in eq.rules if not k.startswith("#")}
    for k, kind in eq.kinds.items():
        if kind == "compartment" and k in rules and k in moving:
            raise UnsupportedModelError(
                f"variable compartment {k}: its assignment rule changes with time or the state; "
                "flowsim supports constant compartment sizes only")


def _stoich(sr) -> float:
    if sr.getLevel() >= 3:
        return float(sr.getStoichiometry()) if sr.isSetStoichiometry() else 1.0
    return float(sr.getStoichiometry()) / float(sr.getDenominator() or 1)


def _stoich_src(sr, where: str, fids) -> tuple[str, set[str]]:
    if sr.getLevel() < 3 and sr.isSetStoichiometryMath() and sr.getStoichiometryMath().getMath() is not None:
        node = sr.getStoichiometryMath().getMath()
        return "(" + Translator({}, f"stoichiometryMath in {where}", fids)(node) + ")", symbols_of(node)
    if sr.isSetId():
        return mangle(sr.getId()), {sr.getId()}
    return repr(_stoich(sr)), set()


def _check_defined(eq: ModelEquations) -> None:
    known = set(eq.kinds)
    for table, what in ((eq.initial, "initial assignment to"), (eq.rules, "rule or reaction")):
        for target, (_, deps) in table.items():
            missing = sorted(deps - known)
            if missing:
                where = target.lstrip("#") if target.startswith("#") else f"{what} {target}"
                raise ConfigError(f"{where} uses undefined symbol(s) {missing}; every symbol must be a "
                                  "compartment, species, parameter, reaction or species reference")
        for target in table:
            if not target.startswith("#") and target not in known:
                raise ConfigError(f"{what} {target}: {target!r} is not a compartment, species or "
                                  "parameter of the model")


def toposort(eqs: dict[str, tuple[str, set[str]]], what: str) -> list[str]:
    """Ids of ``eqs`` in an order where each comes after the equations it depends on.

    Raises
    ------
    ConfigError
        Circular dependencies.
    """
    order: list[str] = []
    state: dict[str, int] = {}
    for start in eqs:
        if state.get(start):
            continue
        stack = [(start, iter(sorted(eqs[start][1])))]
        state[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next((d for d in it if d in eqs and state.get(d) != 2), None)
            if nxt is None:
                stack.pop()
                state[node] = 2
                order.append(node)
            elif state.get(nxt) == 1:
                cycle = [n for n, _ in stack] + [nxt]
                raise ConfigError(f"the {what} depend on each other in a circle: "
                                  f"{' -> '.join(cycle[cycle.index(nxt):])}; SBML needs an order")
            else:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(eqs[nxt][1]))))
    return order


def initial_values(eq: ModelEquations, free: dict[str, float]) -> dict[str, float]:
    """Every symbol's value at ``t = 0`` with the free parameters at ``free`` (float64).

    Raises
    ------
    ConfigError
        A species, parameter or compartment without an initial value.
    """
    import torch

    eqs: dict[str, tuple[str, set[str]]] = {k: v for k, v in eq.attrs.items()}
    eqs.update(eq.initial)
    eqs.update({k: v for k, v in eq.rules.items() if not k.startswith("#")})
    for k, v in free.items():
        if k not in eq.local_names:
            eqs[k] = (repr(float(v)), set())
    missing = sorted(k for k, kind in eq.kinds.items() if kind in ("species", "parameter", "compartment")
                     and k not in eqs)
    local = {q: eq.locals[n] for q, n in eq.local_names.items()}
    if missing:
        raise ConfigError(f"no initial value for {', '.join(f'{eq.kinds[k]} {k}' for k in missing)}: give "
                          "each an initial amount / concentration / value / size or an initial assignment")
    env: dict[str, Any] = dict(RUNTIME)
    for src in eq.functions:
        exec(src, env)  # noqa: S102 - code generated from the model's math, not user Python
    env.update(eq.locals)
    env.update({eq.local_names[k]: float(v) for k, v in free.items() if k in eq.local_names})
    env["t"] = torch.zeros((), dtype=torch.float64)
    values: dict[str, float] = {}
    for k in toposort(eqs, "initial assignments and assignment rules"):
        try:
            val = eval(eqs[k][0], env)  # noqa: S307 - generated from the model's math
        except ZeroDivisionError:
            val = math.nan
        env[mangle(k)] = val
        values[k] = float(val)
    values.update({k: float(free.get(k, v)) for k, v in local.items()})
    return values
