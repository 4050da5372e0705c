"""Time of Muon's step and of a whole training step: ``torch.optim.Muon`` against flowsim's
``BatchedMuon`` (the Newton–Schulz iterations of same-shaped matrices batched), with its
iterations in float32 and in bfloat16.

Both run in one process on the same map, data and seed: first the optimiser step alone on the
backbone's matrices with random gradients, then ``flowsim.fit`` (pair regression on
FitzHugh–Nagumo, the accuracy benchmark's settings) for ``--steps`` steps at each batch size,
alternating the two ``--repeats`` times (a whole ``fit`` call, so it includes its set-up and
final validation). This virtual machine's speed drifts by tens of per cent within minutes, so
the figure to read is the median of the ratios of neighbouring runs.

    python benchmarks/muon_step.py                      # 128×6, batches 512 and 1024, 2 threads

Writes ``benchmarks/results/muon_step.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import flowsim
from flowsim.train import optim
from flowsim.train.muon import BatchedMuon

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import make_bank  # noqa: E402


class BatchedMuonFloat32(BatchedMuon):
    def __init__(self, params, **kw):
        super().__init__(params, ns_dtype=torch.float32, **kw)


class BatchedMuonBfloat16(BatchedMuon):
    def __init__(self, params, **kw):
        super().__init__(params, ns_dtype=torch.bfloat16, **kw)


THEIRS = "torch.optim.Muon"
IMPLS = {THEIRS: torch.optim.Muon, "flowsim BatchedMuon (float32)": BatchedMuonFloat32,
         "flowsim BatchedMuon (bfloat16)": BatchedMuonBfloat16}


def time_optimizer_step(cls, fm, repeats):
    mats = [torch.nn.Parameter(p.detach().clone()) for p in optim.muon_matrices(fm)]
    g = torch.Generator().manual_seed(0)
    for p in mats:
        p.grad = torch.randn(p.shape, generator=g)
    opt = cls(mats, lr=1e-3, adjust_lr_fn="match_rms_adamw")
    for _ in range(20):
        opt.step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        opt.step()
    return (time.perf_counter() - t0) / repeats


def time_fit_step(cls, system, bank, test, width, depth, batch, steps):
    optim.BatchedMuon = cls  # what MuonAdamW builds
    try:
        fm = flowsim.FlowMap(system, width=width, depth=depth)
        kw = dict(batch_size=batch, lr=5e-3, progress=False, validation=test, max_jump=system.timescale,
                  val_every=10**9, jump_margin=0.1, optimizer="muon")
        flowsim.fit(fm, "pairs", bank, steps=20, **kw)  # warm-up
        t0 = time.perf_counter()
        flowsim.fit(flowsim.FlowMap(system, width=width, depth=depth), "pairs", bank, steps=steps, **kw)
        return (time.perf_counter() - t0) / steps
    finally:
        optim.BatchedMuon = BatchedMuon


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="fitzhugh_nagumo")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--batches", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--steps", type=int, default=400, help="training steps timed per run")
    ap.add_argument("--repeats", type=int, default=5, help="alternating pairs of runs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/muon_step.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    system = flowsim.get_system(a.system)
    fm = flowsim.FlowMap(system, width=a.width, depth=a.depth)
    shapes = [list(p.shape) for p in optim.muon_matrices(fm)]
    out = {"machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
                      f"threads, torch {torch.__version__}",
           "system": a.system, "network": f"{a.width}x{a.depth}", "muon_matrices": shapes,
           "optimizer_step_ms": {}, "fit_step_ms": {}}
    for name, cls in IMPLS.items():
        out["optimizer_step_ms"][name] = 1e3 * time_optimizer_step(cls, fm, 300)
    bank, _ = make_bank(system, 1000, 2.1 * system.timescale, 421, 1, 1.0)
    test, _ = make_bank(system, 50, 2 * system.timescale, 401, 2, 1.0)
    ours = [name for name in IMPLS if name != THEIRS]
    for batch in a.batches:  # alternating; this VM's speed drifts, so compare neighbours
        times: dict[str, list[float]] = {name: [] for name in IMPLS}
        for _ in range(a.repeats):
            for name, cls in IMPLS.items():
                times[name].append(1e3 * time_fit_step(cls, system, bank, test, a.width, a.depth,
                                                       batch, a.steps))
        out["fit_step_ms"][str(batch)] = {**times, "ratio_median": {
            name: statistics.median([t / o for t, o in zip(times[THEIRS], times[name])]) for name in ours}}
    print(f"{out['network']} on {out['machine']}; matrices {shapes}")
    o = out["optimizer_step_ms"]
    for name in ours:
        print(f"optimiser step: torch {o[THEIRS]:.2f} ms, {name} {o[name]:.2f} ms "
              f"({o[THEIRS] / o[name]:.2f}x)")
    for batch, f in out["fit_step_ms"].items():
        for name in ours:
            print(f"fit step, batch {batch}: torch {statistics.median(f[THEIRS]):.2f} ms, {name} "
                  f"{statistics.median(f[name]):.2f} ms (medians); torch / flowsim, run by run: "
                  f"{' '.join(f'{t / o:.2f}' for t, o in zip(f[THEIRS], f[name]))}, "
                  f"median {f['ratio_median'][name]:.2f}x")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
