"""Do more input features of the start help a map fit the transients after the initial states?

Levers of issue 17 tried as a prototype before any library option is built. A plain MLP fits
smooth, slowly varying functions first ("spectral bias"); the jumps out of an initial state,
through a fast transient, are where the map's error is largest and falls slowest with the steps.
Here the network's input gains, next to today's inputs:

- ``--kind fourier`` (the default): ``sin(2π B u)`` and ``cos(2π B u)``, ``u`` the normalised
  start state and parameters and ``B`` a fixed Gaussian matrix of ``--features`` rows and
  standard deviation ``--sigma`` (random Fourier features, Tancik et al. 2020); tag
  ``ablate-state-features``;
- ``--kind field``: the vector field at the start, ``asinh`` of the normalised state's rate of
  change over the map's typical rate (the right-hand side the trainer knows, as an input rather
  than as ``tangent=True``'s built-in term); tag ``ablate-field-features``.

Everything else is ``benchmarks/accuracy.py`` with the arguments given after ``--``:

    A="--objectives pairs --steps 12000 --threads 1"
    python benchmarks/state_features.py --sigma 0.5 -- $A --systems fitzhugh_nagumo --part sf1.json &
    python benchmarks/state_features.py --sigma 0.5 -- $A --systems van_der_pol --part sf2.json
    python benchmarks/accuracy.py --merge sf1.json sf2.json --tag ablate-state-features
    python benchmarks/state_features.py --kind field -- $A --systems fitzhugh_nagumo --part ff1.json

It patches :class:`flowsim.FlowMap` for this process only. What it gave: see docs/benchmarks.md
(against ``accuracy/latest-ablate-decay.json``, the same 12,000 steps).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

import flowsim.maps.flowmap as fmm
from flowsim.maps.networks import make_backbone

sys.path.insert(0, str(Path(__file__).parent))
import accuracy  # noqa: E402


def fourier(u: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """``[sin(2π u Bᵀ), cos(2π u Bᵀ)]``, ``(batch, 2 · rows of B)``.

    >>> fourier(torch.zeros(1, 2), torch.ones(3, 2))
    tensor([[0., 0., 0., 1., 1., 1.]])
    """
    a = 2 * math.pi * u @ B.T
    return torch.cat([torch.sin(a), torch.cos(a)], dim=-1)


def field(fm, s: torch.Tensor, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The vector field at the start in the map's normalised units, ``asinh(ḃ / v)``: ``ḃ`` the
    rate of change of the normalised state (of its log where the map works in logs), ``v`` the
    map's typical rate (``velocity_scale``); ``asinh`` keeps a stiff transient's rates finite."""
    b = fm.system.vector_field(s, x, p)
    st = fm.state_transform
    if bool(st.log_mask.any()):
        b = torch.where(st.log_mask, b / x, b)
    return torch.asinh(b / st.std.to(x.dtype) * fm.config.timescale / fm.velocity_scale.to(x.dtype))


def install(kind: str, n_features: int, sigma: float) -> None:
    """Patch FlowMap: a wider first layer, and the features appended to the network's input."""
    init = fmm.FlowMap.__init__

    def featured_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        c = self.config
        d_u = c.dim + len(c.param_names)
        g = torch.Generator().manual_seed(1234)
        self.register_buffer("fourier_B", sigma * torch.randn(n_features, d_u, generator=g,
                                                             dtype=self.dtype))
        first = next(m for m in self.net.modules() if isinstance(m, torch.nn.Linear))
        extra = 2 * n_features if kind == "fourier" else c.dim
        self.net = make_backbone(c.backbone, first.in_features + extra, c.dim * (2 if c.decay else 1),
                                 c.width, c.depth, c.activation).to(self.dtype)

    def featured_forward(self, s, t, x, p):
        T, d = self.config.timescale, self.config.dim
        delta = t - s
        h = delta / T
        z = self.state_transform.encode(x)
        pe = self.param_transform.encode(p)
        more = (fourier(torch.cat([z, pe], -1), self.fourier_B) if kind == "fourier"
                else field(self, s, x, p))
        feats = [z, pe, self.jump_embedding(h), more]
        if self.time_embedding is not None:
            feats.append(self.time_embedding(s / T))
        out = self.net(torch.cat(feats, dim=-1))
        if self.config.decay:
            out, log_rate = out[:, :d], out[:, d:]
        vs = self.velocity_scale.to(x.dtype)
        w = out * vs / (1 + h.abs()[:, None] * vs / fmm._MAX_DISPLACEMENT)
        dz = h[:, None] * w
        if self.config.decay:
            rate = torch.exp(log_rate.clamp(max=fmm._LOG_RATE_CAP) + fmm._LOG_RATE0)
            dz = dz + torch.expm1(-h[:, None] * rate) * z
        return self.state_transform.advance(x, dz)

    fmm.FlowMap.__init__ = featured_init
    fmm.FlowMap.forward = featured_forward


def main(argv=None) -> None:
    own, _ = accuracy.prototype_args(argv, "")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=["fourier", "field"], default="fourier",
                    help="fourier: sin/cos(2π B u); field: the vector field at the start")
    ap.add_argument("--features", type=int, default=32, help="rows of B (2× as many inputs)")
    ap.add_argument("--sigma", type=float, default=0.5, help="standard deviation of B's entries")
    args = ap.parse_args(own)
    if args.features < 1 or not (args.sigma > 0 and math.isfinite(args.sigma)):
        ap.error("--features must be ≥ 1 and --sigma a positive number")
    _, rest = accuracy.prototype_args(argv, f"ablate-{'field' if args.kind == 'field' else 'state'}-features")
    if "--tangent" in rest:
        ap.error("the prototype rebuilds the default (decay) map's forward pass; drop --tangent")
    install(args.kind, args.features, args.sigma)
    accuracy.main(rest)


if __name__ == "__main__":
    main()
