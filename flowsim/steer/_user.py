"""Calling the functions a user gives steering (``observe``, ``reward``): a failure inside one is
reported as a flowsim error naming the function and what it was given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from ..errors import ConfigError, FlowsimError


def call_user(fn: Callable[..., Any], signature: str, *args: Any) -> Any:
    """``fn(*args)``; an exception inside it becomes a :class:`~flowsim.ConfigError` naming
    ``signature`` and the shapes of its tensor arguments (flowsim's own errors pass through).

    Examples
    --------
    >>> import torch
    >>> try:
    ...     call_user(lambda x: x[:, 5], "observe(x, p)", torch.zeros(2, 3))
    ... except ConfigError as err:
    ...     print(str(err)[:40], "…", str(err)[-23:])
    observe(x, p) raised IndexError: index 5 … (its arguments: (2, 3))
    """
    try:
        return fn(*args)
    except FlowsimError:
        raise
    except Exception as err:  # noqa: BLE001 - the user's function may raise anything
        shapes = ", ".join(str(tuple(a.shape)) if isinstance(a, Tensor) else type(a).__name__
                           for a in args)
        raise ConfigError(f"{signature} raised {type(err).__name__}: {err} (its arguments: "
                          f"{shapes})") from err
