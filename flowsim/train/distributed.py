"""Data-parallel training across processes and devices with ``torch.distributed``.

When a process group is initialised (``torchrun`` and :func:`init_from_env`, which
``flowsim train --ddp`` calls), :func:`flowsim.fit` trains data-parallel: every rank draws the
same global batch of ``FitConfig.batch_size`` from the same seeded sampler and keeps its own
contiguous ``batch_size / world_size`` slice of it (the sampler is sharded by rank); after the
backward pass the gradients are averaged over the ranks with one ``all_reduce`` of a flat buffer;
every rank then takes the same clipped optimiser and EMA step, so the weights stay identical
without broadcasts. ``W`` processes with batch ``B`` each therefore train the same map as one
process with batch ``W·B``, to rounding (``tests/train/test_distributed.py``). Only rank 0
writes checkpoints and logs; every rank resumes from them.

Why not the ``torch.nn.parallel.DistributedDataParallel`` wrapper: the physics objectives
(Lagrangian/LSD, Eulerian) evaluate the map inside ``torch.func.jvp``, and DDP's reducer relies on
hooks armed by its own ``forward``, which a functional transform bypasses. Averaging the gradients
after ``backward`` is what the reducer does (without bucketing, which one flat buffer replaces
here), and it is correct whatever transforms produced them.

Examples
--------
>>> from flowsim.train.distributed import current
>>> current().world_size          # no process group: one process
1
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from ..errors import ConfigError

__all__ = ["Ranks", "current", "init_from_env", "shard", "average_gradients"]

#: The variables a launcher (torchrun) sets for every process.
LAUNCH_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the process group: ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1

    @property
    def active(self) -> bool:
        """Whether training is data-parallel (more than one process)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, logs and progress bars."""
        return self.rank == 0


def current() -> Ranks:
    """The process group this process trains in (one process when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    return Ranks()


def init_from_env(device: str | torch.device | None = None) -> Ranks:
    """Join the process group a launcher (``torchrun``) describes in the environment.

    The backend is NCCL for CUDA devices and gloo otherwise; on CUDA each process uses the GPU
    of its ``LOCAL_RANK``.

    Raises
    ------
    ConfigError
        The launcher's variables are missing (the script was not started by ``torchrun``).

    Examples
    --------
    Launch two processes on one machine::

        torchrun --nproc-per-node 2 -m flowsim train --ddp --system fitzhugh_nagumo --out runs/fhn
    """
    missing = [k for k in LAUNCH_ENV if k not in os.environ]
    if missing:
        raise ConfigError(f"--ddp needs a launcher's environment ({', '.join(missing)} not set): start "
                          "with `torchrun --nproc-per-node N -m flowsim train --ddp ...`")
    if dist.is_initialized():
        return current()
    dev = torch.device(device) if device is not None else torch.device("cpu")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend=backend)
    return current()


def check_batch(batch_size: int, ranks: Ranks) -> None:
    """Refuse a global batch that the ranks cannot split evenly."""
    if batch_size % ranks.world_size:
        raise ConfigError(f"batch_size {batch_size} is not divisible by the world size {ranks.world_size}; "
                          "give a global batch that is a multiple of the number of processes")


def shard(batch: Any, ranks: Ranks) -> Any:
    """This rank's contiguous slice of a global batch (every tensor field cut along its first
    dimension); the batch itself when training in one process.

    Examples
    --------
    >>> import torch
    >>> from flowsim.train.bank import StateBatch
    >>> from flowsim.train.distributed import Ranks, shard
    >>> b = StateBatch(s=torch.arange(4.0), t=torch.ones(4), x=torch.zeros(4, 2), p=torch.zeros(4, 1))
    >>> shard(b, Ranks(rank=1, world_size=2)).s.tolist()
    [2.0, 3.0]
    """
    if not ranks.active:
        return batch
    fields = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    n = next(v.shape[0] for v in fields.values() if isinstance(v, Tensor))
    k = n // ranks.world_size
    lo = ranks.rank * k
    return dataclasses.replace(batch, **{
        name: v[lo:lo + k] if isinstance(v, Tensor) and v.ndim and v.shape[0] == n else v
        for name, v in fields.items()})


def average_gradients(params: list[Tensor], ranks: Ranks) -> None:
    """Average the parameters' gradients over the ranks in place: one ``all_reduce`` of a flat
    buffer (a parameter without a gradient counts as a zero gradient on that rank)."""
    if not ranks.active:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= ranks.world_size
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n
