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
import sys
import time
from pathlib import Path

import torch

import flowsim

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import make_bank  # noqa: E402


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
    bank, _ = make_bank(system, 500, 2.1 * system.timescale, 421, 0, 1.0)
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
