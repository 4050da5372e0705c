"""Does letting the start state rotate as well as fade help the jumps round a cycle?

A lever of issue 17 tried as a prototype before any library option is built. Today's map writes
a landing state in normalised coordinates as ``ẑ e^{−h r} + h·w`` (``FlowMap(decay=True)``: a
rate ``r ≥ 0`` per state). Here the start state is carried by a matrix exponential instead,
``expm(−h (D + S)) ẑ + h·w``, with ``D = diag(r)`` and ``S`` skew-symmetric from
``dim (dim − 1) / 2`` more outputs of the same head, scaled by ``--scale`` (default 2π: an output
of 1 turns the start one full turn per timescale). The symmetric part of the generator is
``D ≥ 0``, so the carried start never grows; ``X(s, s, x) = x`` stays exact, and the extra
outputs start at zero (an untrained map is today's). Everything else is
``benchmarks/accuracy.py`` with the arguments given after ``--``, recorded under the tag
``ablate-rotation``:

    A="--objectives pairs --steps 12000 --threads 1"
    python benchmarks/rotation.py -- $A --systems hodgkin_huxley fitzhugh_nagumo --part rot1.json &
    python benchmarks/rotation.py -- $A --systems van_der_pol repressilator --part rot2.json
    python benchmarks/accuracy.py --merge rot1.json rot2.json --tag ablate-rotation

It patches :class:`flowsim.FlowMap` for this process only, reading the rate's constants from
``flowsim.maps.flowmap`` so that the decay part is today's exactly. What it gave (against
``accuracy/latest-ablate-decay.json``, the same 12,000 steps): no gain beyond run-to-run noise,
at 1.3× the cost of a step (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

import flowsim.maps.flowmap as fmm

sys.path.insert(0, str(Path(__file__).parent))
import accuracy  # noqa: E402


def carried(z: torch.Tensor, h: torch.Tensor, rate: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
    """``expm(−h (diag(rate) + S)) z`` with ``S`` skew-symmetric, its upper triangle ``turn``.

    A quarter turn, and a pure decay at rate 4 over a quarter timescale:

    >>> z = torch.tensor([[1.0, 0.0]])
    >>> quarter = carried(z, torch.tensor([0.25]), torch.zeros(1, 2), torch.tensor([[2 * math.pi]]))
    >>> quarter.round(decimals=4).abs()
    tensor([[0., 1.]])
    >>> carried(z, torch.tensor([0.25]), torch.full((1, 2), 4.0), torch.zeros(1, 1))
    tensor([[0.3679, 0.0000]])
    """
    d = z.shape[1]
    i, j = torch.triu_indices(d, d, 1)
    gen = torch.diag_embed(rate)
    gen[:, i, j] = gen[:, i, j] + turn
    gen[:, j, i] = gen[:, j, i] - turn
    return (torch.linalg.matrix_exp(-h[:, None, None] * gen) @ z[:, :, None])[:, :, 0]


def install(scale: float) -> None:
    """Patch FlowMap: ``dim (dim − 1) / 2`` more zero-initialised head outputs and the
    rotating forward pass (decay maps only)."""
    init, forward = fmm.FlowMap.__init__, fmm.FlowMap.forward

    def rotating_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if not self.config.decay:
            return
        d, head = self.config.dim, self.net.head
        wider = torch.nn.Linear(head.in_features, head.out_features + d * (d - 1) // 2,
                                dtype=head.weight.dtype)
        with torch.no_grad():
            wider.weight.zero_()
            wider.bias.zero_()
            wider.weight[:head.out_features] = head.weight
            wider.bias[:head.out_features] = head.bias
        self.net.head = wider

    def rotating_forward(self, s, t, x, p):
        if not self.config.decay:
            return forward(self, s, t, x, p)
        T, d = self.config.timescale, self.config.dim
        h = (t - s) / T
        z = self.state_transform.encode(x)
        feats = [z, self.param_transform.encode(p), self.jump_embedding(h)]
        if self.time_embedding is not None:
            feats.append(self.time_embedding(s / T))
        out = self.net(torch.cat(feats, dim=-1))
        w, log_rate, turn = out[:, :d], out[:, d:2 * d], out[:, 2 * d:]
        vs = self.velocity_scale.to(x.dtype)
        w = w * vs / (1 + h.abs()[:, None] * vs / fmm._MAX_DISPLACEMENT)
        rate = torch.exp(log_rate.clamp(max=fmm._LOG_RATE_CAP) + fmm._LOG_RATE0)
        dz = h[:, None] * w + carried(z, h, rate, scale * turn) - z
        return self.state_transform.advance(x, dz)

    fmm.FlowMap.__init__ = rotating_init
    fmm.FlowMap.forward = rotating_forward


def main(argv=None) -> None:
    own, rest = accuracy.prototype_args(argv, "ablate-rotation")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=2 * math.pi,
                    help="turn rate (radians per timescale) of an output of 1")
    args = ap.parse_args(own)
    if not (args.scale > 0 and math.isfinite(args.scale)):
        ap.error(f"--scale must be a positive number; got {args.scale}")
    if "--decay" in rest and rest[rest.index("--decay") + 1] == "0":
        ap.error("the rotation carries the decay map's start state; drop --decay 0")
    install(args.scale)
    accuracy.main(rest)


if __name__ == "__main__":
    main()
