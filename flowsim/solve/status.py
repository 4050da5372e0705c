"""Per-trajectory status codes returned by solves and stored in ensembles."""

from __future__ import annotations

import enum

__all__ = ["Status"]


class Status(enum.IntEnum):
    """Outcome of one trajectory's solve; stored as ``int8`` in solutions and stores.

    Examples
    --------
    >>> from flowsim import Status
    >>> Status(0).name
    'OK'
    """

    OK = 0
    NONFINITE = 1  #: the state became NaN or infinite (the solution diverged)
    MAX_STEPS = 2  #: the solver hit its step limit (often: a stiff problem for an explicit method)
    STEP_UNDERFLOW = 3  #: the adaptive step size shrank to zero
    SOLVER_ERROR = 4  #: the solver reported another failure

    @classmethod
    def describe(cls) -> dict[int, str]:
        """``{code: name}`` for all codes (stored in dataset attributes)."""
        return {int(s): s.name for s in cls}
