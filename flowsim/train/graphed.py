"""A training step captured in a CUDA graph: ``fit(..., cuda_graph=True)``.

On a GPU a step of a small flow map is launch-bound: a few hundred kernels of a few microseconds
each, launched one by one from Python. :class:`GraphedStep` records the step once —
forward, backward, gradient clipping, the AdamW or Muon update and the EMA — as a
``torch.cuda.CUDAGraph`` and replays it every step: one launch. The batches are drawn as in
the eager step (the same random streams, so the same run) and copied into the graph's static
input tensors; the learning rate and the EMA's weight are device tensors the replay reads.
Capture needs warm-up steps on a side stream (torch's rule); their effect on the weights,
optimiser state and EMA is undone, so the captured run should be the eager run to rounding
(``tests/cuda`` checks it over 100 steps; not yet run on a GPU).

What stays outside the graph: drawing the batches (the trajectory bank and the generators live
on the CPU; the physics states' own jumps run eagerly), the learning-rate schedule, logging,
validation and checkpoints. Not captured (refused with :class:`~flowsim.errors.ConfigError`):
data-parallel runs (``--ddp``), and batches whose shapes change between steps. On a CPU
``cuda_graph=True`` warns and trains eagerly.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from .batches import BatchKind

__all__ = ["GraphedStep", "graph_unavailable"]

#: eager steps on a side stream before capture (torch: "a few" to settle lazy state)
WARMUP_STEPS = 3


def graph_unavailable(device: torch.device, world_size: int) -> str | None:
    """Why a step cannot be captured on ``device`` (``None`` where it can).

    Examples
    --------
    >>> import torch
    >>> from flowsim.train.graphed import graph_unavailable
    >>> graph_unavailable(torch.device("cpu"), 1)
    'CUDA graphs need a CUDA device; this map is on cpu'
    """
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device; this map is on {device}"
    if world_size > 1:
        return "data-parallel runs (--ddp) average gradients between the processes outside a graph"
    return None


class GraphedStep:
    """The optimisation step of a :func:`flowsim.fit` run, captured once and replayed.

    Arguments
    ---------
    run:
        The training run (``flowsim.train.trainer``'s state: map, objectives, sampler,
        optimiser, EMA, config).
    batches:
        One batch of every kind the objectives need (the first step's), which sets the shapes of
        the graph's static inputs.
    """

    def __init__(self, run: Any, batches: dict[BatchKind, Any]) -> None:
        self.run = run
        fm, cfg = run.fm, run.config
        dev = fm.device
        self.static = {kind: _clone_batch(b) for kind, b in batches.items()}
        self.lr = torch.tensor(cfg.lr, dtype=torch.float32, device=dev)
        self.ema_weight = torch.tensor(0.0, dtype=torch.float32, device=dev)
        for group in run.opt.param_groups:
            group["lr"] = self.lr  # read by the replayed update
            if "capturable" in group:
                group["capturable"] = True
        saved = _snapshot(run)
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._body()
        torch.cuda.current_stream(dev).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        run.opt.zero_grad(set_to_none=True)
        with torch.cuda.graph(self.graph):
            self.loss, self.terms, self.gnorm = self._body()
        _restore(run, saved)  # the warm-up and capture steps never happened

    def _body(self) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        run = self.run
        fm, cfg = run.fm, run.config
        terms = {o.name: o(fm, self.static[kind]) for o, kind in zip(run.objs, run.kinds)}
        loss = sum(o.weight * terms[o.name] for o in run.objs)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(fm.parameters(), cfg.clip)
        if run.extra:  # an objective's own parameters, clipped on their own as in the eager step
            torch.nn.utils.clip_grad_norm_(run.extra, cfg.clip)
        run.opt.step()
        with torch.no_grad():
            for e, p in zip(run.ema, run.params):
                e.lerp_(p.detach(), self.ema_weight)
        return loss, terms, gnorm

    def step(self, batches: dict[BatchKind, Any], lr: float, ema_weight: float):
        """Copy ``batches`` into the static inputs, set the learning rate and EMA weight, replay;
        ``(loss, terms, gradient norm)`` (device tensors, valid until the next replay)."""
        for kind, b in batches.items():
            static = self.static[kind]
            for name, value in vars(b).items():
                target = getattr(static, name)
                if value.shape != target.shape:
                    raise ConfigError(
                        f"a {kind.value} batch changed shape ({tuple(target.shape)} → {tuple(value.shape)}); "
                        "a CUDA-graph step needs batches of one size: pass cuda_graph=False")
                target.copy_(value, non_blocking=True)
        self.lr.fill_(lr)
        self.ema_weight.fill_(ema_weight)
        self.graph.replay()
        return self.loss, self.terms, self.gnorm


def make_graphed(run: Any, batches: dict[BatchKind, Any]) -> GraphedStep | None:
    """A :class:`GraphedStep` for ``run`` if ``config.cuda_graph`` asks for one and the step can
    be captured; ``None`` (with a warning where it was asked for) otherwise."""
    from . import distributed

    if not run.config.cuda_graph:
        return None
    why = graph_unavailable(run.fm.device, distributed.current().world_size)
    if why is not None:
        if run.fm.device.type == "cuda":
            raise ConfigError(f"cuda_graph=True cannot capture this run: {why}; pass cuda_graph=False")
        warnings.warn(f"cuda_graph=True: {why}; training with the eager step", UserWarning, stacklevel=3)
        return None
    return GraphedStep(run, batches)


def _clone_batch(batch: Any) -> Any:
    return type(batch)(**{k: v.detach().clone() for k, v in vars(batch).items()})


def _snapshot(run: Any) -> dict[str, Any]:
    return {"params": [p.detach().clone() for p in run.params],
            "ema": [e.clone() for e in run.ema],
            "opt": _clone_state(run.opt.state_dict()),
            "rng": torch.cuda.get_rng_state(run.fm.device)}


def _restore(run: Any, saved: dict[str, Any]) -> None:
    with torch.no_grad():
        for p, v in zip(run.params, saved["params"]):
            p.copy_(v)
        for e, v in zip(run.ema, saved["ema"]):
            e.copy_(v)
    _load_in_place(run.opt, saved["opt"])
    torch.cuda.set_rng_state(saved["rng"], run.fm.device)


def _clone_state(state: Any) -> Any:
    if isinstance(state, Tensor):
        return state.clone()
    if isinstance(state, dict):
        return {k: _clone_state(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_clone_state(v) for v in state]
    return state


def _load_in_place(opt: Any, saved: dict[str, Any]) -> None:
    """Put the optimiser's saved state back into its existing tensors (the graph reads those
    addresses; ``load_state_dict`` would allocate new ones). State the warm-up created (a fresh
    run's moments, step counts, momentum buffers) goes back to zero: a fresh optimiser's."""
    current = opt.state_dict()

    def copy(dst: Any, src: Any) -> None:
        if isinstance(dst, Tensor):
            with torch.no_grad():
                if src is None:
                    dst.zero_()
                else:
                    dst.copy_(src)
        elif isinstance(dst, dict):
            for k in dst:
                if k != "param_groups":
                    copy(dst[k], src.get(k) if isinstance(src, dict) else None)
        elif isinstance(dst, list):
            for i, a in enumerate(dst):
                copy(a, src[i] if isinstance(src, list) and i < len(src) else None)

    copy(current, saved)
