"""flowsim: neural flow maps as fast, differentiable surrogates for ODE solvers."""

from . import errors as errors
from . import systems as systems
from . import train as train
from ._version import __version__ as __version__
from .errors import CheckpointError as CheckpointError
from .errors import ConfigError as ConfigError
from .errors import ExtrapolationWarning as ExtrapolationWarning
from .errors import FailedTrajectoryWarning as FailedTrajectoryWarning
from .errors import FlowsimError as FlowsimError
from .errors import ParameterError as ParameterError
from .errors import ShapeError as ShapeError
from .errors import SolverError as SolverError
from .errors import StoreError as StoreError
from .errors import SystemNotFoundError as SystemNotFoundError
from .errors import TimeGridError as TimeGridError
from .errors import UnsupportedModelError as UnsupportedModelError
from .errors import VectorFieldError as VectorFieldError
from .maps import FlowMap as FlowMap
from .maps import FlowMapEnsemble as FlowMapEnsemble
from .maps import FlowMapLike as FlowMapLike
from .solve import Solution as Solution
from .solve import SolverOptions as SolverOptions
from .solve import Status as Status
from .solve import reference_solve as reference_solve
from .systems import ODESystem as ODESystem
from .systems import Parameter as Parameter
from .systems import from_callable as from_callable
from .systems import from_sbml as from_sbml
from .systems import get_system as get_system
from .systems import list_systems as list_systems
from .systems import register_system as register_system
from .train import FitConfig as FitConfig
from .train import fit as fit
from .train import fit_ensemble as fit_ensemble
from .train import load as load
from .train import save as save

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ExtrapolationWarning",
    "FailedTrajectoryWarning",
    "FlowMap",
    "FitConfig",
    "FlowMapEnsemble",
    "FlowMapLike",
    "FlowsimError",
    "ODESystem",
    "Parameter",
    "ParameterError",
    "ShapeError",
    "Solution",
    "SolverOptions",
    "Status",
    "SolverError",
    "StoreError",
    "SystemNotFoundError",
    "TimeGridError",
    "UnsupportedModelError",
    "VectorFieldError",
    "analysis",
    "data",
    "evaluate",
    "open_store",
    "quickstart",
    "report",
    "simulate_ensemble",
    "steer",
    "Observations",
    "calibrate",
    "sample_posterior",
    "optimise",
    "gradient_check",
    "generative",
    "errors",
    "metrics",
    "testing",
    "fit",
    "fit_ensemble",
    "from_callable",
    "from_sbml",
    "load",
    "save",
    "train",
    "get_system",
    "list_systems",
    "reference_solve",
    "register_system",
    "systems",
]


#: the steering entry points, at the top level as well as in flowsim.steer
_STEER = ("Observations", "calibrate", "sample_posterior", "optimise", "gradient_check")


def __getattr__(name: str):
    """Import the heavier layers (``analysis``, ``data``, ``report``, ``testing``) and
    ``metrics`` on first use."""
    import importlib

    if name in ("analysis", "data", "generative", "metrics", "report", "steer", "testing"):
        return importlib.import_module(f".{name}", __name__)
    if name in ("simulate_ensemble", "open_store"):
        return getattr(importlib.import_module(".data", __name__), name)
    if name in _STEER:
        return getattr(importlib.import_module(".steer", __name__), name)
    if name in ("quickstart", "evaluate"):
        return getattr(importlib.import_module(".report", __name__), name)
    raise AttributeError(f"module 'flowsim' has no attribute {name!r}")
