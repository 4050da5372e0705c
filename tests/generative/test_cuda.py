"""Generative sampling on CUDA (skipped where no GPU is present)."""

from __future__ import annotations

import pytest
import torch

from flowsim.generative import distill, guided_sample, train_teacher

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_train_distill_and_sample_on_cuda_match_cpu():
    data = torch.randn(512, 2) * 2 + 1
    gen = distill(train_teacher(data, steps=100, width=32, depth=2, device="cuda"), width=32, depth=2,
                  steps=50, batch_size=128)
    assert gen.device.type == "cuda"
    x = gen.sample(256, steps=2, generator=0)
    xt, _ = gen.teacher.sample(256, "dopri5", generator=0)
    assert x.is_cuda and xt.is_cuda
    cpu = gen.to("cpu").sample(256, steps=2, generator=0)  # the same noise on either device
    assert torch.allclose(cpu, x.cpu(), atol=1e-3)
    gen.to("cuda")
    assert guided_sample(gen, 8, lambda v: v[:, 0], steps=2, generator=0).is_cuda
