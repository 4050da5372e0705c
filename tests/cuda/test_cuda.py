"""The same code on CUDA (skipped where no GPU is present)."""

from __future__ import annotations

import pytest
import torch

import flowsim

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_reference_solve_on_cuda_matches_cpu():
    sysm = flowsim.get_system("fitzhugh_nagumo")
    x0 = sysm.sample_initial(64, generator=0)
    p = sysm.sample_params(64, generator=1)
    t = torch.linspace(0, 20, 11, dtype=torch.float64)
    cpu = flowsim.reference_solve(sysm, x0, t, p, rtol=1e-10, atol=1e-12)
    gpu = flowsim.reference_solve(sysm, x0.cuda(), t.cuda(), p.cuda(), rtol=1e-10, atol=1e-12)
    assert gpu.x.is_cuda and bool(gpu.ok.all())
    assert torch.allclose(gpu.x.cpu(), cpu.x, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("objective", ["pairs", "physics", "lsd", "pairs+semigroup"])
def test_fit_jump_odeint_on_cuda(objective):
    sysm = flowsim.get_system("lotka_volterra")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(128, 0), torch.linspace(0, 14.3, 57),
                                  sysm.sample_params(128, 1))
    metrics = {}
    for device in ("cpu", "cuda"):  # the same run on both devices learns the same
        fm = flowsim.FlowMap(sysm, width=64, depth=3)
        res = flowsim.fit(fm, objective, None if objective == "physics" else sol, steps=300,
                          batch_size=256, device=device, progress=False)
        metrics[device] = res.metrics
    fm = res.flowmap
    assert next(fm.parameters()).is_cuda
    x = sysm.sample_initial(32, generator=5).float().cuda()
    p = sysm.sample_params(32, generator=6).float().cuda()
    assert torch.equal(fm.jump(x, 0.0, 0.0, p), x)
    out = fm.odeint(x, torch.linspace(0, 10, 5, device="cuda"), p)
    assert out.shape == (5, 32, 2) and out.is_cuda and torch.isfinite(out).all()
    # the batches are drawn on the CPU from the same seed, so both devices take the same steps:
    # on an H200 the errors agreed to 7 digits (physics) and within 3 % (pairs+semigroup, whose
    # targets are the map's own, so float32 rounding grows over 300 steps)
    for key, v in metrics["cpu"].items():
        assert abs(metrics["cuda"][key] - v) <= 0.1 * v + 1e-3, (key, metrics)
    # 300 steps learn the shortest validation jump, not yet the long ones (physics alone, whose
    # long-jump targets are the map's own, reaches only 0.36 at the shortest jump and ~1 at 1 T)
    short = min(metrics["cpu"], key=lambda k: float(k.split("@")[1]))
    assert metrics["cuda"][short] < (0.5 if objective == "physics" else 0.2), metrics
    assert all(v < 2.0 for v in metrics["cuda"].values()), metrics


def test_analysis_on_cuda():
    from flowsim import analysis as an

    sysm = flowsim.get_system("lotka_volterra")
    fm = flowsim.FlowMap(sysm, width=32, depth=2).cuda()
    ref = flowsim.reference_solve(sysm, sysm.sample_initial(32, 0), torch.linspace(0, 14.3, 41))
    ej = an.error_vs_jump(fm, ref)
    assert "median_relative_error" in ej
    wp = an.work_precision(fm, sysm, sysm.sample_initial(256, 1), tolerances=(1e-3, 1e-5),
                           rk4_steps=(8, 32), solvers=("dopri5", "rk4"), repeats=1)
    assert wp.sizes["setting"] > 4


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch < 2.9 has no Muon")
def test_batched_muon_on_cuda_matches_torch_muon():
    from flowsim.train.muon import BatchedMuon

    g = torch.Generator().manual_seed(0)
    shapes = [(64, 7), (64, 64), (64, 64), (7, 64)]
    ours = [torch.nn.Parameter(torch.randn(*s, generator=g).cuda()) for s in shapes]
    theirs = [torch.nn.Parameter(p.detach().clone()) for p in ours]
    start = [p.detach().clone() for p in ours]
    kw = dict(lr=2e-2, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
    opt_a, opt_b = BatchedMuon(ours, **kw), torch.optim.Muon(theirs, **kw)
    for _ in range(5):
        for pa, pb in zip(ours, theirs):
            grad = torch.randn(pa.shape, generator=g).cuda()
            pa.grad, pb.grad = grad.clone(), grad.clone()
        opt_a.step()
        opt_b.step()
    for pa, pb, p0 in zip(ours, theirs, start):
        assert pa.is_cuda and opt_a.state[pa]["momentum_buffer"].is_cuda
        moved = (pb - p0).norm()
        assert moved > 0.05 and (pa - pb).norm() < 0.02 * moved


def test_compiled_flowmap_on_cuda_matches_eager():
    fm = flowsim.FlowMap("fitzhugh_nagumo", width=32, depth=3).cuda()
    x = fm.system.sample_initial(64, generator=0).float().cuda()
    p = fm.system.sample_params(64, generator=1).float().cuda()
    s = torch.zeros(64, device="cuda")
    t = torch.linspace(0.1, 5.0, 64, device="cuda")
    eager = fm(s, t, x, p)
    compiled = torch.compile(fm.forward)(s, t, x, p)
    assert compiled.is_cuda
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_checkpoint_trained_on_cuda_loads_on_cpu(tmp_path):
    sysm = flowsim.get_system("lotka_volterra")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(64, 0), torch.linspace(0, 14.3, 41),
                                  sysm.sample_params(64, 1))
    res = flowsim.fit(flowsim.FlowMap(sysm, width=32, depth=2), "pairs", sol, steps=50,
                      batch_size=128, device="cuda", progress=False)
    flowsim.save(res.flowmap, tmp_path / "m")
    cpu = flowsim.load(tmp_path / "m")
    assert not next(cpu.parameters()).is_cuda
    x = sysm.sample_initial(16, generator=3).float()
    p = sysm.sample_params(16, generator=4).float()
    torch.testing.assert_close(cpu.jump(x, 0.0, 1.0, p),
                               res.flowmap.jump(x.cuda(), 0.0, 1.0, p.cuda()).cpu(), rtol=1e-4, atol=1e-5)


