"""Reference solutions: typed solver options; torchdiffeq (batched), scipy (per trajectory) and
torchode (batched, per-trajectory steps) backends; status codes and evaluation counts."""

from .options import BACKENDS as BACKENDS
from .options import DEFAULT_ATOL as DEFAULT_ATOL
from .options import DEFAULT_RTOL as DEFAULT_RTOL
from .options import METHODS as METHODS
from .options import SolverOptions as SolverOptions
from .options import solver_options as solver_options
from .reference import integrate as integrate
from .reference import reference_solve as reference_solve
from .solution import Solution as Solution
from .status import Status as Status
from .torchode_backend import torchode_available as torchode_available

__all__ = [
    "BACKENDS",
    "DEFAULT_ATOL",
    "DEFAULT_RTOL",
    "METHODS",
    "Solution",
    "SolverOptions",
    "Status",
    "integrate",
    "reference_solve",
    "solver_options",
    "torchode_available",
]
