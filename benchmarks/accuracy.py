"""Accuracy of single jumps vs jump size, per objective, on held-out states and parameters.

Trains one flow map per (system, objective) within a wall-clock budget and measures the median
relative and normalised error of single jumps from 1 % of the system's timescale up to one
timescale, on held-out initial states *and* parameters drawn from the training prior. Jumps
start uniformly along the held-out trajectories (the table's figure); the same jumps started from
the held-out initial states themselves, where transients are, are reported beside them
(``errors_from_start``).

    python benchmarks/accuracy.py --minutes 10                 # the full benchmark (hours)
    python benchmarks/accuracy.py --systems lotka_volterra --objectives pairs --minutes 2
    # two single-threaded runs side by side on a 2-core machine, then one table and figure:
    python benchmarks/accuracy.py --systems sir pendulum --threads 1 --out /tmp/a1 &
    python benchmarks/accuracy.py --systems van_der_pol --threads 1 --out /tmp/a2 &
    wait; python benchmarks/accuracy.py --merge /tmp/a1.json /tmp/a2.json

Writes ``benchmarks/results/accuracy.json`` and ``accuracy.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch

import flowsim
from flowsim.train import TrajectoryBank

DEFAULT_SYSTEMS = ["lotka_volterra", "fitzhugh_nagumo", "van_der_pol", "pendulum", "sir"]
DEFAULT_OBJECTIVES = ["pairs", "physics", "both", "lsd"]


def make_bank(system, n, horizon, n_times, seed, prior_scale):
    g = torch.Generator().manual_seed(seed)
    x0 = system.sample_initial(n, g)
    p = system.sample_params(n, g)
    d = system.default_params(n)
    p = d + prior_scale * (p - d)
    t = torch.linspace(0, horizon, n_times, dtype=torch.float64)
    sol = flowsim.reference_solve(system, x0, t, p, rtol=1e-10, atol=1e-12, chunk_size=2048)
    return TrajectoryBank.from_solution(sol), sol.wall_time


@torch.no_grad()
def error_vs_jump(fm, bank, jumps, n=2000, seed=7, from_start=False):
    from flowsim.train.validation import jump_errors

    out = jump_errors(fm, bank, jumps, n=n, seed=seed, from_start=from_start)
    return [{"jump": h, "rel": out[f"rel@{h:.4g}"], "norm": out[f"norm@{h:.4g}"]} for h in jumps]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=DEFAULT_SYSTEMS)
    ap.add_argument("--objectives", nargs="+", default=DEFAULT_OBJECTIVES)
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per run")
    ap.add_argument("--steps", type=int, default=None, help="fixed step count instead of a budget")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--backbone", default="mlp")
    ap.add_argument("--activation", default="gelu")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--jump-weight", type=float, default=0.0, help="0: uniform (default)")
    ap.add_argument("--log-fraction", type=float, default=0.2)
    ap.add_argument("--early-fraction", type=float, default=0.25, help="fit(early_fraction=…)")
    ap.add_argument("--loss", default="norm", choices=["norm", "squared"],
                    help="PairRegression(loss=…) for the data term")
    ap.add_argument("--jump-margin", type=float, default=0.1, help="fit(jump_margin=…)")
    ap.add_argument("--tangent", action="store_true", help="build b into the map")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--prior-scale", type=float, default=1.0,
                    help="shrink the parameter prior around the defaults (1 = full prior)")
    ap.add_argument("--max-jump-T", type=float, default=1.0)
    ap.add_argument("--optimizer", default="auto", choices=["auto", "adamw", "muon"],
                    help="fit(optimizer=…)")
    ap.add_argument("--members", type=int, default=1,
                    help="train an ensemble of this many maps side by side (fit_ensemble), one "
                         "process each with an equal share of the CPU threads; 1: one map")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/accuracy")
    ap.add_argument("--save-models", default=None,
                    help="folder to save each trained map in (<system>-<objective>/)")
    ap.add_argument("--merge", nargs="+", default=None,
                    help="combine these result JSON files into --out (table and figure); trains nothing")
    args = ap.parse_args(argv)
    if args.merge:
        return merge(args.merge, Path(args.out))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    results = []
    for name in args.systems:
        system = flowsim.get_system(name)
        T = system.timescale
        horizon = (args.max_jump_T * (1 + args.jump_margin) + 1.0) * T
        # training trajectories reach past the longest jump by the margin; both grids step T/200
        n_times = round(horizon / T * 200) + 1
        bank, gen_time = make_bank(system, args.n_train, horizon, n_times, 1, args.prior_scale)
        test_horizon = (args.max_jump_T + 1.0) * T
        test, _ = make_bank(system, args.n_test, test_horizon, round(test_horizon / T * 200) + 1, 2,
                            args.prior_scale)
        jumps = [T * v for v in torch.logspace(-2, math.log10(args.max_jump_T), 7).tolist()]
        for objective in args.objectives:
            def make_fm(system=system):
                return flowsim.FlowMap(system, width=args.width, depth=args.depth,
                                       backbone=args.backbone, activation=args.activation,
                                       tangent=args.tangent)
            budget = None if args.steps else 60 * args.minutes
            steps = args.steps or 10**9
            fm = make_fm()
            objs = flowsim.train.make_objectives(objective)
            for o in objs:
                if isinstance(o, flowsim.train.PairRegression):
                    o.jump_weight = args.jump_weight if args.jump_weight > 0 else None
                    o.loss = args.loss
            fit_kw = dict(steps=steps, batch_size=args.batch, lr=args.lr, progress=False,
                          device=device, validation=test, max_jump=args.max_jump_T * T,
                          log_fraction=args.log_fraction, time_budget=budget,
                          early_fraction=args.early_fraction, jump_margin=args.jump_margin,
                          optimizer=args.optimizer, val_every=10**9)
            data = bank if objective != "physics" else None
            t0 = time.perf_counter()
            if args.members > 1:
                res = flowsim.fit_ensemble(fm, objs, data, members=args.members, **fit_kw)
                train_time = time.perf_counter() - t0
                member_steps = [r.steps for r in res.members]
                steps = min(member_steps)
                fm = res.ensemble
            else:
                res = flowsim.fit(fm, objs, data, **fit_kw)
                train_time = time.perf_counter() - t0
                steps, member_steps = res.steps, None
                fm = res.flowmap
            if args.save_models:
                flowsim.save(fm, Path(args.save_models) / f"{name}-{objective}",
                             training={"train_seconds": train_time, "steps": steps})
            errs = error_vs_jump(fm, test, jumps)
            worst = max(max(e["rel"], e["norm"]) for e in errs)
            # the same jumps from the held-out initial states themselves (the transients)
            errs0 = error_vs_jump(fm, test, jumps, from_start=True)
            worst0 = max(max(e["rel"], e["norm"]) for e in errs0)
            if member_steps:  # each member alone, for comparison with the ensemble
                row_members = []
                for r in res.members:
                    e = error_vs_jump(r.flowmap, test, jumps)
                    e0 = error_vs_jump(r.flowmap, test, jumps, from_start=True)
                    row_members.append(dict(
                        steps=r.steps, errors=e, worst_median_error=max(
                            max(v["rel"], v["norm"]) for v in e),
                        worst_median_error_from_start=max(max(v["rel"], v["norm"]) for v in e0)))
            row = dict(system=name, objective=objective, steps=steps, train_seconds=train_time,
                       members=args.members,
                       **({"member_runs": row_members} if member_steps else {}),
                       seconds_per_step=train_time / steps, data_seconds=gen_time, errors=errs,
                       worst_median_error=worst, target_met=worst <= 1e-3,
                       errors_from_start=errs0, worst_median_error_from_start=worst0)
            results.append(row)
            print(f"{name:18s} {objective:10s} steps={steps:6d} train={train_time:6.0f}s "
                  + " ".join(f"{e['jump'] / T:.2g}T:{e['rel']:.1e}/{e['norm']:.1e}" for e in errs)
                  + f"  from the initial states: worst {worst0:.1e}"
                  + ("  members alone: worst " + " ".join(
                      f"{m['worst_median_error']:.1e}" for m in row_members)
                     if member_steps else ""), flush=True)
    meta = dict(machine=platform.processor() or platform.machine(), device=str(device),
                torch=torch.__version__, threads=torch.get_num_threads(), args=vars(args),
                cuda=torch.cuda.get_device_name() if device.type == "cuda" else None,
                cpus=os.cpu_count(), loadavg_end=os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    plot(results, out.with_suffix(".png"))


def merge(files, out):
    """Combine the results of several runs (e.g. run side by side) into one JSON and figure."""
    parts = [json.loads(Path(f).read_text()) for f in files]
    results = [r for part in parts for r in part["results"]]
    meta = {"merged_from": [str(f) for f in files], "runs": [part["meta"] for part in parts]}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    plot(results, out.with_suffix(".png"))
    for r in results:
        start = r.get("worst_median_error_from_start")
        print(f"{r['system']:18s} {r['objective']:10s} steps={r['steps']:6d} "
              f"worst={r['worst_median_error']:.1e}"
              + (f" from the initial states: {start:.1e}" if start is not None else ""))


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted({r["system"] for r in results}, key=[r["system"] for r in results].index)
    fig, axes = plt.subplots(1, len(systems), figsize=(4.2 * len(systems), 3.6), squeeze=False)
    for ax, name in zip(axes[0], systems):
        T = flowsim.get_system(name).timescale
        for r in [r for r in results if r["system"] == name]:
            h = [e["jump"] / T for e in r["errors"]]
            ax.loglog(h, [e["rel"] for e in r["errors"]], "o-", label=f"{r['objective']} (rel)")
            ax.loglog(h, [e["norm"] for e in r["errors"]], "x--", alpha=0.6,
                      label=f"{r['objective']} (norm)")
            if "errors_from_start" in r:
                ax.loglog(h, [max(e["rel"], e["norm"]) for e in r["errors_from_start"]], "s:",
                          alpha=0.6, label=f"{r['objective']} (from the initial states)")
        ax.axhline(1e-3, color="k", lw=0.8, ls=":", label="target 1e-3")
        ax.set_title(name)
        ax.set_xlabel("jump size / timescale")
        ax.set_ylabel("median error of one jump")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
