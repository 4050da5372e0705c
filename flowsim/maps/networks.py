"""Backbones and time embeddings for flow maps."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..errors import ConfigError

__all__ = ["FourierEmbedding", "MLP", "ResNet", "make_backbone", "ACTIVATIONS", "BACKBONES"]

#: The backbones :func:`make_backbone` builds, FlowMap's default first.
BACKBONES = ("resnet", "mlp")

ACTIVATIONS = {"gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "softplus": nn.Softplus}


class FourierEmbedding(nn.Module):
    """Embed a scalar time ``u`` as ``[u, sin(π f_k u), cos(π f_k u)]`` over geometric ``f_k``,
    optionally with multi-scale decays ``sign(u)·(1 − exp(−|u|/τ_j))``.

    Arguments
    ---------
    n_frequencies:
        Number of frequencies ``f_k``, spaced geometrically in ``[f_min, f_max]``.
    f_min, f_max:
        Frequency range, in cycles per unit of ``u`` (``u`` is a time in units of the
        system's timescale).
    n_scales:
        Number of decay scales ``τ_j``, geometric in ``[tau_min, 1]`` (0: none). A fast
        transient (a relaxation over 1 % of the timescale) is a smooth function of these
        features, while sines of at most ``f_max`` cycles barely change over it.
    tau_min:
        Shortest decay scale, in units of ``u``.

    Examples
    --------
    >>> import torch
    >>> from flowsim.maps import FourierEmbedding
    >>> emb = FourierEmbedding(4)
    >>> emb(torch.tensor([0.0, 0.5])).shape, emb.out_features
    (torch.Size([2, 9]), 9)
    """

    def __init__(self, n_frequencies: int = 8, f_min: float = 0.25, f_max: float = 8.0,
                 n_scales: int = 0, tau_min: float = 1e-3) -> None:
        super().__init__()
        freqs = torch.logspace(math.log10(f_min), math.log10(f_max), n_frequencies)
        self.register_buffer("freqs", freqs if n_frequencies else torch.zeros(0))
        # a buffer only where there are scales: the weights of maps without them stay as before
        inv = 1.0 / torch.logspace(math.log10(tau_min), 0.0, n_scales) if n_scales else None
        self.register_buffer("inv_taus", inv)  # None: not in the state dict

    @property
    def out_features(self) -> int:
        n_scales = 0 if self.inv_taus is None else self.inv_taus.numel()
        return 1 + 2 * self.freqs.numel() + n_scales

    def forward(self, u: Tensor) -> Tensor:
        arg = math.pi * u[:, None] * self.freqs.to(u.dtype)
        feats = [u[:, None], torch.sin(arg), torch.cos(arg)]
        if self.inv_taus is not None:
            a = u[:, None].abs() * self.inv_taus.to(u.dtype)
            feats.append(torch.sign(u)[:, None] * -torch.expm1(-a))
        return torch.cat(feats, dim=-1)


class MLP(nn.Module):
    """A plain multilayer perceptron; the last layer starts at zero so the map starts as identity."""

    def __init__(self, d_in: int, d_out: int, width: int, depth: int, activation: str) -> None:
        super().__init__()
        act = ACTIVATIONS[activation]
        layers: list[nn.Module] = []
        d = d_in
        for _ in range(depth):
            layers += [nn.Linear(d, width), act()]
            d = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, d_out)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, h: Tensor) -> Tensor:
        return self.head(self.body(h))


class _Block(nn.Module):
    def __init__(self, width: int, activation: str) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)
        self.act = ACTIVATIONS[activation]()

    def forward(self, h: Tensor) -> Tensor:
        return h + self.fc2(self.act(self.fc1(self.act(self.norm(h)))))


class ResNet(nn.Module):
    """Pre-norm residual MLP: an input layer, ``depth // 2`` blocks of two layers each (at least
    one), a zero-initialised head."""

    def __init__(self, d_in: int, d_out: int, width: int, depth: int, activation: str) -> None:
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.blocks = nn.Sequential(*[_Block(width, activation) for _ in range(max(depth // 2, 1))])
        self.out_norm = nn.LayerNorm(width)
        self.act = ACTIVATIONS[activation]()
        self.head = nn.Linear(width, d_out)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, h: Tensor) -> Tensor:
        return self.head(self.act(self.out_norm(self.blocks(self.inp(h)))))


def make_backbone(kind: str, d_in: int, d_out: int, width: int, depth: int,
                  activation: str) -> nn.Module:
    """Build ``"mlp"`` or ``"resnet"``; raises :class:`~flowsim.ConfigError` on unknown names."""
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r}; choose one of {list(ACTIVATIONS)}")
    if width < 1 or depth < 1:
        raise ConfigError(f"width and depth must be positive; got width={width}, depth={depth}")
    if kind == "mlp":
        return MLP(d_in, d_out, width, depth, activation)
    if kind == "resnet":
        return ResNet(d_in, d_out, width, depth, activation)
    raise ConfigError(f"unknown backbone {kind!r}; choose 'mlp' or 'resnet'")
