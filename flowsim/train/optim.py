"""Optimisers for :func:`~flowsim.fit`: AdamW, or Muon for the backbone's weight matrices with AdamW
for the rest (``fit(optimizer=…)``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError
from ..maps.flowmap import FlowMap
from .muon import BatchedMuon

__all__ = ["OPTIMIZERS", "MuonAdamW", "make_optimizer", "muon_matrices", "resolve_optimizer"]

OPTIMIZERS = ("auto", "adamw", "muon")


def resolve_optimizer(name: str) -> str:
    """``"auto"`` → ``"muon"`` where torch has ``torch.optim.Muon`` (≥ 2.9), else ``"adamw"``;
    other names are checked and returned.

    Raises
    ------
    ConfigError
        An unknown name, or ``"muon"`` with a torch that has no Muon.

    Examples
    --------
    >>> resolve_optimizer("adamw")
    'adamw'
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")
    has_muon = hasattr(torch.optim, "Muon")
    if name == "auto":
        return "muon" if has_muon else "adamw"
    if name == "muon" and not has_muon:
        raise ConfigError(f"optimizer='muon' needs torch.optim.Muon (torch >= 2.9); this is "
                          f"torch {torch.__version__}: upgrade torch or use optimizer='adamw'")
    return name


def _adamw(params: list[Tensor], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with the fused kernels where the device has them, else ``foreach``. On the 2-core CPU
    a 10-minute Lotka–Volterra run took 139,764 steps with it against 125,010 without
    (``benchmarks/results/accuracy/lotka_volterra-adamw-rerun.json`` vs ``round-128x4-adamw.json``)."""
    try:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


def muon_matrices(fm: FlowMap) -> list[Tensor]:
    """The backbone's weight matrices that Muon trains: every one but the head's.

    That includes the input layer (inputs → width). Muon's authors keep the first layer of a
    language model on AdamW because it is an embedding table; a flow map's input is a dense
    feature vector (state, parameters, time features), and Muon there lowered the error at
    every jump size: FitzHugh–Nagumo, 128×6, 16,000 steps, 1.9e-3 at 1 T against 2.4e-3 with
    the input layer on AdamW (1.25×; 128×4: 3.2e-3 against 3.4e-3). The head (width → state,
    rank ≤ the state dimension) stays on AdamW: Muon there was no better (2.1e-3)
    (``benchmarks/accuracy.py --ablate muon-layers …``). Physics-only training starts slower
    with it and catches up (``tests/train/test_trainer.py``, physics-only test).

    Arguments
    ---------
    fm:
        The flow map to be trained.

    Returns
    -------
    list of Tensor
        The 2-D weights of the backbone but the head's, in parameter order.

    Examples
    --------
    >>> import flowsim
    >>> fm = flowsim.FlowMap("lotka_volterra", width=32, depth=3)
    >>> [tuple(p.shape) for p in muon_matrices(fm)][1:]
    [(32, 32), (32, 32)]
    """
    matrices = [p for p in fm.net.parameters() if p.ndim == 2]
    head = fm.net.head.weight
    return [p for p in matrices if p is not head]


class MuonAdamW:
    """Muon on the backbone's weight matrices (:func:`muon_matrices`), AdamW on the rest.

    Muon (Jordan et al., 2024; ``torch.optim.Muon``) replaces each matrix's momentum by the
    nearest semi-orthogonal matrix (a few Newton–Schulz iterations), so every direction of the
    layer moves at the same rate. :class:`~flowsim.train.muon.BatchedMuon` runs those
    iterations for all same-shaped matrices at once (half the optimiser's time on a CPU). Its
    learning rate is rescaled to match AdamW's update size (``adjust_lr_fn="match_rms_adamw"``),
    so both halves share ``lr`` and the schedule.
    Biases, norms and the head stay with AdamW, as Muon's authors advise; the input layer goes
    to Muon (measured better here, see :func:`muon_matrices`).

    Arguments
    ---------
    matrices, rest:
        The parameters for Muon (2-D) and for AdamW.
    lr, weight_decay:
        Shared by both.

    Examples
    --------
    >>> import flowsim
    >>> from flowsim.train.optim import make_optimizer
    >>> fm = flowsim.FlowMap("lotka_volterra", width=32, depth=3)
    >>> opt = make_optimizer(fm, "muon", lr=1e-3)
    >>> type(opt).__name__, len(opt.param_groups)
    ('MuonAdamW', 2)
    """

    def __init__(self, matrices: list[Tensor], rest: list[Tensor], lr: float,
                 weight_decay: float = 0.0) -> None:
        self.muon = BatchedMuon(matrices, lr=lr, weight_decay=weight_decay,
                                adjust_lr_fn="match_rms_adamw")
        self.adamw = _adamw(rest, lr, weight_decay)

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [*self.muon.param_groups, *self.adamw.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])


def make_optimizer(fm: FlowMap, name: str, lr: float, weight_decay: float = 0.0, extra=()):
    """The optimiser ``fit(optimizer=name)`` uses for ``fm``.

    Arguments
    ---------
    fm:
        The map to train.
    name:
        ``"auto"`` (Muon where torch has it), ``"adamw"`` or ``"muon"`` (Muon on the
        backbone's weight matrices but the head's, AdamW on the rest).
    lr, weight_decay:
        Learning rate and decoupled weight decay.
    extra:
        Further tensors to train with the map (objectives' own, :meth:`Objective.parameters`);
        AdamW steps them.

    Returns
    -------
    torch.optim.AdamW or MuonAdamW

    Raises
    ------
    ConfigError
        An unknown name, or ``"muon"`` with a torch that has no ``torch.optim.Muon`` (< 2.9).

    Examples
    --------
    >>> import flowsim
    >>> fm = flowsim.FlowMap("lotka_volterra", width=32, depth=2)
    >>> type(make_optimizer(fm, "adamw", lr=1e-3)).__name__
    'AdamW'
    """
    params = list(fm.parameters()) + list(extra)
    if resolve_optimizer(name) == "adamw":
        return _adamw(params, lr, weight_decay)
    matrices = muon_matrices(fm)
    ids = {id(p) for p in matrices}
    return MuonAdamW(matrices, [p for p in params if id(p) not in ids], lr, weight_decay)
