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

__all__ = ["Precision", "auto_chunk_size", "free_memory", "run_chunked", "precision_context"]

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
