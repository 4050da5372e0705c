"""Generate and compile the batched torch vector field of an SBML model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .mathml import RUNTIME, mangle
from .model import ModelEquations, toposort

__all__ = ["compile_vector_field", "derived_symbols", "vector_field_source"]


def derived_symbols(eq: ModelEquations, free: Sequence[str]) -> list[str]:
    """Initial-assignment targets that depend on free parameters only (re-evaluated per sample).

    Targets that depend on a state, an assignment rule, a reaction or time keep their value at
    the defaults (an initial value is not recomputed when parameters vary).
    """
    dynamic = set(eq.states) | {k for k in eq.rules if not k.startswith("#")} | eq.uses_time
    status: dict[str, str] = {k: "free" for k in free}
    for k in toposort(eq.initial, "initial assignments"):
        if k in eq.states or k in eq.rules:
            continue
        deps = eq.initial[k][1]
        if k in dynamic or any(d in dynamic or status.get(d) == "dynamic" for d in deps):
            status[k] = "dynamic"
        elif any(status.get(d) in ("free", "derived") for d in deps):
            status[k] = "derived"
        else:
            status[k] = "static"
    return [k for k, v in status.items() if v == "derived"]


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
    eqs = {k: eq.initial[k] for k in derived}
    eqs.update(rules)
    lines += [f"    {mangle(k)} = {eqs[k][0]}" for k in toposort(eqs, "assignment rules and reactions")]
    rates = ", ".join(f"z + {eq.rates[k]}" for k in eq.states)
    lines.append(f"    return torch.stack([{rates}], dim=-1)")
    return "\n".join(lines) + "\n"


def compile_vector_field(eq: ModelEquations, free: Sequence[str],
                         values: dict[str, float]) -> Callable[..., Any]:
    """The compiled ``vector_field(t, x, p)`` of :func:`vector_field_source`."""
    env: dict[str, Any] = dict(RUNTIME)
    for src in eq.functions:
        exec(src, env)  # noqa: S102 - generated from the model's math, not user Python
    exec(compile(vector_field_source(eq, free, values), f"<sbml {eq.model_id}>", "exec"), env)  # noqa: S102
    return env["vector_field"]
