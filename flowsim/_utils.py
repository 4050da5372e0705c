"""Small private helpers shared across flowsim modules."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

__all__ = ["as_generator", "atomic_path"]


def as_generator(
    generator: torch.Generator | int | None, device: torch.device | str | None = None
) -> torch.Generator:
    """Return a ``torch.Generator``: the one given, one seeded with an int, or a fresh random one."""
    if isinstance(generator, torch.Generator):
        return generator
    g = torch.Generator(device=device or "cpu")
    if generator is None:
        g.seed()
    else:
        g.manual_seed(int(generator))
    return g


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A crash inside the block leaves ``path`` untouched (the old file, or nothing).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
