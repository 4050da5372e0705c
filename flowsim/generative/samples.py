"""Data for generative models: :class:`SampleSet` (samples and optional conditions), from a tensor
or from a variable of a flowsim store."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import ShapeError, StoreError

__all__ = ["SampleSet", "as_samples", "samples_from_store"]


@dataclass(frozen=True)
class SampleSet:
    """Samples ``x`` ``(n, dim)`` of a distribution and, for a conditional model, their
    conditions ``c`` ``(n, n_cond)`` (float64, CPU), validated.

    Use :func:`as_samples` (a tensor) or :func:`samples_from_store` to build one.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import as_samples
    >>> s = as_samples(torch.randn(10, 2), torch.rand(10))
    >>> s.dim, s.n_cond, len(s)
    (2, 1, 10)
    """

    x: Tensor
    c: Tensor | None = None

    @property
    def dim(self) -> int:
        return self.x.shape[1]

    @property
    def n_cond(self) -> int:
        return 0 if self.c is None else self.c.shape[1]

    def __len__(self) -> int:
        return self.x.shape[0]

    def split(self, fraction: float, seed: int = 0) -> tuple[SampleSet, SampleSet]:
        """Two random parts: ``(1 − fraction, fraction)`` of the samples (e.g. train, held out)."""
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(self), generator=g)
        k = max(1, min(len(self) - 1, round(len(self) * (1 - fraction))))
        a, b = perm[:k], perm[k:]
        c = self.c
        return (SampleSet(self.x[a], None if c is None else c[a]),
                SampleSet(self.x[b], None if c is None else c[b]))


def as_samples(x, condition=None) -> SampleSet:
    """Validate samples ``x`` ``(n, dim)`` (and conditions ``(n,)`` or ``(n, n_cond)``) into a
    :class:`SampleSet`; a :class:`SampleSet` is returned as it is, or with ``condition``
    attached when it has none.

    Arguments
    ---------
    x:
        ``(n, dim)`` samples (tensor or array).
    condition:
        ``None``, or ``(n,)`` / ``(n, n_cond)`` conditions, one per sample.

    Raises
    ------
    ShapeError
        Not 2-D, fewer than two samples, NaN or inf, conditions of another length, or
        conditions for a :class:`SampleSet` that already has some.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.generative import as_samples
    >>> try:
    ...     as_samples(torch.tensor([[0.0, float("nan")], [1.0, 1.0]]))
    ... except flowsim.ShapeError as err:
    ...     print(str(err)[:36])
    samples contain NaN or inf in 1 rows
    """
    if isinstance(x, SampleSet):
        if condition is None:
            return x
        if x.c is not None:
            raise ShapeError("the SampleSet already carries conditions; pass either the SampleSet "
                             "or new conditions with its samples (as_samples(samples.x, condition))")
        x = x.x
    x = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ShapeError(f"samples must be a (n, dim) tensor with n >= 2; got shape {tuple(x.shape)}")
    bad = int((~torch.isfinite(x).all(dim=1)).sum())
    if bad:
        raise ShapeError(f"samples contain NaN or inf in {bad} rows; drop them first "
                         "(x[torch.isfinite(x).all(dim=1)])")
    c = None
    if condition is not None:
        c = torch.as_tensor(condition).detach().to(device="cpu", dtype=torch.float64)
        if c.ndim == 1:
            c = c[:, None]
        if c.ndim != 2 or c.shape[0] != x.shape[0]:
            raise ShapeError(f"conditions must be (n,) or (n, n_cond) with n = {x.shape[0]} "
                             f"(one per sample); got {tuple(c.shape)}")
        if not bool(torch.isfinite(c).all()):
            raise ShapeError("conditions contain NaN or inf")
    return SampleSet(x, c)


def samples_from_store(store: str | os.PathLike, *, variable: str = "x", time: float | None = None,
                       burn_in: float = 0.0, stride: int = 1) -> SampleSet:
    """States of a flowsim store as samples: all stored states after ``burn_in`` (every
    ``stride``-th time point; e.g. the invariant measure along a long trajectory), or those at
    one ``time`` (an ensemble's distribution at that time).

    Arguments
    ---------
    store:
        A store path (see :func:`flowsim.data.open_store`).
    variable:
        The state variable (``"x"``).
    time:
        Take the states at the stored time nearest ``time`` only; ``None``: all times.
    burn_in:
        Drop times before this one (transients before the attractor).
    stride:
        Keep every ``stride``-th time point (thins correlated states).

    Raises
    ------
    StoreError
        No such variable, or no states left.

    Examples
    --------
    >>> import tempfile, torch, flowsim
    >>> from flowsim.generative import samples_from_store
    >>> path = tempfile.mkdtemp() + "/l63.zarr"
    >>> _ = flowsim.simulate_ensemble("lorenz63", 2, torch.linspace(0, 4, 41), store=path, progress=False)
    >>> samples_from_store(path, burn_in=1.0).x.shape
    torch.Size([62, 3])
    """
    from ..data import open_store

    ds = open_store(store)
    if variable not in ds:
        raise StoreError(f"store {store} has no variable {variable!r}; it has {list(ds.data_vars)}")
    if stride < 1:
        raise ShapeError(f"stride must be a positive integer; got {stride!r}")
    da = ds[variable]
    if "status" in ds:
        da = da.isel(trajectory=(ds["status"].values == 0))
    times = ds["time"].values
    if time is not None:
        import numpy as np

        da = da.isel(time=[int(np.abs(times - time).argmin())])
    else:
        da = da.isel(time=[i for i, v in enumerate(times) if v >= burn_in][::stride])
    x = torch.as_tensor(da.values).reshape(-1, da.shape[-1])
    if x.shape[0] < 2:
        raise StoreError(f"store {store}: fewer than two states left after burn_in={burn_in}")
    return as_samples(x)
