"""Couplings: how base samples ``x0`` are paired with data ``x1`` in a minibatch.

``"independent"`` keeps the draw as it is; ``"ot"`` re-pairs the batch by the exact optimal
transport plan of the squared distance (POT's ``ot.emd``), which straightens the paths of the
linear interpolant (minibatch OT flow matching, Tong et al. 2024; Pooladian et al. 2023). POT is
used rather than ``torchcfm`` because ``torchcfm`` pins a CUDA build of torch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError

__all__ = ["COUPLINGS", "couple"]

#: the couplings :func:`couple` knows
COUPLINGS = ("independent", "ot")


def couple(kind: str, x0: Tensor, x1: Tensor) -> Tensor:
    """``x0`` re-ordered to be paired with ``x1`` row by row under the coupling ``kind``.

    Arguments
    ---------
    kind:
        ``"independent"`` (``x0`` unchanged) or ``"ot"`` (the permutation minimising
        ``Σ‖x0 − x1‖²``, exact, by ``ot.emd`` on the batch).
    x0, x1:
        ``(batch, dim)`` base and data samples.

    Returns
    -------
    Tensor
        ``x0``'s rows in the paired order.

    Raises
    ------
    ConfigError
        An unknown ``kind``.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import couple
    >>> x0 = torch.tensor([[1.0], [0.0]]); x1 = torch.tensor([[0.1], [0.9]])
    >>> couple("ot", x0, x1).ravel().tolist()
    [0.0, 1.0]
    """
    if kind == "independent":
        return x0
    if kind != "ot":
        raise ConfigError(f"coupling must be one of {COUPLINGS}; got {kind!r}")
    import ot

    n = x0.shape[0]
    cost = torch.cdist(x0.detach().double(), x1.detach().double()).pow(2).cpu().numpy()
    w = torch.full((n,), 1.0 / n, dtype=torch.float64).numpy()
    plan = torch.as_tensor(ot.emd(w, w, cost))
    # for uniform weights of equal count the exact plan is a permutation: row i of x1 ↔ column j
    idx = plan.argmax(dim=0).to(x0.device)
    return x0[idx]
