"""A do-nothing stand-in for a tqdm bar, so ``progress=False`` never imports tqdm."""

from __future__ import annotations

from typing import Any

__all__ = ["silent_bar"]


class silent_bar:  # noqa: N801 - used where ``tqdm`` would be
    """Accepts tqdm's arguments and calls and does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.n = kwargs.get("initial", 0)

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __enter__(self) -> silent_bar:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None
