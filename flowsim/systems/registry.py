"""Registry of named systems: :func:`get_system`, :func:`list_systems`, :func:`register_system`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ParameterError, SystemNotFoundError
from .base import ODESystem

__all__ = ["get_system", "list_systems", "register_system"]

_REGISTRY: dict[str, Callable[..., ODESystem]] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def register_system(
    factory: Callable[..., ODESystem], name: str | None = None, *, overwrite: bool = False
) -> Callable[..., ODESystem]:
    """Register a system class (or factory) under ``name`` (default: its ``name`` attribute).

    Usable as a decorator on an :class:`~flowsim.systems.ODESystem` subclass.

    Arguments
    ---------
    factory:
        An ``ODESystem`` subclass, or any callable returning an ``ODESystem`` (its keyword
        arguments become the system's constructor arguments, e.g. ``lorenz96(n=…)``).
    name:
        Registry name (default: ``factory.name``).
    overwrite:
        Replace an existing registration of the same name.

    Returns
    -------
    callable
        ``factory`` itself, so it can be used as a decorator.

    Raises
    ------
    ParameterError
        If the name is taken and ``overwrite`` is false.

    Examples
    --------
    >>> import flowsim
    >>> from flowsim.systems import ODESystem, register_system
    >>> @register_system
    ... class Decay(ODESystem):
    ...     name = "my_decay"
    ...     state_names = ("x",)
    ...     parameters = (flowsim.Parameter("k", 1.0, prior=(0.5, 2.0)),)
    ...     initial_box = ((0.0, 1.0),)
    ...     default_x0 = (1.0,)
    ...     def vector_field(self, t, x, p):
    ...         return -p[:, :1] * x
    >>> flowsim.get_system("my_decay").dim
    1
    """
    key = _key(name or getattr(factory, "name", ""))
    if not key:
        raise ParameterError("register_system needs a name: set the class's `name` or pass name=")
    if key in _REGISTRY and not overwrite and _REGISTRY[key] is not factory:
        raise ParameterError(f"a system named {key!r} is already registered; pass overwrite=True")
    _REGISTRY[key] = factory
    return factory


def get_system(name: str | ODESystem, **kwargs: Any) -> ODESystem:
    """Build a catalogue system by name, with parameter overrides.

    Arguments
    ---------
    name:
        A registered name (case, ``-`` and ``_`` are ignored), or an ODESystem (returned,
        with ``kwargs`` applied as parameter overrides).
    **kwargs:
        Parameter overrides (``mu=5.0``) and constructor options (``n=10`` for Lorenz-96).

    Returns
    -------
    ODESystem

    Raises
    ------
    SystemNotFoundError
        Unknown name (the message lists the known ones).
    ParameterError
        Unknown parameter names or values outside their domain.

    Examples
    --------
    >>> import flowsim
    >>> flowsim.get_system("van-der-pol", mu=2.0).defaults
    {'mu': 2.0}
    """
    if isinstance(name, ODESystem):
        return name.with_params(**kwargs) if kwargs else name
    key = _key(str(name))
    if key not in _REGISTRY:
        raise SystemNotFoundError(
            f"no system named {name!r}; known systems: {', '.join(sorted(_REGISTRY))} "
            "(or wrap your own ODE with flowsim.systems.from_callable)"
        )
    try:
        return _REGISTRY[key](**kwargs)
    except TypeError as err:  # unexpected constructor keyword
        raise ParameterError(f"{key}: {err}") from None


def list_systems() -> list[str]:
    """Names of all registered systems, sorted.

    Examples
    --------
    >>> import flowsim
    >>> "lorenz63" in flowsim.list_systems()
    True
    """
    return sorted(_REGISTRY)
