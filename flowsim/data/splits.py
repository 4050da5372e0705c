"""Reproducible train / validation / test splits by trajectory.

A trajectory's split depends only on its index and a seed (a SplitMix64 hash), never on chunking,
worker count or store size: growing an ensemble keeps every existing trajectory in its split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["SPLITS", "check_fractions", "split_mask", "split_of"]

#: Split names, in code order (0, 1, 2).
SPLITS = ("train", "val", "test")
_ALIASES = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Validate ``(train, val, test)`` fractions: three non-negative numbers summing to 1."""
    f = tuple(float(v) for v in fractions)
    if len(f) != 3 or min(f) < 0 or abs(sum(f) - 1.0) > 1e-9:
        raise ConfigError(f"split fractions must be three non-negative numbers (train, val, test) summing "
                          f"to 1; got {fractions}")
    return f  # type: ignore[return-value]


def _uniform(index: np.ndarray, seed: int) -> np.ndarray:
    """SplitMix64 of ``index`` mixed with ``seed``, as uniforms in [0, 1)."""
    z = np.asarray(index, dtype=np.uint64).copy()
    with np.errstate(over="ignore"):
        z += np.uint64((int(seed) * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def split_of(
    trajectory: int | Sequence[int] | np.ndarray,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> np.ndarray:
    """Split codes (0 train, 1 val, 2 test) of trajectory indices.

    Arguments
    ---------
    trajectory:
        Trajectory indices (``0 … n-1`` in a store).
    fractions:
        ``(train, val, test)`` fractions, summing to 1.
    seed:
        Split seed; the same seed gives the same split everywhere.

    Returns
    -------
    numpy.ndarray
        ``int8`` codes, shaped like ``trajectory``.

    Examples
    --------
    >>> import numpy as np
    >>> from flowsim.data import split_of
    >>> codes = split_of(np.arange(10_000), (0.8, 0.1, 0.1), seed=0)
    >>> [round(float((codes == k).mean()), 2) for k in range(3)]
    [0.8, 0.1, 0.1]
    """
    f = check_fractions(fractions)
    u = _uniform(np.atleast_1d(np.asarray(trajectory)), seed)
    codes = (u >= f[0]).astype(np.int8) + (u >= f[0] + f[1]).astype(np.int8)
    return codes.reshape(np.shape(trajectory))


def split_mask(
    n: int, split: str | None, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> np.ndarray:
    """Boolean mask ``(n,)`` of the trajectories in ``split`` (``None`` or ``"all"``: every one)."""
    if split is None or split == "all":
        return np.ones(n, dtype=bool)
    if split not in _ALIASES:
        raise ConfigError(f"unknown split {split!r}; choose 'train', 'val', 'test' or 'all'")
    return split_of(np.arange(n), fractions, seed) == _ALIASES[split]
