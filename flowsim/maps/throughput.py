"""Jumps at throughput: big batches in memory-sized chunks, and reduced-precision inference.

A request of 10⁶–10⁸ states does not fit a network's activations in memory at once. The checked
:meth:`~flowsim.FlowMap.jump` and :meth:`~flowsim.FlowMap.odeint` therefore evaluate a big batch in
chunks sized from the device's free memory (:func:`auto_chunk_size`), and refuse a request whose
inputs and outputs alone cannot fit (:class:`~flowsim.errors.MemoryBudgetError`) before any work.
:class:`Precision` runs inference in bfloat16 or with TF32 matmuls; float32 stays the default and
``benchmarks/throughput.py`` measures what the others cost in error.

Examples
--------
>>> import torch, flowsim
>>> fm = flowsim.FlowMap("lotka_volterra", width=16, depth=2)
>>> x = torch.rand(1000, 2) + 0.5
>>> a = fm.jump(x, 0.0, 0.5)
>>> b = fm.jump(x, 0.0, 0.5, chunk_size=128)       # same numbers, in 8 chunks
>>> bool(torch.allclose(a, b, atol=1e-6))
True
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from ..errors import ConfigError, MemoryBudgetError

__all__ = ["Precision", "auto_chunk_size", "free_memory", "jump_from_host", "run_chunked",
           "precision_context"]

#: Fraction of the free memory one chunk's activations may take.
MEMORY_FRACTION = 0.25
#: Never more states in one chunk than this (cache-friendly on a CPU, well past a GPU's saturation).
MAX_CHUNK = 1 << 21


class Precision(str, enum.Enum):
    """Arithmetic of an inference call.

    ``FLOAT32``: the map's own dtype (default). ``BFLOAT16``: the network under
    ``torch.autocast(dtype=torch.bfloat16)`` (CPU and CUDA); states, times and the output stay
    in the map's dtype. ``TF32``: CUDA matmuls in TF32 (no effect on a CPU).

    Examples
    --------
    >>> from flowsim.maps import Precision
    >>> Precision("bfloat16") is Precision.BFLOAT16
    True
    """

    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    TF32 = "tf32"


def _as_precision(p: Precision | str | None) -> Precision:
    if p is None:
        return Precision.FLOAT32
    try:
        return Precision(p)
    except ValueError:
        raise ConfigError(f"precision must be one of {[v.value for v in Precision]}; got {p!r}") from None


@contextlib.contextmanager
def precision_context(precision: Precision | str | None, device: torch.device) -> Iterator[None]:
    """Run the body in ``precision`` on ``device`` (see :class:`Precision`).

    Examples
    --------
    >>> import torch
    >>> from flowsim.maps.throughput import precision_context
    >>> with precision_context("bfloat16", torch.device("cpu")):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.bfloat16
    """
    p = _as_precision(precision)
    if p is Precision.BFLOAT16:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            yield
    elif p is Precision.TF32 and device.type == "cuda":
        old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old
    else:
        yield


def free_memory(device: torch.device) -> int:
    """Bytes free on ``device``: ``torch.cuda.mem_get_info`` on CUDA, ``MemAvailable`` of
    ``/proc/meminfo`` (or the OS's available pages) on a CPU; 4 GiB where neither can be read.

    Arguments
    ---------
    device:
        The device asked about.

    Examples
    --------
    >>> import torch
    >>> from flowsim.maps.throughput import free_memory
    >>> free_memory(torch.device("cpu")) > 0
    True
    """
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 4 << 30


def auto_chunk_size(bytes_per_state: int, io_bytes_per_state: int, n: int, device: torch.device) -> int:
    """States per chunk so that one chunk's activations take at most :data:`MEMORY_FRACTION` of
    the free memory left after the inputs and outputs of all ``n`` states.

    Arguments
    ---------
    bytes_per_state:
        Activation bytes one state needs in the network.
    io_bytes_per_state:
        Bytes of one state's inputs and outputs (kept for the whole request).
    n:
        States requested.
    device:
        Where they are evaluated.

    Returns
    -------
    int
        States per chunk, between 1 and ``min(n, MAX_CHUNK)``.

    Raises
    ------
    MemoryBudgetError
        The inputs and outputs of ``n`` states alone do not fit in the free memory: no
        chunking can serve the request.

    Examples
    --------
    >>> import torch
    >>> from flowsim.maps.throughput import auto_chunk_size
    >>> auto_chunk_size(4096, 64, 10, torch.device("cpu"))
    10
    """
    free = free_memory(device)
    io = n * io_bytes_per_state
    if io >= 0.9 * free:
        raise MemoryBudgetError(
            f"{n:,} states need {io / 2**30:.3g} GiB for their inputs and outputs alone, but "
            f"{device} has {free / 2**30:.3g} GiB free; split the request (e.g. loop over slices "
            "of the states and write each result out) or use a device with more memory")
    return int(max(1, min(n, MAX_CHUNK, (free - io) * MEMORY_FRACTION // max(1, bytes_per_state))))


def run_chunked(fn: Callable[..., Tensor], chunk: int, *batched: Tensor, out_dim: int = 0) -> Tensor:
    """``fn(*batched)`` evaluated on slices of ``chunk`` rows (the first dimension) of every
    tensor, the results concatenated along ``out_dim`` (one call when the batch fits in one
    chunk). Gradients flow through the concatenation.

    Examples
    --------
    >>> import torch
    >>> from flowsim.maps.throughput import run_chunked
    >>> run_chunked(lambda a, b: a + b, 2, torch.arange(5), torch.ones(5, dtype=torch.long)).tolist()
    [1, 2, 3, 4, 5]
    """
    n = batched[0].shape[0]
    if chunk >= n:
        return fn(*batched)
    parts = [fn(*(b[i:i + chunk] for b in batched)) for i in range(0, n, chunk)]
    return torch.cat(parts, dim=out_dim)


def jump_from_host(flowmap, x: Tensor, s: Tensor | float, t: Tensor | float, p: Tensor | dict | None = None,
                   **jump_options) -> Tensor:
    """Jump states that live in host memory with a map on a GPU, the copies overlapped with the
    compute; the result comes back to host memory.

    The states go to the device in chunks (``chunk_size``, else sized from the free device
    memory as :meth:`~flowsim.FlowMap.jump` sizes them): each chunk's host→device copy runs
    on a side CUDA stream from pinned memory (``non_blocking``) while the previous chunk is
    jumped, and each result is copied back into a pinned output without waiting. The request
    may be bigger than the device's memory: only two chunks are there at a time. ``x`` that is
    not already pinned is pinned once (one host copy; pass ``x.pin_memory()`` to skip it). On a
    map on the CPU this is :meth:`~flowsim.FlowMap.jump` in chunks.

    Arguments
    ---------
    flowmap:
        A :class:`~flowsim.FlowMap` or :class:`~flowsim.FlowMapEnsemble`.
    x:
        States ``(batch, dim)`` on the CPU, in the map's dtype.
    s, t, p:
        As for :meth:`~flowsim.FlowMap.jump`; per-sample tensors may be on the CPU too.
    **jump_options:
        ``allow_extrapolation``, ``chunk_size``, ``precision`` of :meth:`~flowsim.FlowMap.jump`.

    Returns
    -------
    Tensor
        ``X(s, t, x; p)``, ``(batch, dim)``, on the CPU (pinned when the map is on a GPU).

    Raises
    ------
    ShapeError
        ``x`` not on the CPU, or as :meth:`~flowsim.FlowMap.jump` raises.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.maps.throughput import jump_from_host
    >>> fm = flowsim.FlowMap("lotka_volterra", width=16, depth=2)
    >>> x = torch.rand(1000, 2) + 0.5
    >>> bool(torch.allclose(jump_from_host(fm, x, 0.0, 0.5, chunk_size=300), fm.jump(x, 0.0, 0.5)))
    True
    """
    from ..errors import ShapeError

    if not isinstance(x, Tensor) or x.device.type != "cpu":
        raise ShapeError("jump_from_host takes states in host memory (a CPU tensor); for states "
                         "already on the map's device call flowmap.jump")
    n = x.shape[0] if x.ndim == 2 else 0
    device = flowmap.device
    chunk = jump_options.pop("chunk_size", None)
    if chunk is None:
        chunk = flowmap._chunk(max(n, 1), None, outputs=1)
    elif isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"chunk_size must be a positive integer or None; got {chunk!r}")

    def part(v, lo: int, hi: int, non_blocking: bool, batched_ndim: int):
        """``v``'s rows ``lo:hi`` if it is per-sample (``batched_ndim`` dimensions), on the device."""
        if not isinstance(v, Tensor):
            return v
        if v.ndim == batched_ndim and v.shape[0] == n:
            v = v[lo:hi]
        return v.to(device, non_blocking=non_blocking)

    ndims = (2, 1, 1, 2)  # x, s, t, p per sample

    if device.type != "cuda" or n == 0:  # nothing to overlap: chunked jumps where the map is
        parts = [flowmap.jump(*(part(v, lo, lo + chunk, False, d) for v, d in zip((x, s, t, p), ndims)),
                              chunk_size=chunk, **jump_options).to("cpu")
                 for lo in range(0, max(n, 1), chunk)]
        return torch.cat(parts) if len(parts) > 1 else parts[0]
    host = x if x.is_pinned() else x.pin_memory()
    out = torch.empty((n, flowmap.config.dim), dtype=flowmap.dtype, pin_memory=True)
    copy_stream, compute = torch.cuda.Stream(device), torch.cuda.current_stream(device)
    starts = list(range(0, n, chunk))

    def upload(lo: int):
        with torch.cuda.stream(copy_stream):
            return [part(v, lo, lo + chunk, True, d) for v, d in zip((host, s, t, p), ndims)]

    nxt = upload(starts[0])
    for i, lo in enumerate(starts):
        compute.wait_stream(copy_stream)
        cur = nxt
        for v in cur:
            if isinstance(v, Tensor):
                v.record_stream(compute)  # memory of the side stream's copies, used here
        if i + 1 < len(starts):
            nxt = upload(starts[i + 1])  # the next copy runs while this chunk is jumped
        y = flowmap.jump(*cur, chunk_size=chunk, **jump_options)
        out[lo:lo + y.shape[0]].copy_(y, non_blocking=True)
    compute.synchronize()
    return out
