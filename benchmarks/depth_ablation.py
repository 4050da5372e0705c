"""Network depth, width and which layers Muon trains, at a fixed step count.

Trains one pair-regression flow map of FitzHugh–Nagumo (or ``--system``) with the accuracy
benchmark's data and settings (4,000 training trajectories, 500 held-out ones, lr 5e-3, batch
512, jump margin 10 %, 20 % log-uniform gaps), then prints the median single-jump error (the
worse of relative and normalised) and the 90th percentile of the normalised error at 0.01, 0.1,
0.46 and 1 timescale on 4,000 held-out pairs each, the median error of the same jumps from the
500 held-out initial states, and the time per step. Appends a JSON line to
``--log``. These runs gave the rows of "Depth, and Muon on the input layer" in docs/benchmarks.md
(two single-threaded runs side by side):

    python benchmarks/depth_ablation.py --depth 4 --muon-layers hidden   # 3.4e-3 at 1 T
    python benchmarks/depth_ablation.py --depth 4                        # 3.2e-3
    python benchmarks/depth_ablation.py --depth 6 --muon-layers hidden   # 2.4e-3
    python benchmarks/depth_ablation.py --depth 6                        # 1.9e-3 (the default)
    python benchmarks/depth_ablation.py --depth 6 --muon-layers all      # 2.1e-3
    python benchmarks/depth_ablation.py --depth 6 --lr 1e-2              # 2.5e-3
    python benchmarks/depth_ablation.py --depth 6 --logf 0               # 2.0e-3
    # --muon-layers hidden with --depth 3 / 5 / 8, --width 96 --depth 6 / 8, --width 192 --depth 4
    # starts near the initial states (fit(early_fraction=…)), batch 1,024; along the
    # trajectories / from the initial states, at 1 T:
    python benchmarks/depth_ablation.py --depth 6 --batch 1024 --early 0     # 1.9e-3 / 1.7e-2
    python benchmarks/depth_ablation.py --depth 6 --batch 1024 --early 0.1   # 1.9e-3 / 1.1e-2
    python benchmarks/depth_ablation.py --depth 6 --batch 1024 --early 0.25  # 2.0e-3 / 8.3e-3
    python benchmarks/depth_ablation.py --depth 6 --batch 1024 --early 0.5   # 2.1e-3 / 5.9e-3
    # (the rows above ran the Newton–Schulz iterations in float32, the default then; --ns-dtype
    # float32 repeats them.) Muon's iterations, batch 512, early 0.25:
    python benchmarks/depth_ablation.py --depth 6 --early 0.25 --ns-dtype float32   # 2.2e-3 / 8.2e-3
    python benchmarks/depth_ablation.py --depth 6 --early 0.25 --ns-dtype bfloat16  # 2.2e-3 / 7.9e-3
    python benchmarks/depth_ablation.py --depth 6 --early 0.25 --ns-dtype bfloat16 --batch 1024
    #                                                                      2.0e-3 / 8.5e-3
    python benchmarks/depth_ablation.py --depth 6 --early 0.25 --ns-dtype float32 --ns-steps 3
    #                                                                      2.7e-3 / 9.8e-3

``--muon-layers``: ``input+hidden`` (the library's split: every backbone matrix but the head's),
``hidden`` (the input layer on AdamW too, flowsim before this benchmark) or ``all`` (the head too).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

import flowsim
from flowsim.train import optim
from flowsim.train.validation import jump_errors

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import make_bank  # noqa: E402


def _hidden_only(fm):
    """The MLP's width × width matrices: neither the input layer nor the head."""
    return [p for p in fm.net.parameters() if p.ndim == 2][1:-1]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="fitzhugh_nagumo")
    ap.add_argument("--steps", type=int, default=16000)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--logf", type=float, default=0.2, help="fit(log_fraction=…)")
    ap.add_argument("--early", type=float, default=0.0, help="fit(early_fraction=…)")
    ap.add_argument("--optimizer", default="muon", choices=list(optim.OPTIMIZERS))
    ap.add_argument("--muon-layers", default="input+hidden", choices=["input+hidden", "hidden", "all"])
    ap.add_argument("--ns-steps", type=int, default=5, help="Newton–Schulz iterations of Muon")
    ap.add_argument("--ns-dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                    help="dtype of Muon's Newton–Schulz iterations (auto: the library's choice)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log", default=None, help="append a JSON line with the result to this file")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.muon_layers == "hidden":  # the split before the input layer moved to Muon
        optim.muon_matrices = _hidden_only
    elif a.muon_layers == "all":
        optim.muon_matrices = lambda fm: [p for p in fm.net.parameters() if p.ndim == 2]
    if a.ns_steps != 5 or a.ns_dtype != "auto":
        ns_dtype = None if a.ns_dtype == "auto" else getattr(torch, a.ns_dtype)

        class _Muon(optim.BatchedMuon):
            def __init__(self, params, **kw):
                super().__init__(params, ns_steps=a.ns_steps, ns_dtype=ns_dtype, **kw)

        optim.BatchedMuon = _Muon
    system = flowsim.get_system(a.system)
    T = system.timescale
    bank, _ = make_bank(system, 4000, 2.1 * T, 421, 1, 1.0)
    test, _ = make_bank(system, 500, 2 * T, 401, 2, 1.0)
    fm = flowsim.FlowMap(system, width=a.width, depth=a.depth)
    t0 = time.perf_counter()
    res = flowsim.fit(fm, flowsim.train.make_objectives("pairs"), bank, steps=a.steps,
                      batch_size=a.batch, lr=a.lr, progress=False, validation=test, max_jump=T,
                      log_fraction=a.logf, early_fraction=a.early, val_every=10**9, jump_margin=0.1,
                      optimizer=a.optimizer)
    elapsed = time.perf_counter() - t0
    fm = res.flowmap
    g = torch.Generator().manual_seed(7)
    sigma = test.x.reshape(-1, test.x.shape[-1]).std(0)
    rows = []
    with torch.no_grad():
        for h in (0.01, 0.1, 0.46, 1.0):
            b = test.sample_pairs(4000, g, min_gap=h * T, max_gap=h * T)
            pred = fm(b.s.float(), b.t.float(), b.x_s.float(), b.p.float()).double()
            err = pred - b.x_t
            rel = err.norm(dim=-1) / b.x_t.norm(dim=-1)
            nrm = (err / sigma).norm(dim=-1) / math.sqrt(err.shape[-1])
            # the same jump from the held-out initial states (the first stored time)
            start = jump_errors(fm, test, [h * T], from_start=True)
            rows.append({"jump_T": h, "median": float(max(rel.median(), nrm.median())),
                         "p90_norm": float(nrm.quantile(0.9)), "from_start": max(start.values())})
    line = (f"steps={res.steps} {elapsed:.0f}s {elapsed / res.steps * 1e3:.1f}ms/step  "
            + " ".join(f"{r['median']:.1e}(p90 {r['p90_norm']:.1e})" for r in rows)
            + "  (0.01 / 0.1 / 0.46 / 1 T); from the initial states: "
            + " ".join(f"{r['from_start']:.1e}" for r in rows) + "  "
            + " ".join(sys.argv[1:] if argv is None else argv))
    print(line, flush=True)
    if a.log:
        with open(a.log, "a") as f:
            f.write(json.dumps({"args": vars(a), "seconds_per_step": elapsed / res.steps,
                                "errors": rows}) + "\n")


if __name__ == "__main__":
    main()
