"""What evolves: the :class:`ODESystem` abstraction and the catalogue of systems."""

from . import biology as biology
from . import pharmacokinetics as pharmacokinetics
from . import physics as physics
from .base import ODESystem as ODESystem
from .custom import CallableSpec as CallableSpec
from .custom import from_callable as from_callable
from .parameters import Parameter as Parameter
from .registry import get_system as get_system
from .registry import list_systems as list_systems
from .registry import register_system as register_system
from .sbml import from_sbml as from_sbml

__all__ = [
    "CallableSpec",
    "ODESystem",
    "Parameter",
    "from_callable",
    "from_sbml",
    "get_system",
    "list_systems",
    "register_system",
    "physics",
    "biology",
]
