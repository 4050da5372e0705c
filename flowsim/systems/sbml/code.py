"""Generate and compile the batched torch vector field of an SBML model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .mathml import RUNTIME, mangle
from .model import ModelEquations, moving_symbols, toposort

__all__ = ["compile_vector_field", "derived_symbols", "vector_field_source"]


def derived_symbols(eq: ModelEquations, free: Sequence[str]) -> list[str]:
    """Symbols whose value at ``t = 0`` follows from the free parameters (re-evaluated per sample).

    An initial assignment, or a value set by attributes (a species' initial amount over a
    compartment size), counts when it depends — directly or through assignment rules of
    parameters only — on a free parameter and on nothing that moves: a state, a reaction or
    time. Those that depend on something that moves keep their value at the defaults (an initial
    value is not recomputed when parameters vary).
    """
    moving = moving_symbols(eq)
    rules = {k: v for k, v in eq.rules.items() if not k.startswith("#")}
    eqs = {k: v for k, v in eq.attrs.items() if k not in eq.states}
    eqs.update({k: v for k, v in eq.initial.items() if k not in eq.states})
    eqs.update(rules)
    status: dict[str, str] = {k: "free" for k in free}
    for k in toposort({k: v for k, v in eqs.items() if k not in status}, "initial assignments"):
        if k in moving:
            status[k] = "dynamic"
            continue
        deps = eqs[k][1]
        if any(d in moving or status.get(d) == "dynamic" for d in deps):
            status[k] = "dynamic"
        elif any(status.get(d) in ("free", "derived") for d in deps):
            status[k] = "derived"
        else:
            status[k] = "static"
    return [k for k, v in status.items() if v == "derived" and k not in rules]


def _derived_source(eq: ModelEquations, k: str) -> tuple[str, set[str]]:
    return eq.initial[k] if k in eq.initial else eq.attrs[k]


def vector_field_source(eq: ModelEquations, free: Sequence[str], values: dict[str, float]) -> str:
    """Python source of ``vector_field(t, x, p)`` for the model (states in ``eq.states`` order,
    parameter columns in ``free`` order; every other symbol fixed at ``values``)."""
    derived = derived_symbols(eq, free)
    rules = {k: v for k, v in eq.rules.items() if not k.startswith("#")}
    lines = ["def vector_field(t, x, p):",
             "    z = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)"]
    lines += [f"    {eq.local_names.get(k, mangle(k))} = p[:, {j}]" for j, k in enumerate(free)]
    fixed = [k for k, kind in eq.kinds.items()
             if kind in ("species", "parameter", "compartment", "reference")
             and k not in free and k not in derived and k not in eq.states and k not in rules]
    lines += [f"    {mangle(k)} = {values[k]!r}" for k in fixed]
    promoted = {eq.local_names[k] for k in free if k in eq.local_names}
    lines += [f"    {k} = {v!r}" for k, v in eq.locals.items() if k not in promoted]
    lines += [f"    {mangle(k)} = x[:, {i}]" for i, k in enumerate(eq.states)]
    eqs = {k: _derived_source(eq, k) for k in derived}
    eqs.update(rules)
    lines += [f"    {mangle(k)} = {eqs[k][0]}" for k in toposort(eqs, "assignment rules and reactions")]
    rates = ", ".join(f"z + {eq.rates[k]}" for k in eq.states)
    # constant pieces of a piecewise are float64: the result is in the states' dtype
    lines.append(f"    return torch.stack([{rates}], dim=-1).to(x.dtype)")
    return "\n".join(lines) + "\n"


def compile_vector_field(eq: ModelEquations, free: Sequence[str],
                         values: dict[str, float]) -> Callable[..., Any]:
    """The compiled ``vector_field(t, x, p)`` of :func:`vector_field_source`."""
    env: dict[str, Any] = dict(RUNTIME)
    for src in eq.functions:
        exec(src, env)  # noqa: S102 - generated from the model's math, not user Python
    exec(compile(vector_field_source(eq, free, values), f"<sbml {eq.model_id}>", "exec"), env)  # noqa: S102
    return env["vector_field"]