def test_ensemble_trained_on_cuda_in_worker_processes(tmp_path):
    """Members train on the GPU in spawned workers, come back through the CPU, and land on the
    GPU again; the saved ensemble loads on the CPU with the same jumps."""
    sysm = flowsim.get_system("lotka_volterra")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(64, 0), torch.linspace(0, 14.3, 41),
                                  sysm.sample_params(64, 1))
    res = flowsim.fit_ensemble(flowsim.FlowMap(sysm, width=32, depth=2), "pairs", sol, members=2,
                               workers=2, steps=50, batch_size=128, device="cuda",
                               checkpoint_dir=tmp_path / "ens", progress=False)
    ens = res.ensemble
    assert ens.device.type == "cuda" and all(m.device.type == "cuda" for m in ens.members)
    x = sysm.sample_initial(16, generator=3).float()
    p = sysm.sample_params(16, generator=4).float()
    with torch.no_grad():
        gpu = ens.jump(x.cuda(), 0.0, 1.0, p.cuda()).cpu()
        cpu = flowsim.load(tmp_path / "ens").jump(x, 0.0, 1.0, p)
    torch.testing.assert_close(cpu, gpu, rtol=1e-4, atol=1e-5)


def test_jump_from_host_overlaps_and_equals_device_jump():
    from flowsim.maps import jump_from_host

    sysm = flowsim.get_system("lotka_volterra")
    fm = flowsim.FlowMap(sysm, width=32, depth=2).cuda()
    with torch.no_grad():
        for w in fm.parameters():
            w.add_(0.1 * torch.randn_like(w))
    x = sysm.sample_initial(50_000, 0).float()
    p = sysm.sample_params(50_000, 1).float()
    want = fm.jump(x.cuda(), 0.0, 1.0, p.cuda()).cpu()
    got = jump_from_host(fm, x, 0.0, 1.0, p, chunk_size=8192)
    assert got.device.type == "cpu" and got.is_pinned()
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def test_stacked_ensemble_on_cuda_equals_members_alone():
    sysm = flowsim.get_system("fitzhugh_nagumo")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(32, 0), torch.linspace(0, 10, 21),
                                  sysm.sample_params(32, 1))
    kw = dict(steps=30, batch_size=64, optimizer="adamw", progress=False, device="cuda")
    tmpl = flowsim.FlowMap(sysm, width=32, depth=2)
    alone = flowsim.train.fit_ensemble(tmpl, "lsd", sol, members=2, workers=1, stacked=False, **kw)
    stacked = flowsim.train.fit_ensemble(tmpl, "lsd", sol, members=2, **kw)  # stacked by default on CUDA
    assert stacked.ensemble.training_record["stacked"] is True
    for a, b in zip(alone.ensemble.members, stacked.ensemble.members):
        for pa, pb in zip(a.parameters(), b.parameters()):
            assert torch.allclose(pa, pb, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("objectives,optimizer", [("pairs", "adamw"), ("lsd", "muon")])
def test_graph_captured_step_equals_eager_over_100_steps(objectives, optimizer):
    sysm = flowsim.get_system("fitzhugh_nagumo")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(64, 0), torch.linspace(0, 10, 41),
                                  sysm.sample_params(64, 1))
    out = {}
    for graph in (False, True):
        fm = flowsim.FlowMap(sysm, width=64, depth=3)
        res = flowsim.fit(fm, objectives, sol, steps=100, batch_size=256, device="cuda", progress=False,
                          optimizer=optimizer, cuda_graph=graph)
        out[graph] = [p.detach().cpu() for p in res.flowmap.parameters()]
    for a, b in zip(out[False], out[True]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
