"""Muon with the Newton–Schulz iterations of same-shaped matrices batched.

``torch.optim.Muon`` orthogonalises one matrix at a time and in bfloat16. A flow map's backbone is
a handful of small matrices, most of one shape (width × width), so on a CPU much of that loop is
overhead and dtype conversions. :class:`BatchedMuon` stacks the matrices of each shape and runs
the iterations as batched matmuls (``torch.baddbmm``): in bfloat16 where the hardware multiplies
bfloat16 matrices natively (CUDA; x86 CPUs with AVX512-BF16 or AMX), in float32 elsewhere, where
bfloat16 would be emulated and slow. On the 128×6 map and the 2-core CPU (AVX512-BF16) its step
took 2.75 ms in float32 and 2.06 ms in bfloat16 against torch's 3.83 ms, and a whole training
step with batch 1,024 ran 1.13× (float32) and 1.24× (bfloat16) faster
(``benchmarks/step_time.py --compare-muon``); the bfloat16 iterations train as well at equal
steps. It is the same
algorithm with the same hyper-parameters, parameter groups and state (``momentum_buffer``), so the
two optimisers' state dicts load into each other.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["BatchedMuon", "fast_bfloat16", "newton_schulz"]

#: Keller Jordan's quintic coefficients, the same as ``torch.optim.Muon``'s defaults.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(g: Tensor, steps: int = 5, coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                  eps: float = 1e-7) -> Tensor:
    """An approximately semi-orthogonal matrix with the singular vectors of ``g``.

    ``steps`` quintic Newton–Schulz iterations, as in Muon: the singular values come out between
    about 0.5 and 1.5, not exactly 1, which does not hurt training (Jordan et al., 2024).

    Arguments
    ---------
    g:
        One matrix ``(m, n)`` or a batch ``(..., m, n)`` (e.g. the stacked members of an
        ensemble, :mod:`flowsim.train.stacked`); computed in its own dtype.
    steps, coefficients, eps:
        Iterations, the quintic's ``(a, b, c)``, and the floor of the Frobenius norm used to scale
        ``g`` to spectral norm ≤ 1.

    Returns
    -------
    Tensor
        The same shape as ``g``.

    Examples
    --------
    >>> g = torch.randn(3, 16, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> s = torch.linalg.svdvals(newton_schulz(g))  # those of g: 1.9 to 5.5
    >>> bool(((s > 0.5) & (s < 1.5)).all())
    True
    """
    a, b, c = coefficients
    x = g.reshape(-1, *g.shape[-2:])  # any leading dimensions: a batch of matrices
    wide = x.size(-2) <= x.size(-1)
    x = x if wide else x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp_min(eps)
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    x = x if wide else x.mT
    return x.reshape(g.shape)


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:  # not Linux
        pass
    return frozenset()


def fast_bfloat16(device: torch.device | str) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively, so faster than float32.

    CUDA devices that support bfloat16, and x86 CPUs with the AVX512-BF16 or AMX-BF16
    instructions (read from ``/proc/cpuinfo``; other CPUs emulate bfloat16 and say ``False``).

    Arguments
    ---------
    device:
        A torch device or its name.

    Returns
    -------
    bool

    Examples
    --------
    >>> fast_bfloat16("meta")
    False
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())
    return False


# torch < 2.9 has no Muon: the class still imports, and `resolve_optimizer` refuses "muon" there
_MuonBase = getattr(torch.optim, "Muon", torch.optim.Optimizer)


class BatchedMuon(_MuonBase):
    """``torch.optim.Muon`` with the orthogonalisation batched over matrices of one shape.

    Takes the same arguments as ``torch.optim.Muon`` (torch ≥ 2.9), and ``ns_dtype``: the dtype
    of the Newton–Schulz iterations, by default bfloat16 (as ``torch.optim.Muon``) where
    :func:`fast_bfloat16` says the device multiplies it natively, else float32. The update is the
    same: momentum ``B ← μB + g``, Nesterov ``g + μB``, Newton–Schulz, decoupled weight decay, and
    the step scaled by ``adjust_lr_fn``. In float32 the two differ by bfloat16 rounding, about 1 %
    of the update.

    Examples
    --------
    >>> w = [torch.nn.Parameter(torch.randn(8, 8)) for _ in range(3)]
    >>> opt = BatchedMuon(w, lr=1e-2, adjust_lr_fn="match_rms_adamw")
    >>> for p in w:
    ...     p.grad = torch.randn(8, 8)
    >>> opt.step()
    """

    def __init__(self, params, *args, ns_dtype: torch.dtype | None = None, **kwargs) -> None:
        params = list(params)
        if any(isinstance(p, Tensor) and p.ndim > 2 for p in params):
            # stacked ensembles' matrices (members, m, n), which torch's Muon refuses: its
            # arguments checked and defaults made on a 2-D probe, the groups built as any optimiser's
            probe = torch.optim.Muon([torch.zeros(1, 1)], *args, **kwargs)
            torch.optim.Optimizer.__init__(self, params, probe.defaults)
        else:
            super().__init__(params, *args, **kwargs)
        if ns_dtype not in (None, torch.float32, torch.bfloat16, torch.float64):
            raise ConfigError(f"ns_dtype must be None (by hardware), torch.float32, torch.bfloat16 or "
                              f"torch.float64; got {ns_dtype!r}")
        self.ns_dtype = ns_dtype
        self._resolved: dict[torch.device, torch.dtype] = {}

    def ns_dtype_for(self, device: torch.device | str) -> torch.dtype:
        """The dtype of the Newton–Schulz iterations on ``device``: ``ns_dtype`` if given, else
        bfloat16 where :func:`fast_bfloat16` says so and float32 elsewhere (looked up once)."""
        device = torch.device(device)
        if device not in self._resolved:
            self._resolved[device] = self.ns_dtype or (
                torch.bfloat16 if fast_bfloat16(device) else torch.float32)
        return self._resolved[device]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One optimisation step; ``closure`` re-evaluates the loss, as for any torch optimiser."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if any(g.is_sparse or torch.is_complex(g) for g in grads):
                raise RuntimeError("Muon supports neither sparse nor complex gradients")
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                bufs.append(state["momentum_buffer"])
            mu = group["momentum"]
            torch._foreach_lerp_(bufs, grads, 1 - mu)
            updates = torch._foreach_lerp(grads, bufs, mu) if group["nesterov"] else bufs
            by_shape: dict[tuple[torch.Size, torch.device], list[int]] = {}
            for i, u in enumerate(updates):
                by_shape.setdefault((u.shape, u.device), []).append(i)
            ortho: list[Tensor] = [updates[0]] * len(updates)
            for (_, device), idx in by_shape.items():
                stacked = torch.stack([updates[i] for i in idx]).to(self.ns_dtype_for(device))
                out = newton_schulz(stacked, group["ns_steps"], group["ns_coefficients"], group["eps"])
                for j, i in enumerate(idx):
                    ortho[i] = out[j].to(updates[i].dtype)
            lr = group["lr"]
            if isinstance(lr, Tensor):  # a CUDA-graph step reads its learning rate on the device
                if group["weight_decay"]:
                    torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
                for p, o in zip(params, ortho):
                    p.sub_(o * (lr * _adjusted_lr(1.0, group["adjust_lr_fn"], p.shape)))
                continue
            lr = float(lr)
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1 - lr * group["weight_decay"])
            for p, o in zip(params, ortho):
                p.add_(o, alpha=-_adjusted_lr(lr, group["adjust_lr_fn"], p.shape))
        return loss


def _adjusted_lr(lr: float, adjust_lr_fn: str | None, shape: torch.Size) -> float:
    """``torch.optim.Muon``'s per-shape step size (``torch.optim._muon._adjust_lr``)."""
    a, b = shape[-2:]  # a stacked ensemble's matrices (members, a, b) step as each (a, b)
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return lr * math.sqrt(max(1, a / b))
    if adjust_lr_fn == "match_rms_adamw":
        return lr * 0.2 * math.sqrt(max(a, b))
    return lr
