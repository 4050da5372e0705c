"""SBML math (a libsbml ``ASTNode`` tree) as Python source over torch tensors.

Every SBML symbol becomes a mangled Python name (``s_<id>``; reaction-local parameters
``l_<reaction>__<id>``; function definitions ``f_<id>``), so SBML ids never clash with Python
keywords. Numbers stay Python floats; symbols are ``(batch,)`` tensors, so the generated code is
vectorised over the batch and over per-sample parameters. The helpers in :data:`RUNTIME` accept
floats and tensors alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from ...errors import ConfigError, UnsupportedModelError

__all__ = ["AVOGADRO", "RUNTIME", "Translator", "mangle", "symbols_of"]

#: The value of the ``avogadro`` csymbol that SBML Level 3 fixes.
AVOGADRO = 6.02214179e23


def mangle(sid: str) -> str:
    """The Python name of the SBML id ``sid`` in generated code.

    Examples
    --------
    >>> mangle("lambda")
    's_lambda'
    """
    return f"s_{sid}"


def _unary(tfn: Callable[[Tensor], Tensor], mfn: Callable[[float], float]) -> Callable:
    def fn(a):
        if isinstance(a, Tensor):
            return tfn(a)
        try:
            return float(mfn(float(a)))
        except (ValueError, OverflowError, ZeroDivisionError):
            return tfn(torch.tensor(float(a), dtype=torch.float64)).item()
    return fn


def _any_tensor(*args) -> Tensor | None:
    for a in args:
        if isinstance(a, Tensor):
            return a
    return None


def _pow(a, b):
    if _any_tensor(a, b) is None:
        return torch.pow(torch.tensor(float(a), dtype=torch.float64), float(b)).item()
    return torch.pow(a, b) if isinstance(a, Tensor) else torch.pow(torch.as_tensor(a, dtype=b.dtype), b)


def _div(a, b):
    """``a / b`` with IEEE results for numbers (``1 / 0 = inf``, ``0 / 0 = nan``): a piecewise
    computes every piece, so a guarded ``Vm / Kd`` with ``Kd = 0`` must not raise."""
    if _any_tensor(a, b) is None:
        try:
            return float(a) / float(b)
        except ZeroDivisionError:
            return (torch.tensor(float(a), dtype=torch.float64) / float(b)).item()
    return a / b


def _where(c, a, b):
    if not isinstance(c, Tensor):
        return a if c else b
    like = _any_tensor(a, b)
    dtype = like.dtype if like is not None else torch.float64
    a = a if isinstance(a, Tensor) else torch.as_tensor(float(a), dtype=dtype, device=c.device)
    b = b if isinstance(b, Tensor) else torch.as_tensor(float(b), dtype=dtype, device=c.device)
    return torch.where(c, a, b)


def _logic(op: Callable, *args):
    if _any_tensor(*args) is None:
        out = bool(args[0])
        for a in args[1:]:
            out = op(out, bool(a))
        return out
    ts = [a if isinstance(a, Tensor) else torch.as_tensor(bool(a)) for a in args]
    out = ts[0].bool()
    for a in ts[1:]:
        out = op(out, a.bool())
    return out


def _not(a):
    return torch.logical_not(a) if isinstance(a, Tensor) else not a


def _extreme(tfn: Callable, pyfn: Callable, *args):
    if _any_tensor(*args) is None:
        return pyfn(float(a) for a in args)
    like = _any_tensor(*args)
    out = args[0] if isinstance(args[0], Tensor) else torch.as_tensor(float(args[0]), dtype=like.dtype)
    for a in args[1:]:
        out = tfn(out, a if isinstance(a, Tensor) else torch.as_tensor(float(a), dtype=like.dtype))
    return out


def _factorial(a):
    if isinstance(a, Tensor):
        return torch.exp(torch.lgamma(a + 1.0))
    return math.gamma(float(a) + 1.0)


def _binary(tfn: Callable, pyfn: Callable) -> Callable:
    def fn(a, b):
        if _any_tensor(a, b) is None:
            try:
                return float(pyfn(float(a), float(b)))
            except (ValueError, ZeroDivisionError):
                return math.nan
        like = _any_tensor(a, b)
        a = a if isinstance(a, Tensor) else torch.as_tensor(float(a), dtype=like.dtype)
        b = b if isinstance(b, Tensor) else torch.as_tensor(float(b), dtype=like.dtype)
        return tfn(a, b)
    return fn


_UNARY = {
    "abs": (torch.abs, abs), "exp": (torch.exp, math.exp), "ln": (torch.log, math.log),
    "log10": (torch.log10, math.log10), "sqrt": (torch.sqrt, math.sqrt),
    "floor": (torch.floor, math.floor), "ceil": (torch.ceil, math.ceil),
    "sin": (torch.sin, math.sin), "cos": (torch.cos, math.cos), "tan": (torch.tan, math.tan),
    "asin": (torch.asin, math.asin), "acos": (torch.acos, math.acos), "atan": (torch.atan, math.atan),
    "sinh": (torch.sinh, math.sinh), "cosh": (torch.cosh, math.cosh), "tanh": (torch.tanh, math.tanh),
    "asinh": (torch.asinh, math.asinh), "acosh": (torch.acosh, math.acosh),
    "atanh": (torch.atanh, math.atanh),
}

#: The namespace the generated code runs in: ``torch``, ``math`` and float/tensor helpers.
RUNTIME: dict[str, object] = {
    "torch": torch, "math": math, "_pow": _pow, "_div": _div, "_where": _where, "_not": _not,
    "_and": lambda *a: _logic(torch.logical_and, *a),
    "_or": lambda *a: _logic(torch.logical_or, *a),
    "_xor": lambda *a: _logic(torch.logical_xor, *a),
    "_max": lambda *a: _extreme(torch.maximum, max, *a),
    "_min": lambda *a: _extreme(torch.minimum, min, *a),
    "_rem": _binary(torch.fmod, math.fmod),
    "_quot": _binary(lambda a, b: torch.trunc(a / b), lambda a, b: math.trunc(a / b)),
    "_factorial": _factorial,
    **{f"_{k}": _unary(*v) for k, v in _UNARY.items()},
}

_FUNCS = {  # libsbml function node type name -> a Python expression template over the args
    "ABS": "_abs({0})", "EXP": "_exp({0})", "LN": "_ln({0})", "FLOOR": "_floor({0})",
    "CEILING": "_ceil({0})", "FACTORIAL": "_factorial({0})",
    "SIN": "_sin({0})", "COS": "_cos({0})", "TAN": "_tan({0})",
    "SEC": "_div(1.0, _cos({0}))", "CSC": "_div(1.0, _sin({0}))", "COT": "_div(1.0, _tan({0}))",
    "SINH": "_sinh({0})", "COSH": "_cosh({0})", "TANH": "_tanh({0})",
    "SECH": "_div(1.0, _cosh({0}))", "CSCH": "_div(1.0, _sinh({0}))", "COTH": "_div(1.0, _tanh({0}))",
    "ARCSIN": "_asin({0})", "ARCCOS": "_acos({0})", "ARCTAN": "_atan({0})",
    "ARCSEC": "_acos(_div(1.0, {0}))", "ARCCSC": "_asin(_div(1.0, {0}))", "ARCCOT": "_atan(_div(1.0, {0}))",
    "ARCSINH": "_asinh({0})", "ARCCOSH": "_acosh({0})", "ARCTANH": "_atanh({0})",
    "ARCSECH": "_acosh(_div(1.0, {0}))", "ARCCSCH": "_asinh(_div(1.0, {0}))",
    "ARCCOTH": "_atanh(_div(1.0, {0}))",
}

_RELATIONAL = {"EQ": "==", "NEQ": "!=", "GT": ">", "GEQ": ">=", "LT": "<", "LEQ": "<="}


class Translator:
    """Turn libsbml ASTs into Python expressions.

    Arguments
    ---------
    names:
        SBML id -> Python name, for ids with a name other than :func:`mangle`'s (local parameters).
    where:
        The element the math belongs to, for error messages (e.g. ``"reaction R1"``).
    functions:
        Ids of the model's function definitions (called as ``f_<id>(…)``).
    args:
        Lambda argument names in scope (inside a function definition): kept as ``a_<name>``.
    """

    def __init__(self, names: Mapping[str, str], where: str, functions: frozenset[str],
                 args: frozenset[str] = frozenset()) -> None:
        self.names, self.where, self.functions, self.args = dict(names), where, functions, args

    def __call__(self, node) -> str:
        if node is None:
            raise ConfigError(f"{self.where} has no math (an empty <math> element); give it a formula")
        import libsbml

        tname = _type_name(node.getType(), libsbml)
        kids = [node.getChild(i) for i in range(node.getNumChildren())]
        c = [self(k) for k in kids] if tname not in ("LAMBDA",) else []
        if tname in ("INTEGER", "REAL", "REAL_E", "RATIONAL"):
            return repr(float(node.getValue()))
        if tname == "NAME":
            name = node.getName()
            if name in self.args:
                return f"a_{name}"
            return self.names.get(name, mangle(name))
        if tname == "NAME_TIME":
            return "t"
        if tname == "NAME_AVOGADRO":
            return repr(AVOGADRO)
        if tname == "CONSTANT_E":
            return repr(math.e)
        if tname == "CONSTANT_PI":
            return repr(math.pi)
        if tname in ("CONSTANT_TRUE", "CONSTANT_FALSE"):
            return "True" if tname == "CONSTANT_TRUE" else "False"
        if tname == "PLUS":
            return "(" + " + ".join(c) + ")" if c else "0.0"
        if tname == "TIMES":
            return "(" + " * ".join(c) + ")" if c else "1.0"
        if tname == "MINUS":
            return f"(-{c[0]})" if len(c) == 1 else f"({c[0]} - {c[1]})"
        if tname == "DIVIDE":
            return f"_div({c[0]}, {c[1]})"
        if tname in ("POWER", "FUNCTION_POWER"):
            return f"_pow({c[0]}, {c[1]})"
        if tname == "FUNCTION_ROOT":
            return f"_pow({c[1]}, _div(1.0, {c[0]}))" if len(c) == 2 else f"_sqrt({c[0]})"
        if tname == "FUNCTION_LOG":
            return f"_div(_ln({c[1]}), _ln({c[0]}))" if len(c) == 2 else f"_log10({c[0]})"
        if tname == "FUNCTION_PIECEWISE":
            out = c[-1] if len(c) % 2 == 1 else "math.nan"
            for k in range(len(c) // 2 - 1, -1, -1):
                out = f"_where({c[2 * k + 1]}, {c[2 * k]}, {out})"
            return out
        if tname.startswith("FUNCTION_") and tname[9:] in _FUNCS:
            return _FUNCS[tname[9:]].format(*c)
        if tname in ("FUNCTION_MAX", "FUNCTION_MIN"):
            return f"_{tname[9:].lower()}({', '.join(c)})"
        if tname == "FUNCTION_REM":
            return f"_rem({c[0]}, {c[1]})"
        if tname == "FUNCTION_QUOTIENT":
            return f"_quot({c[0]}, {c[1]})"
        if tname.startswith("RELATIONAL_"):
            op = _RELATIONAL[tname[11:]]
            pairs = [f"({a} {op} {b})" for a, b in zip(c, c[1:])]
            return pairs[0] if len(pairs) == 1 else f"_and({', '.join(pairs)})"
        if tname in ("LOGICAL_AND", "LOGICAL_OR", "LOGICAL_XOR"):
            return f"_{tname[8:].lower()}({', '.join(c)})"
        if tname == "LOGICAL_NOT":
            return f"_not({c[0]})"
        if tname == "LOGICAL_IMPLIES":
            return f"_or(_not({c[0]}), {c[1]})"
        if tname == "FUNCTION":
            fid = node.getName()
            if fid not in self.functions:
                raise ConfigError(f"{self.where} calls {fid}(…), which is not a function definition of "
                                  "the model; define it (<functionDefinition>) or fix the name")
            return f"f_{fid}({', '.join(c)})"
        if tname == "FUNCTION_DELAY":
            raise UnsupportedModelError(f"{self.where} uses delay(…): delay differential equations are "
                                        "not supported; remove the delay or use a delay-free model")
        if tname == "FUNCTION_RATE_OF":
            raise UnsupportedModelError(f"{self.where} uses rateOf(…), which is not supported; write the "
                                        "rate of change out explicitly")
        raise UnsupportedModelError(f"{self.where} uses the MathML construct {tname.lower()} "
                                    f"({libsbml.formulaToL3String(node)}), which flowsim does not translate")


def symbols_of(node) -> set[str]:
    """The SBML ids a math tree refers to (names only; not function names or time).

    Examples
    --------
    >>> import libsbml
    >>> sorted(symbols_of(libsbml.parseL3Formula("k1 * S1 / (Km + S1)")))
    ['Km', 'S1', 'k1']
    """
    import libsbml

    out: set[str] = set()
    if node is None:
        return out
    stack = [node]
    while stack:
        n = stack.pop()
        if n.getType() == libsbml.AST_NAME:
            out.add(n.getName())
        stack.extend(n.getChild(i) for i in range(n.getNumChildren()))
    return out


_TYPE_NAMES: dict[int, str] = {}


def _type_name(code: int, libsbml) -> str:
    if not _TYPE_NAMES:
        for key in dir(libsbml):
            if key.startswith("AST_"):
                _TYPE_NAMES.setdefault(getattr(libsbml, key), key[4:])
    return _TYPE_NAMES.get(code, f"UNKNOWN_{code}")
