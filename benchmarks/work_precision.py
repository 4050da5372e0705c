"""Work-precision: how much faster than a solver is a flow map, at matched error?

For each system: 10,000 held-out states, a horizon of one timescale, the flow map at N jumps
against torchdiffeq dopri5 / bosh3 (tolerance sweep), rk4 (step sweep), scipy LSODA (and Radau
and BDF for a stiff system; each stacked over the whole batch with a block-diagonal Jacobian;
and torchdiffeq's implicit option, fixed-step implicit_adams, for a stiff one),
torchode where installed — all in this process. Reports the speed-up at matched median error over
each solver and over the fastest solver that reaches the map's error, and the training cost with
its break-even number of trajectories.

    # maps saved by the accuracy benchmark (accuracy.py --objectives pairs --save-models MODELS)
    python benchmarks/work_precision.py --systems fitzhugh_nagumo lotka_volterra sir \
        --models MODELS --max-seconds 60 --threads 2
    # an ensemble saved by accuracy.py --members 2 --save-models is timed as it is used (every
    # jump evaluates both members)
    python benchmarks/work_precision.py ... --models MODELS_ENSEMBLE --tag members2
    python benchmarks/work_precision.py --train-minutes 5         # train what is missing
    python benchmarks/work_precision.py --smoke --results-dir /tmp/bench-smoke   # seconds
    # a stiff relaxation oscillator (Van der Pol at mu = 1000; map from accuracy.py
    # --system-params mu=1000): scipy one trajectory at a time on 200 states, scaled to the 10^4,
    # and a reference by LSODA (rtol 1e-10) over Dask workers; explicit torch solvers capped at
    # 2,000 steps (they need ~10^6 here) and not bisected
    python benchmarks/work_precision.py --systems van_der_pol --system-params mu=1000 \
        --models MODELS --scipy-per-trajectory 50 --reference-store /tmp/wp-ref --repeats 1 \
        --max-steps 2000 --max-failed-solves 0 --threads 2 --tag vdp1000

Writes ``benchmarks/results/work_precision/<date>-<commit>[-<tag>].json`` and ``.png`` and
replaces ``latest[-<tag>].json`` / ``.png`` there (``benchmarks/_record.py``).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

import flowsim
from flowsim import analysis as an

sys.path.insert(0, str(Path(__file__).parent))
import _record  # noqa: E402

SYSTEMS = ["fitzhugh_nagumo", "lotka_volterra", "sir", "robertson"]


def get_system(name, args):
    """The catalogue system ``name`` with ``--system-params`` applied."""
    return flowsim.get_system(name, **{k: float(v) for k, _, v in
                                       (item.partition("=") for item in args.system_params)})


def reference_states(sys_, x0, p, horizon, store):
    """Final states after ``horizon`` by scipy LSODA (rtol 1e-10, atol 1e-12), one trajectory at a
    time over a Dask cluster of one worker per core, kept in the zarr ``store`` for reruns."""
    opts = flowsim.SolverOptions(backend="scipy", method="LSODA", rtol=1e-10, atol=1e-12, max_steps=10**6)
    t = torch.tensor([0.0, horizon], dtype=torch.float64)
    ds = flowsim.data.simulate_ensemble(sys_, x0.shape[0], t, params=p, x0=x0, store=store, solver=opts,
                                        chunk_size=8, progress=False)
    return torch.tensor(ds["x"].values)[:, -1]


def get_model(name, args):
    path = Path(args.models) / f"{name}-pairs" if args.models else None
    if path is not None and any((path / f).exists() for f in ("config.json", "ensemble.json")):
        fm = flowsim.load(path)
        return fm, float(fm.training_record.get("train_seconds", float("nan")))
    sys_ = get_system(name, args)
    T = sys_.timescale
    t = torch.linspace(0, 2 * T, 401, dtype=torch.float64)
    if sys_.stiff:  # dense early output: Robertson's fast transient
        t = torch.cat([torch.zeros(1, dtype=torch.float64),
                       torch.logspace(-4, math.log10(2 * T), 400, dtype=torch.float64)])
    g = torch.Generator().manual_seed(1)
    n = args.n_train_stiff if sys_.stiff else args.n_train
    x0, p = sys_.sample_initial(n, g), sys_.sample_params(n, g)
    kw = dict(backend="scipy", method="Radau", rtol=1e-8, atol=1e-12, stacked=True, chunk_size=256) \
        if sys_.stiff else dict(rtol=1e-10, atol=1e-12)
    t0 = time.perf_counter()
    sol = flowsim.reference_solve(sys_, x0, t, p, **kw)
    print(f"{name}: {n} training trajectories in {time.perf_counter() - t0:.0f}s", flush=True)
    fm = flowsim.FlowMap(sys_, width=args.width, depth=args.depth)
    t0 = time.perf_counter()
    res = flowsim.fit(fm, "pairs", sol, steps=args.train_steps or 10**9, batch_size=512, lr=5e-3,
                      progress=False, log_fraction=0.2, max_jump=T, val_every=10**9,
                      time_budget=None if args.train_steps else 60 * args.train_minutes)
    train_s = time.perf_counter() - t0
    print(f"{name}: trained {res.steps} steps in {train_s:.0f}s; validation {res.metrics}", flush=True)
    if args.models:
        flowsim.save(fm, Path(args.models) / f"{name}-pairs",
                     training={"train_seconds": train_s, "steps": res.steps})
    return res.flowmap, train_s


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", nargs="+", default=SYSTEMS)
    ap.add_argument("--models", default=None)
    ap.add_argument("--train-minutes", type=float, default=5.0)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-train-stiff", type=int, default=4000)
    ap.add_argument("--n", type=int, default=10_000, help="evaluation states")
    ap.add_argument("--n-reference", type=int, default=2000)
    ap.add_argument("--max-steps", type=int, default=20_000, help="step limit of the adaptive solvers")
    ap.add_argument("--solvers", nargs="+", default=None, choices=an.SOLVERS,
                    help="the solvers to race (default: by stiffness, see the code)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per setting (the minimum counts)")
    ap.add_argument("--max-failed-solves", type=int, default=64,
                    help="failed sub-solves a torch solver may spend isolating failing states")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="effort cap: a solver's sweep stops after a run longer than this")
    ap.add_argument("--train-only", action="store_true",
                    help="train (and save, with --models) the missing maps, then stop: time the solvers "
                         "later, on a quiet machine")
    ap.add_argument("--width", type=int, default=128, help="maps trained here")
    ap.add_argument("--depth", type=int, default=6, help="maps trained here")
    ap.add_argument("--train-steps", type=int, default=None,
                    help="train missing maps for this many steps instead of --train-minutes")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--system-params", nargs="+", default=[], metavar="NAME=VALUE",
                    help="parameter overrides of the systems (mu=1000: a stiff Van der Pol)")
    ap.add_argument("--scipy-per-trajectory", type=int, default=None, metavar="K",
                    help="scipy one trajectory at a time on the first K states, time scaled up "
                         "(Sweep(scipy_stacked=False, n_scipy=K)); default: stacked over the batch")
    ap.add_argument("--reference-store", default=None, metavar="DIR",
                    help="reference final states by LSODA over Dask workers, kept in zarr stores here")
    ap.add_argument("--smoke", action="store_true",
                    help="seconds: Lotka-Volterra, a tiny map trained 30 steps, 200 states, dopri5 and rk4")
    _record.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        if args.systems == SYSTEMS:
            args.systems = ["lotka_volterra"]
        args.n_train, args.train_steps, args.width, args.depth = 64, 30, 16, 2
        args.n, args.n_reference, args.max_seconds = 200, 100, 5.0
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, datasets = [], {}
    for name in args.systems:
        fm, train_s = get_model(name, args)
        if args.train_only:
            continue
        fm = fm.to(args.device)
        sys_ = fm.system
        g = torch.Generator().manual_seed(2024)
        x0 = sys_.sample_initial(args.n, g)
        lo, hi = fm.param_transform.low.double().cpu(), fm.param_transform.high.double().cpu()
        p = lo + (hi - lo) * torch.rand(args.n, sys_.n_params, generator=g, dtype=torch.float64)
        solvers = ("dopri5", "bosh3", "rk4", "scipy_lsoda", "torchode")
        if args.smoke:
            solvers = ("dopri5", "rk4")
        elif sys_.stiff:
            solvers = ("dopri5", "rk4", "implicit_adams", "scipy_lsoda", "scipy_radau", "scipy_bdf",
                       "torchode")
        solvers = tuple(args.solvers or solvers)
        n_ref = min(args.n_reference, 200 if sys_.stiff else args.n)
        reference = None
        if args.reference_store:
            key = f"{name}-{'_'.join(args.system_params) or 'defaults'}-{args.n}-{n_ref}.zarr"
            reference = reference_states(sys_, x0[:n_ref], p[:n_ref], sys_.timescale,
                                         str(Path(args.reference_store) / key))
        per_traj = {} if args.scipy_per_trajectory is None else dict(
            scipy_stacked=False, n_scipy=args.scipy_per_trajectory)
        t0 = time.perf_counter()
        ds = an.work_precision(fm, sys_, x0, p, horizon=sys_.timescale, solvers=solvers,
                               n_reference=n_ref, reference=reference, training_time=train_s,
                               device=args.device, max_steps=args.max_steps, max_seconds=args.max_seconds,
                               max_failed_solves=args.max_failed_solves, repeats=args.repeats, **per_traj)
        datasets[name] = ds
        row = dict(system=name, system_params=args.system_params, stiff=sys_.stiff, n_states=args.n,
                   horizon=sys_.timescale, scipy_note=ds.attrs.get("scipy_note"),
                   training_seconds=train_s, seconds=time.perf_counter() - t0,
                   skipped=ds.attrs.get("skipped_solvers"))
        have = [str(m) for m in ds["method"].values]
        others = [m for m in dict.fromkeys(have) if m != "flowmap"]
        for solver in others:
            row[f"vs_{solver}"] = an.speedup_at_matched_error(ds, solver).to_dict()
            row[f"vs_{solver}_best_jump_count"] = an.speedup_at_matched_error(
                ds, solver, at="best_speedup").to_dict()
        # the stiff target: over the fastest solver that reaches the map's error without failing,
        # at the map's best error and at its best-paying jump count
        for suffix in ("", "_best_jump_count"):
            matched = [row[f"vs_{m}{suffix}"] for m in others if row[f"vs_{m}{suffix}"]["matched"]]
            row[f"vs_fastest_solver{suffix}"] = (
                {**min(matched, key=lambda r: r["speedup"]),
                 "unmatched": [m for m in others if not row[f"vs_{m}{suffix}"]["matched"]]}
                if matched else {"speedup": None, "note": "no solver reached the map's error in its sweep"})
        # the headline: over the faster of torchdiffeq and torchode, at matched error
        torch_solvers = [k for k in ("dopri5", "torchode") if k in have]
        for key, suffix in (("headline", ""), ("headline_best_jump_count", "_best_jump_count")):
            cands = [row[f"vs_{k}{suffix}"] for k in torch_solvers if row[f"vs_{k}{suffix}"]["matched"]]
            if not torch_solvers:  # --solvers left them out
                row[key] = {"speedup_over_faster_torch_solver": None, "note": "no torch solver raced"}
            elif len(cands) == len(torch_solvers):
                worst = min(cands, key=lambda r: r["speedup"])
                row[key] = {"speedup_over_faster_torch_solver": worst["speedup"],
                            "solver": worst["solver"], "flowmap_error": worst["flowmap_error"],
                            "flowmap_n_jumps": worst["flowmap_n_jumps"]}
            else:
                row[key] = {"speedup_over_faster_torch_solver": None, "note": "a torch solver never "
                            "reached the flow map's error in its sweep: " + "; ".join(
                                row[f"vs_{k}{suffix}"]["note"] for k in torch_solvers)}
        row["truncated_sweeps"] = ds.attrs.get("truncated_sweeps")
        row["settings"] = [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in
             dict(method=str(ds["method"].values[i]), setting=str(ds["setting_name"].values[i]),
                  value=float(ds["setting_value"].values[i]),
                  wall_time=float(ds["wall_time"].values[i]), nfe=float(ds["nfe"].values[i]),
                  median_relative_error=float(ds["median_relative_error"].values[i]),
                  median_normalised_error=float(ds["median_normalised_error"].values[i]),
                  n_failed=int(ds["n_failed"].values[i])).items()}
            for i in range(ds.sizes["setting"])
        ]
        rows.append(row)
        for key in ("headline", "headline_best_jump_count"):
            hd = row[key]
            if hd.get("speedup_over_faster_torch_solver") is None:
                print(f"{name} [{key}]: {hd['note']}", flush=True)
            else:
                print(f"{name} [{key}]: flow map error {hd['flowmap_error']:.2e} at "
                      f"{hd['flowmap_n_jumps']:g} jumps; {hd['speedup_over_faster_torch_solver']:.1f}x "
                      f"over the faster torch solver "
                      f"({hd['solver']})", flush=True)
        for suffix in ("", "_best_jump_count"):
            fastest = row[f"vs_fastest_solver{suffix}"]
            if fastest.get("speedup") is not None:
                print(f"{name} [fastest solver{suffix}]: {fastest['speedup']:.1f}x over {fastest['solver']} "
                      f"at the map's error {fastest['flowmap_error']:.2e} "
                      f"({fastest['flowmap_n_jumps']:g} jumps; no match: {fastest['unmatched']})", flush=True)
    if args.train_only:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 3.8), squeeze=False)
    for ax, (name, ds) in zip(axes[0], datasets.items()):
        an.plot_work_precision(ds, ax=ax)
        ax.set_title(name)
    fig.tight_layout()
    _record.record("work_precision", {"settings": {k: v for k, v in vars(args).items()
                                                   if k not in ("tag", "results_dir")},
                                      "systems": rows},
                   tag=args.tag, figure=fig, results_dir=args.results_dir)


if __name__ == "__main__":
    main()
