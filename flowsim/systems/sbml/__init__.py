"""SBML import: :func:`from_sbml` reads a published model (python-libsbml, ``flowsim[sbml]``)
into an :class:`~flowsim.ODESystem` whose vector field is generated torch code, batched over
states and per-sample parameters.

Supported and refused SBML features are listed in ``docs/sbml.md``.
"""

from .examples import EXAMPLE_MODELS as EXAMPLE_MODELS
from .examples import example_model as example_model
from .read import unsupported_constructs as unsupported_constructs
from .system import SBMLSystem as SBMLSystem
from .system import from_sbml as from_sbml
from .system import rebuild_sbml as rebuild_sbml

__all__ = ["SBMLSystem", "from_sbml", "rebuild_sbml", "unsupported_constructs", "example_model",
           "EXAMPLE_MODELS"]
