"""Checks of what users hand to a system: real (not complex) numbers, and a vector field that
runs on a batch.

A user's ``f(t, x, p)`` is called once on a small batch before anything long starts (at
:func:`~flowsim.systems.from_callable` and before a reference solve), so a function that raises,
returns the wrong shape or dtype, or was written for one state fails at once with a
:class:`~flowsim.errors.VectorFieldError` that names the system and chains the user's error.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..errors import ConfigError, FlowsimError, VectorFieldError

if TYPE_CHECKING:
    from .base import ODESystem

__all__ = ["BATCH_HINT", "call_vector_field", "check_batched", "estimate_timescale", "is_complex",
           "refuse_complex", "round_125", "vector_field_failed"]

#: How a vector field is called; every VectorFieldError message ends with it.
BATCH_HINT = ("f must accept a batch: it is called as f(t, x, p) with x (batch, dim), t scalar or "
              "(batch,), p (batch, n_params); index states and parameters by column (x[:, 0], "
              "p[:, :1]), not by row (x[0])")


def is_complex(value: Any) -> bool:
    """Whether ``value`` (a tensor, a numpy array or scalar, a Python number or a sequence of
    them) holds complex numbers.

    Examples
    --------
    >>> import torch
    >>> is_complex(torch.ones(2, dtype=torch.complex64)), is_complex([1.0, 2j]), is_complex(1.0)
    (True, True, False)
    """
    if isinstance(value, Tensor):
        return value.is_complex()
    if isinstance(value, complex):
        return True
    kind = getattr(getattr(value, "dtype", None), "kind", None)  # numpy arrays and scalars
    if kind is not None:
        return kind == "c"
    if isinstance(value, (list, tuple)):
        return any(is_complex(v) for v in value)
    return False


def refuse_complex(value: Any, what: str, error: type[FlowsimError]) -> None:
    """Raise ``error`` if ``value`` is complex: flowsim integrates real ODEs only, and casting
    would drop the imaginary part silently.

    Examples
    --------
    >>> from flowsim.errors import ShapeError
    >>> try:
    ...     refuse_complex(1 + 2j, "t", ShapeError)
    ... except ShapeError as err:
    ...     print(str(err)[:33])
    t is complex; flowsim solves real
    """
    if is_complex(value):
        raise error(f"{what} is complex; flowsim solves real ODEs: split a complex state into real "
                    "and imaginary parts (two real states)")


def _shapes(t: Any, x: Tensor, p: Any) -> str:
    return ", ".join(f"{k} {tuple(v.shape) if isinstance(v, Tensor) else type(v).__name__}"
                     for k, v in (("t", t), ("x", x), ("p", p)))


def vector_field_failed(system: ODESystem, err: BaseException, t: Any, x: Any, p: Any,
                        when: str = "") -> VectorFieldError:
    """The :class:`~flowsim.errors.VectorFieldError` for a vector field that raised ``err``
    (raise it ``from err``); ``when`` says where, e.g. ``" during the solve"``.

    Examples
    --------
    >>> import torch, flowsim
    >>> sho = flowsim.get_system("harmonic_oscillator")
    >>> str(vector_field_failed(sho, KeyError("k"), 0.0, torch.ones(2, 2), torch.ones(2, 0)))[:60]
    "the vector field of 'harmonic_oscillator' raised KeyError: '"
    """
    return VectorFieldError(
        f"the vector field of {system.name!r} raised {type(err).__name__}: {err}{when} (called with "
        f"{_shapes(t, x, p)}). {BATCH_HINT}"
    )


def call_vector_field(system: ODESystem, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
    """``system.vector_field(t, x, p)``, checked: an exception becomes a
    :class:`~flowsim.errors.VectorFieldError` naming the system (the original chained), and the
    output must be a tensor of ``x``'s shape and dtype. For probes and checked entry points,
    not for the solvers' hot loop.

    Raises
    ------
    VectorFieldError
        The vector field raised, or returned a non-tensor, the wrong shape or the wrong dtype.

    Examples
    --------
    >>> import torch, flowsim
    >>> sho = flowsim.get_system("harmonic_oscillator")
    >>> x = torch.ones(3, 2, dtype=torch.float64)
    >>> call_vector_field(sho, torch.tensor(0.0, dtype=torch.float64), x, sho.default_params(3)).shape
    torch.Size([3, 2])
    """
    try:
        out = system.vector_field(t, x, p)
    except FlowsimError:
        raise
    except Exception as err:
        raise vector_field_failed(system, err, t, x, p) from err
    if not isinstance(out, Tensor):
        raise VectorFieldError(f"the vector field of {system.name!r} returned a "
                               f"{type(out).__name__}; it must return a torch.Tensor of x's shape "
                               f"{tuple(x.shape)}. {BATCH_HINT}")
    if out.shape != x.shape:
        one = " (the shape of one state: was f written for a single state?)" \
            if out.shape == x.shape[1:] else ""
        raise VectorFieldError(f"the vector field of {system.name!r} returned shape "
                               f"{tuple(out.shape)}{one} for x of shape {tuple(x.shape)}; it must "
                               f"return (batch, {system.dim}). {BATCH_HINT}")
    if out.dtype != x.dtype:
        raise VectorFieldError(f"the vector field of {system.name!r} returned {out.dtype} for "
                               f"{x.dtype} states; compute in x's dtype (torch.zeros_like(x), or "
                               "tensors created with dtype=x.dtype)")
    return out


def check_batched(system: ODESystem, t: Tensor, x: Tensor, p: Tensor, out: Tensor,
                  rows: int = 2) -> None:
    """Refuse a vector field that mixes the samples of a batch: row ``i`` of ``f(t, x, p)`` must
    equal ``f(t, x[i:i+1], p[i:i+1])`` (as one written for one state, indexing ``x[0]``, does not).

    Raises
    ------
    VectorFieldError
        A row differs from the same sample evaluated alone.
    """
    for i in range(min(rows, x.shape[0])):
        ti = t if t.ndim == 0 else t[i:i + 1]
        one = call_vector_field(system, ti, x[i:i + 1], p[i:i + 1])[0]
        tol = 1e-12 + 1e-9 * float(out[i].abs().nan_to_num(0.0, 0.0, 0.0).max())
        if not torch.allclose(one, out[i], rtol=1e-6, atol=tol, equal_nan=True):
            raise VectorFieldError(
                f"the vector field of {system.name!r} mixes the samples of a batch: row {i} of "
                f"f(t, x, p) is {out[i].tolist()} but f(t, x[{i}:{i + 1}], p[{i}:{i + 1}]) gives "
                f"{one.tolist()} (x[0] or p[0] picks the first sample, not the first state). "
                f"{BATCH_HINT}"
            )


def round_125(value: float) -> float:
    """The largest of 1, 2, 5 × 10ᵏ not above ``value`` (a round, slightly conservative number).

    Examples
    --------
    >>> round_125(6.28), round_125(0.31), round_125(1.0)
    (5.0, 0.2, 1.0)
    """
    k = math.floor(math.log10(value) + 1e-12)
    for m in (5.0, 2.0, 1.0):
        if m * 10.0**k <= value * (1 + 1e-12):
            return float(f"{m * 10.0 ** k:.12g}")
    return float(f"{10.0 ** k:.12g}")


def estimate_timescale(system: ODESystem, n: int = 64, generator: int = 0) -> float:
    """A characteristic time of ``system`` from its vector field on prior samples.

    For ``n`` initial states and parameters drawn from the priors, the normalised rate
    ``r = ‖b(0, x; p) / σ‖ / √dim`` (``σ``: each state's spread over the samples) says how many
    of its own spreads a state moves per unit time; the timescale is ``2π / median(r)`` (one
    "period" of a motion at that rate, the convention of the catalogue, whose timescales are
    periods), rounded down to 1, 2 or 5 × 10ᵏ. Samples where ``b`` is not finite or zero are
    ignored.

    Raises
    ------
    ConfigError
        Fewer than a quarter of the samples give a finite, non-zero rate: pass ``timescale=``.
    VectorFieldError
        The vector field fails on the samples.

    Examples
    --------
    >>> import flowsim
    >>> estimate_timescale(flowsim.get_system("harmonic_oscillator"))  # period 2π
    5.0
    """
    x = system.sample_initial(n, generator=generator).to(torch.float64)
    p = system.sample_params(n, generator=generator, dtype=torch.float64)
    b = call_vector_field(system, torch.zeros((), dtype=torch.float64), x, p)
    sigma = x.std(dim=0)
    fallback = x.abs().mean(dim=0)
    sigma = torch.where(sigma > 0, sigma, torch.where(fallback > 0, fallback, torch.ones_like(sigma)))
    rate = (b / sigma).pow(2).mean(dim=1).sqrt()
    good = rate[torch.isfinite(rate) & (rate > 0)]
    if good.numel() < max(1, n // 4):
        raise ConfigError(
            f"{system.name}: cannot estimate a timescale: the vector field is zero or not finite on "
            f"{n - good.numel()} of {n} prior samples; pass timescale=… (a characteristic time, "
            "e.g. one period, in the system's time units)")
    return round_125(2 * math.pi / float(good.median()))
