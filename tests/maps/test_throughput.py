"""Big batches in chunks (same numbers as one call), bf16 inference, and impossible requests."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim.errors import ConfigError, MemoryBudgetError
from flowsim.maps import Precision, auto_chunk_size, free_memory


@pytest.fixture(scope="module")
def fm():
    torch.manual_seed(0)
    fm = flowsim.FlowMap("lotka_volterra", width=32, depth=2, max_jump=2.0)
    with torch.no_grad():                       # the last layer starts at zero: give it weights
        for w in fm.parameters():
            w.add_(0.3 * torch.randn_like(w))
    return fm


def _inputs(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 0.5 + torch.rand(n, 2, generator=g)
    s = torch.rand(n, generator=g)
    return x, s, s + torch.rand(n, generator=g)


def test_chunked_jumps_equal_one_call(fm):
    x, s, t = _inputs(1001)
    p = fm.sample_params(1001, generator=1)
    whole = fm.jump(x, s, t, p, chunk_size=10**6)
    for chunk in (3, 7, 500):   # equal to rounding: a GEMM's blocking depends on the batch size
        assert torch.allclose(fm.jump(x, s, t, p, chunk_size=chunk), whole, rtol=1e-6, atol=1e-6)
    assert torch.equal(fm.jump(x, s, t, p), whole)              # automatic: fits in one call here


def test_chunked_odeint_equals_one_call_and_keeps_gradients(fm):
    x, _, _ = _inputs(33)
    x.requires_grad_(True)
    grid = torch.linspace(0, 3, 5)
    whole = fm.odeint(x, grid, chunk_size=1000)
    parts = fm.odeint(x, grid, chunk_size=4)
    assert parts.shape == (5, 33, 2) and torch.allclose(parts, whole, atol=1e-6, rtol=0)
    (g1,) = torch.autograd.grad(whole.sum(), x)
    (g2,) = torch.autograd.grad(parts.sum(), x)
    assert torch.allclose(g1, g2, atol=1e-5)


def test_bfloat16_inference_is_close_and_returns_the_maps_dtype(fm):
    x, s, t = _inputs(256)
    exact = fm.jump(x, s, t)
    low = fm.jump(x, s, t, precision="bfloat16")
    assert low.dtype == torch.float32
    rel = ((low - exact).norm(dim=1) / exact.norm(dim=1)).median()
    assert 0 < rel < 3e-2                          # bf16 keeps ~3 significant digits of the step
    assert torch.equal(fm.jump(x, s, t, precision=Precision.TF32), exact)   # no effect on a CPU


def test_automatic_chunks_follow_free_memory():
    free = free_memory(torch.device("cpu"))
    chunk = auto_chunk_size(free // 10, 8, 100, torch.device("cpu"))   # 10 % of memory per state
    assert 1 <= chunk <= 3
    with pytest.raises(MemoryBudgetError, match="inputs and outputs alone"):
        auto_chunk_size(64, 1 << 20, free // (1 << 20) + 1, torch.device("cpu"))


def test_bad_chunk_and_precision(fm):
    x, s, t = _inputs(4)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match="chunk_size"):
            fm.jump(x, s, t, chunk_size=bad)
    with pytest.raises(ConfigError, match="precision"):
        fm.jump(x, s, t, precision="float8")


def test_jump_from_host_equals_jump(fm):
    """On the CPU, jump_from_host is the chunked jump (the CUDA overlap: tests/cuda)."""
    from flowsim.maps import jump_from_host

    sysm = fm.system
    x = sysm.sample_initial(700, 3).float()
    p = sysm.sample_params(700, 4).float()
    s = torch.rand(700) * 2
    want = fm.jump(x, s, s + 1.0, p)
    got = jump_from_host(fm, x, s, s + 1.0, p, chunk_size=256)
    assert torch.allclose(got, want, atol=1e-6)
    one = sysm.sample_params(1, 5).float()[0]  # a (n_params,) parameter vector for every state
    assert torch.allclose(jump_from_host(fm, x, 0.0, 0.5, one, chunk_size=100), fm.jump(x, 0.0, 0.5, one),
                          atol=1e-6)
    with pytest.raises(flowsim.ShapeError, match="host memory"):
        jump_from_host(fm, [[1.0, 2.0]], 0.0, 1.0)
    with pytest.raises(flowsim.ConfigError, match="chunk_size"):
        jump_from_host(fm, x, 0.0, 1.0, p, chunk_size=0)
