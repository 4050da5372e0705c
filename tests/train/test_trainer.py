"""Training reaches real accuracy; checkpoints round-trip, resume after SIGKILL, refuse foreign runs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

import flowsim
from flowsim.train import TrajectoryBank

SCRIPT = textwrap.dedent(
    """
    import sys, torch, flowsim
    torch.set_num_threads(1)
    sysm = flowsim.get_system("harmonic_oscillator")
    g = torch.Generator().manual_seed(0)
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(40, g),
                                  torch.linspace(0, 8, 81, dtype=torch.float64),
                                  sysm.sample_params(40, g))
    fm = flowsim.FlowMap(sysm, width=16, depth=2)
    res = flowsim.fit(fm, "pairs+semigroup", sol, steps=int(sys.argv[2]), batch_size=64,
                      checkpoint_dir=sys.argv[1], checkpoint_every=10, progress=False,
                      val_every=10**6, seed=3, optimizer=sys.argv[3])
    torch.save(res.flowmap.state_dict(), sys.argv[1] + "/final.pt")
    """
)


def _run_script(tmp_path, ckdir, steps, kill_at=None, optimizer="adamw"):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(ckdir), str(steps), optimizer],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if kill_at is None:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        return
    state = ckdir / "trainer_state.pt"
    deadline = time.time() + 200
    while time.time() < deadline:
        if state.exists():
            try:
                step = torch.load(state, weights_only=True)["step"]
            except Exception:  # mid-rename; try again
                step = 0
            if step >= kill_at:
                break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tmp_path, optimizer):
    steps = 200
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    _run_script(tmp_path, clean, steps, optimizer=optimizer)
    _run_script(tmp_path, killed, steps, kill_at=40, optimizer=optimizer)
    step_at_kill = torch.load(killed / "trainer_state.pt", weights_only=True)["step"]
    assert 40 <= step_at_kill < steps
    assert not (killed / "final.pt").exists()
    _run_script(tmp_path, killed, steps, optimizer=optimizer)  # resumes
    a = torch.load(clean / "final.pt", weights_only=True)
    b = torch.load(killed / "final.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the checkpoint on disk is loadable and equals the returned EMA model
    fm = flowsim.load(killed)
    for k, v in fm.state_dict().items():
        assert torch.equal(v, b[k])
    assert json.loads((killed / "metrics.json").read_text())["config"]["steps"] == steps
    assert (killed / "log.csv").read_text().startswith("step")


@pytest.mark.slow
def test_short_training_reaches_accuracy():
    """Lotka–Volterra at default parameters: a broken objective cannot reach these errors."""
    torch.manual_seed(0)
    sysm = flowsim.get_system("lotka_volterra")
    g = torch.Generator().manual_seed(0)
    x0 = sysm.sample_initial(200, g)
    t = torch.linspace(0, 2 * sysm.timescale, 121, dtype=torch.float64)
    sol = flowsim.reference_solve(sysm, x0, t, sysm.default_params(200), rtol=1e-10, atol=1e-12)
    bank = TrajectoryBank.from_solution(sol)
    train, test = bank.split(0.2, g)
    # a narrow-prior map: the parameters are fixed at their defaults
    fm = flowsim.FlowMap(sysm, width=48, depth=3, param_range="default")
    res = flowsim.fit(fm, "pairs", train, steps=800, batch_size=256, lr=5e-3, progress=False,
                      validation=test, max_jump=sysm.timescale)
    T = sysm.timescale
    errs = flowsim.train.validation.jump_errors(res.flowmap, test, [0.01 * T, 0.1 * T, T])
    ident = flowsim.train.validation.jump_errors(flowsim.FlowMap(sysm, width=4, depth=1), test,
                                                 [0.01 * T, 0.1 * T, T])
    assert ident[f"rel@{0.1 * T:.4g}"] > 0.2  # the identity map: what 'untrained' scores
    assert ident[f"rel@{0.01 * T:.4g}"] > 0.05 and ident[f"norm@{T:.4g}"] > 0.6
    # 800 steps of a small net: 3-15x better than the identity at every jump size
    # (measured: 1.2e-2, 3.3e-2, 0.20; benchmarks/accuracy.py trains longer)
    assert errs[f"rel@{0.01 * T:.4g}"] < 2e-2
    assert errs[f"rel@{0.1 * T:.4g}"] < 5e-2
    assert errs[f"norm@{T:.4g}"] < 0.3


@pytest.mark.slow
def test_physics_only_training_learns_the_oscillator():
    sysm = flowsim.get_system("harmonic_oscillator")
    fm = flowsim.FlowMap(sysm, width=64, depth=3)
    # 1,000 steps: with Muon on the input layer physics-only training starts slower (at 500
    # steps 0.19-0.27 at this jump over three seeds, against 0.04-0.07 with the input layer on
    # AdamW) and catches up (1,000 steps: 0.024-0.034; 2,000: 7.2e-3 against 8.0e-3)
    res = flowsim.fit(fm, "physics", None, steps=1000, batch_size=128, lr=3e-3, progress=False,
                      max_jump=1.0, seed=1)
    errs = res.metrics
    key = [k for k in errs if k.startswith("rel@1")][0]
    assert errs[key] < 0.06, errs  # the identity map scores ~0.6 at this jump


def test_checkpoint_round_trip_and_foreign_refused(tmp_path):
    fm = flowsim.FlowMap("fitzhugh_nagumo", width=16, depth=2)
    with torch.no_grad():
        for p in fm.parameters():
            p.add_(torch.randn_like(p))
    flowsim.save(fm, tmp_path / "ck")
    back = flowsim.load(tmp_path / "ck")
    x = fm.system.sample_initial(5, generator=0).float()
    assert torch.equal(fm.jump(x, 0.0, 3.0), back.jump(x, 0.0, 3.0))
    assert back.config == fm.config
    with pytest.raises(flowsim.CheckpointError, match="does not match"):
        flowsim.load(tmp_path / "ck", system=flowsim.get_system("lotka_volterra"))
    with pytest.raises(flowsim.CheckpointError):
        flowsim.load(tmp_path / "nowhere")
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(flowsim.CheckpointError, match="corrupted"):
        flowsim.load(tmp_path / "ck")


def test_resume_refuses_another_system(tmp_path):
    sysm = flowsim.get_system("harmonic_oscillator")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(20, 0), torch.linspace(0, 5, 21))
    flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, steps=5, batch_size=16,
                checkpoint_dir=tmp_path, progress=False)
    other = flowsim.FlowMap("pendulum", width=8, depth=1)
    psol = flowsim.reference_solve(other.system, other.system.sample_initial(20, 0),
                                   torch.linspace(0, 5, 21))
    with pytest.raises(flowsim.CheckpointError, match="harmonic_oscillator"):
        flowsim.fit(other, "pairs", psol, steps=5, batch_size=16, checkpoint_dir=tmp_path,
                    progress=False)


def test_jump_margin_trains_past_max_jump_and_keeps_it():
    sysm = flowsim.get_system("lotka_volterra")
    T = sysm.timescale
    x0 = sysm.sample_initial(16, 0)
    long = flowsim.reference_solve(sysm, x0, torch.linspace(0, 2 * T, 81, dtype=torch.float64))
    short = flowsim.reference_solve(sysm, x0, torch.linspace(0, T, 41, dtype=torch.float64))
    for sol, margin, trained in [(long, 0.1, 1.1 * T), (long, 0.0, T), (short, 0.1, T)]:
        fm = flowsim.FlowMap(sysm, width=8, depth=1)
        res = flowsim.fit(fm, "pairs", sol, steps=3, batch_size=16, max_jump=T, progress=False,
                          jump_margin=margin)
        assert res.flowmap.max_jump == pytest.approx(T)  # odeint's longest jump stays max_jump
        assert res.flowmap.training_record["trained_max_gap"] == pytest.approx(trained)
    with pytest.raises(flowsim.ConfigError, match="jump_margin"):
        flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", long, steps=3,
                    progress=False, jump_margin=-0.5)


def test_fit_bad_inputs():
    fm = flowsim.FlowMap("harmonic_oscillator", width=8, depth=1)
    with pytest.raises(flowsim.ConfigError, match="need trajectory data"):
        flowsim.fit(fm, "pairs", None, steps=5, progress=False)
    with pytest.raises(flowsim.ConfigError):
        flowsim.fit(fm, "pairs", [1, 2, 3], steps=5, progress=False)
    with pytest.raises(flowsim.ConfigError):
        flowsim.fit(fm, "physics", None, steps=0, progress=False)
    with pytest.raises(flowsim.ConfigError, match="time_budget"):
        flowsim.fit(fm, "physics", None, steps=5, progress=False, time_budget=-1.0)
    for name in ("early_fraction", "log_fraction", "diagonal_fraction"):
        with pytest.raises(flowsim.ConfigError, match=name):
            flowsim.fit(fm, "physics", None, steps=5, progress=False, **{name: 1.5})


def test_early_fraction_draws_starts_near_the_initial_states():
    sysm = flowsim.get_system("lotka_volterra")
    T = sysm.timescale
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(8, 0),
                                  torch.linspace(0, 2 * T, 401, dtype=torch.float64))
    bank = TrajectoryBank.from_solution(sol)
    g = torch.Generator().manual_seed(0)
    step = float(bank.t[0, 1] - bank.t[0, 0])
    n = 20000
    uniform = bank.sample_pairs(n, g, min_gap=0.5 * T, max_gap=T, early_fraction=0.0)
    early = bank.sample_pairs(n, g, min_gap=0.5 * T, max_gap=T, early_fraction=1.0)
    mixed = bank.sample_pairs(n, g, min_gap=0.5 * T, max_gap=T, early_fraction=0.25)
    for b in (uniform, early, mixed):  # gaps and pairs stay right
        gap = b.t - b.s
        assert (gap >= 0.5 * T - step).all() and (gap <= T + step).all() and (b.t <= 2 * T).all()
        i = torch.searchsorted(bank.t[0], b.s)
        assert torch.equal(bank.t[0, i], b.s)

    def first(b, k):  # share of starts among the first k stored times
        return float((b.s < bank.t[0, k]).double().mean())

    # uniform: the first 10 of ≥ 200 admissible starts get < 5 %; log-uniform: ln 11 / ln 302 ≈ 42 %
    assert first(uniform, 10) < 0.06
    assert 0.36 < first(early, 10) < 0.48 and 0.09 < first(early, 1) < 0.15
    assert first(mixed, 10) == pytest.approx(0.25 * first(early, 10) + 0.75 * first(uniform, 10),
                                             abs=0.02)
    # and fit records it
    fm = flowsim.FlowMap(sysm, width=8, depth=1)
    res = flowsim.fit(fm, "pairs", bank, steps=3, batch_size=16, progress=False, early_fraction=0.3)
    assert res.flowmap.training_record["early_fraction"] == 0.3


def test_jump_errors_from_the_initial_states():
    """``from_start`` jumps from each trajectory's first state: a map that is exact there and
    wrong elsewhere scores zero from the start and not along the trajectories."""
    sysm = flowsim.get_system("harmonic_oscillator")
    t = torch.linspace(0, 4, 81, dtype=torch.float64)
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(32, 0), t, rtol=1e-11, atol=1e-12)
    bank = TrajectoryBank.from_solution(sol)

    class ExactFromZero(torch.nn.Module):  # the true rotation only for jumps that start at 0
        device, dtype, training = torch.device("cpu"), torch.float64, False

        def forward(self, s, t, x, p):
            c, sn = torch.cos(t - s), torch.sin(t - s)
            rot = torch.stack([c * x[:, 0] + sn * x[:, 1], -sn * x[:, 0] + c * x[:, 1]], -1)
            return torch.where((s == 0)[:, None], rot, x)

        def train(self, mode=True):
            return self

    jumps = [0.1, 1.0, 2.0]
    start = flowsim.train.validation.jump_errors(ExactFromZero(), bank, jumps, from_start=True)
    along = flowsim.train.validation.jump_errors(ExactFromZero(), bank, jumps)
    assert max(start.values()) < 1e-8
    assert min(along.values()) > 1e-2
    with pytest.raises(flowsim.ConfigError, match="no trajectory reaches"):
        flowsim.train.validation.jump_errors(ExactFromZero(), bank, [5.0], from_start=True)


@pytest.mark.slow
def test_fit_streams_a_store_from_disk(tmp_path):
    sysm = flowsim.get_system("lotka_volterra")
    store = tmp_path / "lv.zarr"
    flowsim.simulate_ensemble(sysm, 64, torch.linspace(0, 10, 41), store=store, client="sync",
                              chunk_size=16, progress=False)
    fm = flowsim.FlowMap(sysm, width=16, depth=2)
    res = flowsim.fit(fm, "pairs", str(store), steps=40, batch_size=32, progress=False,
                      stream=True, max_jump=5.0)
    assert all(v == v for v in res.metrics.values())  # finite validation numbers
    assert res.history[-1]["step"] == 40


def test_tf32_on_cuda_is_warned_about():
    from flowsim.train import warn_if_tf32 as _warn_if_tf32

    assert not _warn_if_tf32(torch.device("cuda")) and not _warn_if_tf32(torch.device("cpu"))
    old = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("high")  # lets CUDA use TF32
        with pytest.warns(UserWarning, match="TF32"):
            assert _warn_if_tf32(torch.device("cuda"))
        assert not _warn_if_tf32(torch.device("cpu"))
    finally:
        torch.set_float32_matmul_precision(old)


class _BreaksAt(flowsim.train.Objective):
    """Physics loss that turns NaN from a given call on (a diverging run)."""

    name, needs = "breaks", flowsim.train.BatchKind.STATES

    def __init__(self, at: int) -> None:
        self.at, self.calls, self.inner = at, 0, flowsim.train.make_objectives("physics")[0]

    def __call__(self, fm, batch):
        self.calls += 1
        loss = self.inner(fm, batch)
        return loss * float("nan") if self.calls >= self.at else loss


@pytest.mark.parametrize("device", [
    "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))])
def test_nonfinite_loss_stops_before_a_checkpoint_is_written(tmp_path, device):
    fm = flowsim.FlowMap("harmonic_oscillator", width=8, depth=1)
    with pytest.raises(flowsim.ConfigError, match=r"non-finite at step \d+;"):
        flowsim.fit(fm, [_BreaksAt(7)], None, steps=20, batch_size=32, progress=False,
                    checkpoint_dir=tmp_path, checkpoint_every=5, device=device)
    # the last checkpoint is the one from before the loss broke, and it is finite
    state = torch.load(tmp_path / "trainer_state.pt", weights_only=True)
    assert state["step"] == 5
    assert all(torch.isfinite(v).all() for v in state["model"].values())
