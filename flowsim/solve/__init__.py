"""Reference solutions: torchdiffeq (batched) and scipy (per trajectory), with status codes."""

from .reference import DEFAULT_ATOL as DEFAULT_ATOL
from .reference import DEFAULT_RTOL as DEFAULT_RTOL
from .reference import reference_solve as reference_solve
from .solution import Solution as Solution
from .status import Status as Status

__all__ = ["DEFAULT_ATOL", "DEFAULT_RTOL", "Solution", "Status", "reference_solve"]
