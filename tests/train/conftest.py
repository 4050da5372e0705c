"""An exact flow map of the harmonic oscillator, with the FlowMap interface."""

from __future__ import annotations

import pytest
import torch

from flowsim import FlowMap


class ExactOscillatorMap(FlowMap):
    """``X(s,t,x) = R(ω(t-s)) x``: the exact flow of ``q' = v, v' = -ω² q``."""

    def forward(self, s, t, x, p):
        w = p[:, 0]
        d = t - s
        c, sn = torch.cos(w * d), torch.sin(w * d)
        q, v = x[:, 0], x[:, 1]
        out = torch.stack([q * c + v / w * sn, -q * w * sn + v * c], dim=-1)
        return out + 0.0 * sum(p_.sum() for p_ in self.parameters())  # keep autograd happy


@pytest.fixture
def exact_map():
    return ExactOscillatorMap("harmonic_oscillator", width=4, depth=1, dtype=torch.float64)
