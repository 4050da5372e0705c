"""``BatchedMuon``: torch's Muon with the Newton–Schulz iterations batched over same-shaped
matrices, in float32."""

from __future__ import annotations

import copy

import pytest
import torch

from flowsim.train.muon import BatchedMuon, fast_bfloat16, newton_schulz

pytestmark = pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch < 2.9 has no Muon")


def test_newton_schulz_orthogonalises_and_batching_changes_nothing():
    g = torch.Generator().manual_seed(0)
    mats = torch.randn(3, 24, 10, generator=g, dtype=torch.float64)
    out = newton_schulz(mats)
    assert out.shape == mats.shape
    # one at a time (tall and wide) gives the same matrices
    for m, o in zip(mats, out):
        torch.testing.assert_close(newton_schulz(m), o, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(newton_schulz(m.T), o.T, rtol=1e-12, atol=1e-12)
    # the singular vectors of the input, the singular values pulled to about 1
    for m, o in zip(mats, out):
        u, s, vh = torch.linalg.svd(m, full_matrices=False)
        s_out = torch.diagonal(u.T @ o @ vh.T)
        assert ((s_out > 0.5) & (s_out < 1.5)).all()
        off = u.T @ o @ vh.T - torch.diag(s_out)
        assert off.abs().max() < 1e-10
    # a zero gradient stays zero instead of dividing by zero
    assert newton_schulz(torch.zeros(4, 4)).abs().max() == 0


def _pair(shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = [torch.nn.Parameter(torch.randn(*s, generator=g)) for s in shapes]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    return a, b


@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("adjust", ["match_rms_adamw", "original", None])
@pytest.mark.parametrize("ns_dtype", [None, torch.float32, torch.bfloat16])
def test_same_steps_as_torch_muon(nesterov, adjust, ns_dtype):
    shapes = [(32, 7), (32, 32), (32, 32), (32, 32), (7, 32)]
    ours, theirs = _pair(shapes)
    kw = dict(lr=2e-2, weight_decay=0.1, momentum=0.9, nesterov=nesterov, adjust_lr_fn=adjust)
    opt_a, opt_b = BatchedMuon(ours, ns_dtype=ns_dtype, **kw), torch.optim.Muon(theirs, **kw)
    g = torch.Generator().manual_seed(1)
    start = [p.detach().clone() for p in ours]
    for _ in range(5):
        for pa, pb in zip(ours, theirs):
            grad = torch.randn(pa.shape, generator=g)
            pa.grad, pb.grad = grad.clone(), grad.clone()
        opt_a.step()
        opt_b.step()
    for pa, pb, p0 in zip(ours, theirs, start):
        moved = (pb - p0).norm()
        assert moved > 0.05
        # torch iterates in bfloat16 one matrix at a time: they agree to bfloat16 rounding
        assert (pa - pb).norm() < 0.02 * moved
        torch.testing.assert_close(opt_a.state[pa]["momentum_buffer"],
                                   opt_b.state[pb]["momentum_buffer"], rtol=1e-5, atol=1e-6)


def test_state_dicts_load_into_each_other_and_resume_identically():
    ours, theirs = _pair([(16, 5), (16, 16)])
    opt_a = BatchedMuon(ours, lr=1e-2, adjust_lr_fn="match_rms_adamw")
    opt_b = torch.optim.Muon(theirs, lr=1e-2, adjust_lr_fn="match_rms_adamw")
    for p in ours + theirs:
        p.grad = torch.ones(p.shape)
    opt_a.step()
    opt_b.step()
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # load_state_dict shares tensors
    for pa, pb in zip(ours, theirs):
        assert torch.equal(opt_a.state[pa]["momentum_buffer"], opt_b.state[pb]["momentum_buffer"])
    again = BatchedMuon([torch.nn.Parameter(p.detach().clone()) for p in ours], lr=1e-2,
                        adjust_lr_fn="match_rms_adamw")
    again.load_state_dict(copy.deepcopy(opt_a.state_dict()))
    clones = again.param_groups[0]["params"]
    for p in ours + clones:
        p.grad = torch.full(p.shape, 0.5)
    opt_a.step()
    again.step()
    for p, q in zip(ours, clones):
        assert torch.equal(p, q)


def test_parameters_without_gradients_are_left_alone():
    w = [torch.nn.Parameter(torch.randn(8, 8)) for _ in range(2)]
    before = w[1].detach().clone()
    opt = BatchedMuon(w, lr=1e-2, weight_decay=0.5)
    w[0].grad = torch.randn(8, 8)
    opt.step()
    assert torch.equal(w[1], before) and "momentum_buffer" not in opt.state[w[1]]
    with pytest.raises(ValueError, match="2D"):
        BatchedMuon([torch.nn.Parameter(torch.randn(3))])


def test_newton_schulz_dtype_follows_the_hardware():
    """bfloat16 iterations where the CPU multiplies bfloat16 natively, float32 elsewhere."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    native = "avx512_bf16" in flags or "amx_bf16" in flags
    assert fast_bfloat16("cpu") == native and fast_bfloat16(torch.device("cpu")) == native
    w = [torch.nn.Parameter(torch.randn(8, 8))]
    assert BatchedMuon(w).ns_dtype_for(torch.device("cpu")) == (torch.bfloat16 if native else torch.float32)
    assert BatchedMuon(w, ns_dtype=torch.float32).ns_dtype_for(torch.device("cpu")) == torch.float32
    with pytest.raises(ValueError, match="ns_dtype"):
        BatchedMuon(w, ns_dtype=torch.int8)
