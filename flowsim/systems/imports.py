"""A user's own system named by an import path, ``"mypkg.models:make_system"``.

The command line takes ``--system mypkg.models:make_system`` wherever it takes a catalogue name.
:func:`resolve_system` imports it and records the path on the system (:func:`system_spec`);
:meth:`ODESystem.describe` then carries it as ``"import_path"``, so stores (``system_json``) and
checkpoints (``config.json``) remember it, and :func:`rebuild_system` builds the system again in a
later process (``flowsim info``, ``flowsim train --store``, ``flowsim evaluate``,
:func:`flowsim.load`).
"""

from __future__ import annotations

import importlib
from typing import Any

from ..errors import FlowsimError, SystemNotFoundError
from .base import ODESystem
from .registry import get_system

__all__ = ["is_import_path", "rebuild_system", "resolve_system", "system_spec"]

#: The attribute of an ODESystem that holds the import path it was built from.
ATTRIBUTE = "import_path"


def is_import_path(text: str) -> bool:
    """Whether ``text`` names an import path (``module:attribute``) rather than a catalogue name.

    Examples
    --------
    >>> from flowsim.systems.imports import is_import_path
    >>> is_import_path("mypkg.models:make_system"), is_import_path("fitzhugh_nagumo")
    (True, False)
    """
    return isinstance(text, str) and ":" in text


def resolve_system(spec: str, *, recorded_in: str | None = None) -> ODESystem:
    """Import the system named by ``spec`` = ``"module.path:attribute"``.

    The attribute may be an :class:`~flowsim.ODESystem` instance, an ODESystem subclass
    (instantiated without arguments) or a callable returning an ODESystem (called without
    arguments). The path is recorded on the system (:func:`system_spec`).

    Arguments
    ---------
    spec:
        ``"module.path:attribute"`` (the module must be importable: installed or on ``PYTHONPATH``).
    recorded_in:
        Where the path was read from (``"the store"``, ``"the checkpoint"``), for the message.

    Returns
    -------
    ODESystem
        The system, with ``spec`` recorded on it.

    Raises
    ------
    SystemNotFoundError
        A malformed path, a module or attribute that cannot be imported, or an attribute that
        gives no ODESystem; the message says how to fix it.

    Examples
    --------
    >>> from flowsim.systems.imports import resolve_system, system_spec
    >>> sys = resolve_system("flowsim.systems.biology:FitzHughNagumo")
    >>> sys.name, system_spec(sys)
    ('fitzhugh_nagumo', 'flowsim.systems.biology:FitzHughNagumo')
    """
    where = f" recorded in {recorded_in}" if recorded_in else ""
    module_name, _, attr = str(spec).partition(":")
    if not module_name or not attr:
        raise SystemNotFoundError(
            f"{spec!r} is not an import path; write it as module.path:attribute, "
            "e.g. mypkg.models:make_system")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as err:  # noqa: BLE001 - the user's module may raise anything on import
        raise SystemNotFoundError(
            f"could not import {spec}{where}: {type(err).__name__}: {err}; make it importable "
            "(PYTHONPATH) or pass system=… (--system on the command line)") from err
    system = obj
    if not isinstance(system, ODESystem):
        if not callable(system):
            raise SystemNotFoundError(
                f"{spec} is a {type(system).__name__}, not an ODESystem or a function returning one")
        try:
            system = system()
        except FlowsimError:
            raise
        except Exception as err:  # noqa: BLE001 - the user's code may raise anything
            raise SystemNotFoundError(
                f"calling {spec}(){where} failed: {type(err).__name__}: {err}") from err
    if not isinstance(system, ODESystem):
        raise SystemNotFoundError(
            f"{spec}() returned a {type(system).__name__}, not an ODESystem; return one (e.g. from "
            "flowsim.from_callable)")
    setattr(system, ATTRIBUTE, str(spec))
    return system


def system_spec(system: ODESystem) -> str | None:
    """The import path ``system`` was built from by :func:`resolve_system` (``None`` if none).

    Examples
    --------
    >>> import flowsim
    >>> from flowsim.systems.imports import system_spec
    >>> system_spec(flowsim.get_system("lotka_volterra")) is None
    True
    """
    return getattr(system, ATTRIBUTE, None)


def rebuild_system(name: str, constructor: dict[str, Any] | None = None, spec: str | None = None,
                   *, recorded_in: str | None = None, sbml: dict[str, Any] | None = None) -> ODESystem:
    """The system a store or checkpoint recorded: from its SBML record (``describe()["sbml"]``
    of a :func:`~flowsim.from_sbml` system) or its import path if one is recorded, else the
    catalogue entry ``name`` with ``constructor`` arguments.

    Raises
    ------
    SystemNotFoundError
        Neither is available (the message says to make the module importable or pass the system).

    Examples
    --------
    >>> from flowsim.systems.imports import rebuild_system
    >>> rebuild_system("van_der_pol", {"mu": 2.0}).defaults
    {'mu': 2.0}
    """
    if sbml:
        from .sbml import rebuild_sbml

        return rebuild_sbml(sbml, constructor)
    if not spec:
        return get_system(name, **dict(constructor or {}))
    system = resolve_system(spec, recorded_in=recorded_in)
    if system.name != name:
        raise SystemNotFoundError(
            f"{spec}{' recorded in ' + recorded_in if recorded_in else ''} now gives the system "
            f"{system.name!r}, not {name!r}; pass system=… explicitly")
    if constructor:
        try:
            system = system.with_params(**constructor)
        except Exception:  # noqa: BLE001 - a factory's own arguments: keep what it built
            pass
        setattr(system, ATTRIBUTE, str(spec))
    return system
