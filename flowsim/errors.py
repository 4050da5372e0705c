"""Exceptions raised by flowsim.

Every public entry point validates its input and raises a subclass of
:class:`FlowsimError` whose message says what was wrong and how to fix it.
Catch ``FlowsimError`` to handle any of them.
"""

from __future__ import annotations

__all__ = [
    "FlowsimError",
    "ShapeError",
    "ParameterError",
    "TimeGridError",
    "SolverError",
    "SystemNotFoundError",
    "StoreError",
    "CheckpointError",
    "ConfigError",
    "VectorFieldError",
    "ExtrapolationWarning",
    "FailedTrajectoryWarning",
    "MemoryBudgetError",
    "UnsupportedModelError",
    "DataError",
]


class FlowsimError(Exception):
    """Base class of every error flowsim raises on bad input or a failed operation.

    Examples
    --------
    >>> import flowsim
    >>> try:
    ...     flowsim.get_system("no-such-system")
    ... except flowsim.FlowsimError as err:
    ...     print(type(err).__name__)
    SystemNotFoundError
    """


class ShapeError(FlowsimError, ValueError):
    """An array has the wrong shape, dtype or contains non-finite values."""


class ParameterError(FlowsimError, ValueError):
    """A parameter name is unknown or a value lies outside its allowed domain."""


class TimeGridError(FlowsimError, ValueError):
    """A time grid is not one-dimensional, not finite or not strictly monotone."""


class SolverError(FlowsimError, ValueError):
    """A solver method or option is unknown or invalid."""


class SystemNotFoundError(FlowsimError, KeyError):
    """No system of that name is registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class StoreError(FlowsimError, ValueError):
    """A trajectory store is missing, incomplete, or has the wrong schema."""


class CheckpointError(FlowsimError, ValueError):
    """A checkpoint is missing, corrupted, or belongs to another system/state layout."""


class ConfigError(FlowsimError, ValueError):
    """An option or configuration value is invalid."""


class VectorFieldError(FlowsimError, RuntimeError):
    """A system's vector field (a user's ``f(t, x, p)``) raised, or returned the wrong shape,
    dtype or type; the message names the system and the user's exception is chained."""


class ExtrapolationWarning(UserWarning):
    """A flow map was asked for a jump longer than it was trained for (``jump_limit``): by
    default :meth:`~flowsim.FlowMap.jump` then composes jumps of at most ``max_jump``.

    Examples
    --------
    >>> import warnings, torch, flowsim
    >>> fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1, max_jump=1.0)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     _ = fm.jump(torch.ones(2, 2), 0.0, 3.0)
    >>> caught[0].category.__name__
    'ExtrapolationWarning'
    """


class FailedTrajectoryWarning(UserWarning):
    """Some trajectories of a reference solve failed (NaN, step limit, …); the message lists
    their rows by status code, ``Solution.status`` holds them all.

    Examples
    --------
    >>> import warnings, flowsim
    >>> issubclass(flowsim.FailedTrajectoryWarning, UserWarning)  # silence with warnings.filterwarnings
    True
    """


class MemoryBudgetError(FlowsimError, MemoryError):
    """A request that cannot fit in the device's memory however it is chunked (its inputs and
    outputs alone exceed the free memory); raised before any work.

    Examples
    --------
    >>> import flowsim
    >>> issubclass(flowsim.errors.MemoryBudgetError, MemoryError)
    True
    """


class UnsupportedModelError(ConfigError):
    """An SBML model uses a construct that flowsim does not translate (events, delays, algebraic
    rules, fast reactions, variable compartments, …); the message names the construct and the
    element's id.

    Examples
    --------
    >>> import flowsim
    >>> issubclass(flowsim.errors.UnsupportedModelError, flowsim.errors.ConfigError)
    True
    """


class DataError(FlowsimError, ValueError):
    """Measured data that cannot be used as given: missing columns, NaN or infinite values,
    duplicated or unsorted samples, unknown subjects or observables (:mod:`flowsim.steer`).

    Examples
    --------
    >>> import flowsim
    >>> issubclass(flowsim.errors.DataError, flowsim.FlowsimError)
    True
    """
