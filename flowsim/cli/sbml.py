"""``flowsim systems --sbml MODEL.xml``: what flowsim makes of an SBML model."""

from __future__ import annotations

__all__ = ["describe_sbml"]


def describe_sbml(path: str) -> int:
    """Print an SBML model's states (with units and initial values), parameters (defaults,
    priors, units) and the constructs flowsim refuses; exit status 1 if there are any.

    Examples
    --------
    >>> import libsbml, tempfile, os
    >>> doc = libsbml.SBMLDocument(3, 2); m = doc.createModel(); _ = m.setId("growth")
    >>> p = m.createParameter(); _ = p.setId("x"); _ = p.setValue(1.0); _ = p.setConstant(False)
    >>> _ = m.createRateRule().setVariable("x"); _ = m.getRule(0).setMath(libsbml.parseL3Formula("x"))
    >>> path = os.path.join(tempfile.mkdtemp(), "growth.xml"); _ = libsbml.writeSBMLToFile(doc, path)
    >>> describe_sbml(path)  # doctest: +ELLIPSIS
    SBML model 'growth' (Level 3 Version 2)
    1 states:
      x  [] initial 1
    0 parameters:
    ...
    0
    """
    from ..systems.sbml import from_sbml, unsupported_constructs
    from ..systems.sbml.read import read_document

    doc, _ = read_document(path)
    model = doc.getModel()
    print(f"SBML model {model.getId()!r}{' (' + model.getName() + ')' if model.getName() else ''} "
          f"(Level {doc.getLevel()} Version {doc.getVersion()})")
    bad = unsupported_constructs(doc)
    if bad:
        print(f"unsupported constructs ({len(bad)}); flowsim.from_sbml refuses this model:")
        for item in bad:
            print(f"  - {item}")
        print(f"{model.getNumSpecies()} species, {model.getNumParameters()} parameters, "
              f"{model.getNumReactions()} reactions")
        return 1
    system = from_sbml(path)
    info = system.describe()
    names = info["sbml_names"]
    print(f"{system.dim} states:")
    for k, u, v in zip(system.state_names, system.units, system.default_x0):
        print(f"  {k}{' (' + names[k] + ')' if names.get(k) else ''}  [{u}] initial {v:g}")
    print(f"{system.n_params} parameters:")
    for q in system.parameters:
        print(f"  {q.name}{' (' + q.description + ')' if q.description else ''}  [{q.units}] "
              f"{q.default:g}, prior [{q.prior[0]:g}, {q.prior[1]:g}] log-uniform")
    fixed = info["sbml_fixed"]
    if fixed:
        shown = ", ".join(f"{k}={v:g}" for k, v in list(fixed.items())[:12])
        print(f"fixed: {shown}{' …' if len(fixed) > 12 else ''}")
    print(f"time units [{system.time_units}], timescale {system.timescale:g}"
          f"{' (estimated)' if info['timescale_estimated'] else ''}; unsupported constructs: none")
    return 0
