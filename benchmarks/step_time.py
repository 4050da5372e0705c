"""Milliseconds per ``flowsim.fit`` step, on whatever device is here, at a few batch sizes.

The accuracy benchmark's recipe on FitzHugh–Nagumo (128×6 MLP, Muon, pair regression,
``early_fraction=0.25``) on 500 reference trajectories. Each batch size: one warm-up ``fit``, then
``fit`` for 50 steps and for ``50 + --steps`` steps; the difference over ``--steps`` is the time of
a step without the set-up and the final validation.

    python benchmarks/step_time.py                        # batches 1024 and 8192, 600 steps
    python benchmarks/step_time.py --device cuda --out benchmarks/results/step_time_gpu

Writes ``benchmarks/results/step_time.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import flowsim
from flowsim.train import TrajectoryBank


def make_bank(system) -> TrajectoryBank:
    g = torch.Generator().manual_seed(0)
    T = system.timescale
    sol = flowsim.reference_solve(system, system.sample_initial(500, g),
                                  torch.linspace(0, 2.1 * T, 421, dtype=torch.float64),
                                  system.sample_params(500, g), rtol=1e-8, atol=1e-10)
    return TrajectoryBank.from_solution(sol)


def time_fit(system, bank, steps: int, batch: int, device: str) -> float:
    fm = flowsim.FlowMap(system, width=128, depth=6)
    t0 = time.perf_counter()
    flowsim.fit(fm, "pairs", bank, steps=steps, batch_size=batch, progress=False, device=device,
                optimizer="muon", val_every=10**9, early_fraction=0.25, max_jump=system.timescale)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1024, 8192])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/step_time")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    system = flowsim.get_system("fitzhugh_nagumo")
    bank = make_bank(system)
    rows = []
    for batch in args.batches:
        time_fit(system, bank, 20, batch, args.device)  # warm-up
        short = time_fit(system, bank, 50, batch, args.device)
        long = time_fit(system, bank, 50 + args.steps, batch, args.device)
        rows.append({"batch": batch, "ms_per_step": 1e3 * (long - short) / args.steps})
        print(f"batch {batch:6d}: {rows[-1]['ms_per_step']:.2f} ms per step", flush=True)
    meta = dict(machine=platform.processor() or platform.machine(), device=args.device,
                cuda=torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
                torch=torch.__version__, threads=torch.get_num_threads(), args=vars(args))
    out = Path(args.out).with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
