"""Read an SBML document (a path, an XML string or a libsbml document) and list the constructs
flowsim refuses."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...errors import ConfigError

__all__ = ["import_libsbml", "read_document", "unsupported_constructs"]


def import_libsbml():
    """``libsbml``, or a :class:`~flowsim.errors.ConfigError` saying how to install it."""
    try:
        import libsbml
    except ImportError:  # pragma: no cover - the sbml extra is installed in CI
        raise ConfigError("SBML import needs python-libsbml: pip install 'flowsim[sbml]'") from None
    return libsbml


def read_document(source: Any) -> tuple[Any, str]:
    """The libsbml document and its XML text, from a path, an XML string or a document.

    Raises
    ------
    ConfigError
        A missing file, malformed XML, a file that is not SBML, an SBML level/version libsbml
        rejects, or a document without a model.
    """
    libsbml = import_libsbml()
    if isinstance(source, libsbml.SBMLDocument):
        text = libsbml.writeSBMLToString(source)
        where = "the SBML document"
    elif isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and source.lstrip().startswith("<"):
            text, where = source, "the SBML string"
        else:
            path = Path(source)
            if not path.is_file():
                what = ("is a folder, not an SBML file" if path.is_dir() else
                        "is neither an existing file nor SBML text (which starts with '<')")
                raise ConfigError(f"{str(source)[:80]!r} {what}; give the path of an SBML (.xml) "
                                  "file, an XML string or a libsbml.SBMLDocument")
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise ConfigError(f"cannot read SBML file {str(path)!r}: {err}") from None
            where = str(path)
    else:
        raise ConfigError(f"from_sbml takes a file path, an XML string or a libsbml.SBMLDocument; "
                          f"got {type(source).__name__}")
    doc = libsbml.readSBMLFromString(text)
    severe = [doc.getError(i) for i in range(doc.getNumErrors())
              if doc.getError(i).getSeverity() >= libsbml.LIBSBML_SEV_ERROR]
    if severe:
        msgs = "; ".join(f"line {e.getLine()}: {e.getMessage().strip()}" for e in severe[:3])
        raise ConfigError(f"{where} is not valid SBML that libsbml can read ({len(severe)} error(s)): "
                          f"{msgs}")
    if doc.getModel() is None:
        raise ConfigError(f"{where} has no <model>; give an SBML document with a model")
    return doc, text


def _math_nodes(model) -> list[tuple[str, Any]]:
    """Every piece of math in the model, with the element it belongs to."""
    out = []
    for fd in model.getListOfFunctionDefinitions():
        out.append((f"function definition {fd.getId()}", fd.getMath()))
    for ia in model.getListOfInitialAssignments():
        out.append((f"initial assignment to {ia.getSymbol()}", ia.getMath()))
    for rule in model.getListOfRules():
        out.append((f"rule for {rule.getVariable() or '(algebraic)'}", rule.getMath()))
    for r in model.getListOfReactions():
        if r.isSetKineticLaw():
            out.append((f"reaction {r.getId()}", r.getKineticLaw().getMath()))
    return out


def _has(node, types: set[int]) -> bool:
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        if n.getType() in types:
            return True
        stack.extend(n.getChild(i) for i in range(n.getNumChildren()))
    return False


def unsupported_constructs(doc) -> list[str]:
    """The constructs of ``doc``'s model that flowsim refuses, each naming its element id.

    Events, delays, ``rateOf``, algebraic rules, fast reactions, variable compartments,
    variable stoichiometry, reactions without a kinetic law (constraint-based models) and
    unflattened hierarchical (``comp``) models.

    Examples
    --------
    >>> import libsbml
    >>> doc = libsbml.SBMLDocument(3, 1)
    >>> m = doc.createModel()
    >>> e = m.createEvent(); _ = e.setId("pulse")
    >>> unsupported_constructs(doc)
    ['event pulse']
    """
    libsbml = import_libsbml()
    model = doc.getModel()
    out = [f"event {e.getId() or '#' + str(i)}" for i, e in enumerate(model.getListOfEvents())]
    comp = model.getPlugin("comp")
    if comp is not None and comp.getNumSubmodels():
        out.append(f"hierarchical model composition (comp submodels of model {model.getId()}); flatten "
                   "it first (libsbml CompFlatteningConverter)")
    compartments = {c.getId() for c in model.getListOfCompartments()}
    refs = {sr.getId() for r in model.getListOfReactions()
            for sr in (*r.getListOfReactants(), *r.getListOfProducts()) if sr.isSetId()}
    for rule in model.getListOfRules():
        var = rule.getVariable()
        if rule.isAlgebraic():
            out.append(f"algebraic rule {rule.getMetaId() or rule.getId() or '(no id)'}")
        elif var in compartments and rule.isRate():
            out.append(f"variable compartment {var} (a rate rule)")
        elif var in refs:
            out.append(f"variable stoichiometry {var} (a rule on a species reference)")
    for r in model.getListOfReactions():
        if r.isSetFast() and r.getFast():
            out.append(f"fast reaction {r.getId()}")
        if not r.isSetKineticLaw() or r.getKineticLaw().getMath() is None:
            out.append(f"reaction {r.getId()} without a kinetic law (a constraint-based model)")
    for where, node in _math_nodes(model):
        if _has(node, {libsbml.AST_FUNCTION_DELAY}):
            out.append(f"delay in {where}")
        if _has(node, {libsbml.AST_FUNCTION_RATE_OF}):
            out.append(f"rateOf in {where}")
    return out
