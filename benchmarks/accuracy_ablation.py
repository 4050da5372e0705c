"""Ablations of the pair-regression recipe on one system at a fixed step count.

Produces the rows of the "what the accuracy came from" table in docs/benchmarks.md: trains one
flow map with the given settings, prints the median single-jump error (worst of relative and
normalised) at 0.01, 0.1, 0.3, 0.46, 0.85 and 1 timescale on held-out *and* training
trajectories (equal
values mean the map is optimisation-limited, not data-limited) and the time per step, and
appends the line to ``--log``. ``--lbfgs N`` adds N L-BFGS iterations on fixed pairs after Adam.

    python benchmarks/accuracy_ablation.py --lr 2e-3 --jw 0.3 --logf 0.5          # the old recipe
    python benchmarks/accuracy_ablation.py --lr 4e-3 --jw 0 --logf 0.3
    python benchmarks/accuracy_ablation.py --lr 4e-3 --jw 0 --logf 0.2 --steps 24000
    python benchmarks/accuracy_ablation.py --width 256 --steps 4000                # cost per step
    python benchmarks/accuracy_ablation.py --lbfgs 100                             # L-BFGS polish
    python benchmarks/accuracy_ablation.py --threads 2 --steps 1500                # ms/step, 2 threads
    # the pair loss and the jump margin (the current defaults: --loss norm --margin 0.1)
    python benchmarks/accuracy_ablation.py --lr 5e-3 --jw 0 --logf 0.2 --steps 16000 --loss squared
    python benchmarks/accuracy_ablation.py --lr 5e-3 --jw 0 --logf 0.2 --steps 16000 --loss norm
    python benchmarks/accuracy_ablation.py --lr 5e-3 --jw 0 --logf 0.2 --steps 16000 --loss norm --margin 0.1
    (and the same with --system van_der_pol / pendulum / fitzhugh_nagumo)
    python benchmarks/accuracy_ablation.py --lr 5e-3 --jw 0 --logf 0.2 --steps 16000 --loss squared \
        --activation silu
    # the optimiser (this script defaults to adamw, as the rows above were measured; fit's
    # default is Muon where torch has it)
    python benchmarks/accuracy_ablation.py --system fitzhugh_nagumo --lr 5e-3 --jw 0 --logf 0.2 \
        --loss norm --margin 0.1 --steps 16000 --optimizer muon        # and --optimizer adamw
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import flowsim
from flowsim.train.bank import PairBatch
from flowsim.train.validation import jump_errors

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import make_bank  # noqa: E402


def worst(errs: dict, jumps: list[float]) -> list[float]:
    return [max(errs[f"rel@{h:.4g}"], errs[f"norm@{h:.4g}"]) for h in jumps]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default="lotka_volterra")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--backbone", default="mlp")
    ap.add_argument("--activation", default="gelu")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--jw", type=float, default=0.3, help="PairRegression jump_weight (0: uniform)")
    ap.add_argument("--logf", type=float, default=0.5, help="fit(log_fraction=…)")
    ap.add_argument("--loss", default="squared", choices=["norm", "squared"],
                    help="PairRegression(loss=…) (the library's default is 'norm')")
    ap.add_argument("--margin", type=float, default=0.0, help="fit(jump_margin=…) (default 0.1)")
    ap.add_argument("--max-jump-T", type=float, default=1.0)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--optimizer", default="adamw", choices=["auto", "adamw", "muon"],
                    help="fit(optimizer=…); the rows in docs/benchmarks.md before Muon used adamw")
    ap.add_argument("--lbfgs", type=int, default=0, help="L-BFGS iterations after Adam")
    ap.add_argument("--lbfgs-pairs", type=int, default=65536)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--log", default=None, help="append the result line to this file")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    system = flowsim.get_system(a.system)
    T = system.timescale
    horizon = (a.max_jump_T * (1 + a.margin) + 1) * T  # same T/200 grid step as the test data
    bank, _ = make_bank(system, a.n_train, horizon, round(horizon / T * 200) + 1, 1, 1.0)
    test, _ = make_bank(system, 500, 2 * T, 401, 2, 1.0)
    fm = flowsim.FlowMap(system, width=a.width, depth=a.depth, backbone=a.backbone,
                         activation=a.activation)
    objs = flowsim.train.make_objectives("pairs")
    objs[0].jump_weight = a.jw if a.jw > 0 else None
    objs[0].loss = a.loss
    t0 = time.perf_counter()
    res = flowsim.fit(fm, objs, bank, steps=a.steps, batch_size=a.batch, lr=a.lr, progress=False,
                      validation=test, max_jump=a.max_jump_T * T, log_fraction=a.logf, val_every=10**9,
                      jump_margin=a.margin, optimizer=a.optimizer)
    train_s = time.perf_counter() - t0
    fm = res.flowmap
    if a.lbfgs:
        g = torch.Generator().manual_seed(5)
        b = bank.sample_pairs(a.lbfgs_pairs, g, max_gap=a.max_jump_T * T, log_fraction=a.logf)
        pairs = PairBatch(*[v.to(fm.dtype) for v in (b.s, b.t, b.x_s, b.x_t, b.p)])
        opt = torch.optim.LBFGS(fm.parameters(), lr=1.0, max_iter=a.lbfgs, history_size=50,
                                line_search_fn="strong_wolfe", tolerance_grad=0, tolerance_change=0)
        fm.train()

        def closure():
            opt.zero_grad()
            loss = objs[0](fm, pairs)
            loss.backward()
            return loss

        opt.step(closure)
        fm.eval()
    jumps = [T * v for v in (0.01, 0.1, 0.3, 0.46, 0.85, 1.0)]
    te = worst(jump_errors(fm, test, jumps, n=2000, seed=7), jumps)
    tr = worst(jump_errors(fm, bank, jumps, n=2000, seed=7), jumps)
    line = (f"{train_s:5.0f}s {train_s / a.steps * 1e3:5.1f} ms/step  held-out "
            + " ".join(f"{e:.1e}" for e in te)
            + "  | training " + " ".join(f"{e:.1e}" for e in tr)
            + "  (0.01 / 0.1 / 0.3 / 0.46 / 0.85 / 1 T)  "
            + " ".join(sys.argv[1:] if argv is None else argv))
    print(line, flush=True)
    if a.log:
        with open(a.log, "a") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
