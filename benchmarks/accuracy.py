"""How accurate is one jump of a trained flow map, and what in the recipe makes it so?

Trains one flow map per (system, objective) within a wall-clock budget (or for a fixed step
count) and measures the median relative and normalised error of single jumps from 1 % of the
system's timescale T up to one T, on held-out initial states *and* parameters drawn from the
training prior. Jumps start uniformly along the held-out trajectories (``errors``); the same
jumps started from the held-out initial states themselves, where transients are, are reported
beside them (``errors_from_start``).

``--ablate OPTION VALUE [VALUE ...]`` repeats the run once per value of one recipe option (any
option below: ``depth``, ``width``, ``early-fraction``, ``initial-fraction``, ``ns-dtype``, ``ns-steps``,
``muon-layers``, ``optimizer``, ``lr``, ``batch``, ``loss``, ``jump-margin``, ``log-fraction``,
``jump-weight``, ``activation``, ``backbone``, ``lbfgs`` …), usually at a fixed ``--steps``, and
adds to each row the same errors on the *training* trajectories (equal values: the map is limited
by optimisation, not data) and the 90th percentile of the normalised error. ``--objectives``
compares training objectives the same way.

    # the accuracy table of docs/benchmarks.md: each system alone, 2 threads, 10 minutes
    for s in lotka_volterra van_der_pol pendulum fitzhugh_nagumo sir; do
      python benchmarks/accuracy.py --systems $s --objectives pairs --threads 2 --part /tmp/acc_$s.json
    done
    python benchmarks/accuracy.py --merge /tmp/acc_*.json
    # two maps side by side, averaged (flowsim.fit_ensemble)
    python benchmarks/accuracy.py --systems fitzhugh_nagumo --objectives pairs --members 2 --tag members2
    # objectives compared
    python benchmarks/accuracy.py --systems lotka_volterra fitzhugh_nagumo \
        --objectives pairs physics both lsd --minutes 1.5 --n-train 2000 --tag objectives
    # ablations at equal steps (one single-threaded run per value)
    python benchmarks/accuracy.py --systems fitzhugh_nagumo --objectives pairs --steps 16000 \
        --threads 1 --ablate depth 4 6 8
    python benchmarks/accuracy.py ... --ablate early-fraction 0 0.1 0.25 0.5
    python benchmarks/accuracy.py ... --ablate ns-dtype float32 bfloat16
    python benchmarks/accuracy.py ... --ablate muon-layers hidden input+hidden all
    python benchmarks/accuracy.py ... --ablate optimizer adamw muon
    python benchmarks/accuracy.py ... --ablate lbfgs 0 100          # L-BFGS polish after training
    # a smoke run (seconds), recorded outside the repository
    python benchmarks/accuracy.py --smoke --results-dir /tmp/bench-smoke

Writes ``benchmarks/results/accuracy/<date>-<commit>[-<tag>].json`` and ``.png`` (see
``benchmarks/_record.py``) and replaces ``latest[-<tag>].json`` / ``.png`` there; an ablation's
tag defaults to ``ablate-<option>`` (also when merging its parts). ``--part FILE`` writes one part
of a run split over several processes instead, and ``--merge FILE …`` records the parts as one
result.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path

import torch

import flowsim
from flowsim.maps.networks import BACKBONES
from flowsim.train import FitConfig, TrajectoryBank, optim
from flowsim.train.validation import jump_errors

sys.path.insert(0, str(Path(__file__).parent))
import _record  # noqa: E402

DEFAULT_SYSTEMS = ["lotka_volterra", "fitzhugh_nagumo", "van_der_pol", "pendulum", "sir"]
DEFAULT_OBJECTIVES = ["pairs", "physics", "both", "lsd"]
MUON_LAYERS = ["input+hidden", "hidden", "all"]
NS_DTYPES = ["auto", "float32", "bfloat16"]
NOT_ABLATABLE = {"systems", "objectives", "ablate", "part", "merge", "tag", "results_dir",
                 "system_params", "data_store",
                 "save_models", "smoke", "device", "threads", "tangent", "members", "minutes",
                 "steps"}


def make_bank(system, n, horizon, n_times, seed, prior_scale=1.0, store=None):
    """``n`` reference trajectories over ``[0, horizon]`` (dopri5 at 1e-10 / 1e-12; stiff systems:
    scipy Radau at 1e-10 / 1e-14, stacked in chunks of 128), parameters
    drawn from the prior shrunk by ``prior_scale`` around the defaults; returns the bank and the
    solve's wall time. With ``store`` (a zarr path) the trajectories are solved one by one by
    scipy LSODA (rtol 1e-8) over a Dask cluster of one worker per core into that store, and a
    store already complete is reused: for stiff systems whose fast events come at different
    times in different trajectories (a stacked solve would step through all of them)."""
    g = torch.Generator().manual_seed(seed)
    x0 = system.sample_initial(n, g)
    p = system.sample_params(n, g)
    d = system.default_params(n)
    p = d + prior_scale * (p - d)
    t = torch.linspace(0, horizon, n_times, dtype=torch.float64)
    if store is not None:
        opts = flowsim.SolverOptions(backend="scipy", method="LSODA", rtol=1e-8, atol=1e-12,
                                     max_steps=10**6)
        stats = {}
        ds = flowsim.data.simulate_ensemble(system, n, t, params=p, x0=x0, store=store, solver=opts,
                                            chunk_size=16, progress=False, stats=stats)
        return TrajectoryBank.from_dataset(ds), stats.get("wall_s", 0.0)
    if system.stiff:  # scipy Radau over stacked chunks of the batch (sparse block Jacobian)
        opts = flowsim.SolverOptions(backend="scipy", method="Radau", rtol=1e-10, atol=1e-14, stacked=True)
        sol = flowsim.reference_solve(system, x0, t, p, opts, chunk_size=128)
    else:
        sol = flowsim.reference_solve(system, x0, t, p, rtol=1e-10, atol=1e-12, chunk_size=2048)
    return TrajectoryBank.from_solution(sol), sol.wall_time


@torch.no_grad()
def error_vs_jump(fm, bank, jumps, n=2000, seed=7, from_start=False):
    out = jump_errors(fm, bank, jumps, n=n, seed=seed, from_start=from_start)
    return [{"jump": h, "rel": out[f"rel@{h:.4g}"], "norm": out[f"norm@{h:.4g}"]} for h in jumps]


@torch.no_grad()
def p90_normalised(fm, bank, jumps, n=4000, seed=7):
    """90th percentile of the normalised error of ``n`` jumps of each size along ``bank``."""
    g = torch.Generator().manual_seed(seed)
    sigma = bank.x.reshape(-1, bank.x.shape[-1]).std(0).clamp_min(1e-12)
    out = []
    for h in jumps:
        b = bank.sample_pairs(n, g, min_gap=h, max_gap=h)
        dev, dt = fm.device, fm.dtype
        pred = fm(b.s.to(dev, dt), b.t.to(dev, dt), b.x_s.to(dev, dt), b.p.to(dev, dt))
        err = (pred.double().cpu() - b.x_t) / sigma
        out.append(float((err.norm(dim=-1) / math.sqrt(err.shape[-1])).quantile(0.9)))
    return out


def worst(errs):
    return max(max(e["rel"], e["norm"]) for e in errs)


@contextlib.contextmanager
def muon_settings(layers: str, ns_dtype: str, ns_steps: int):
    """Which matrices Muon trains and how its Newton–Schulz iterations run, for this block."""
    saved = optim.muon_matrices, optim.BatchedMuon
    if layers == "hidden":  # neither the input layer nor the head (flowsim before Muon on the input)
        optim.muon_matrices = lambda fm: [p for p in fm.net.parameters() if p.ndim == 2][1:-1]
    elif layers == "all":  # the head too
        optim.muon_matrices = lambda fm: [p for p in fm.net.parameters() if p.ndim == 2]
    if ns_dtype != "auto" or ns_steps != 5:
        base, dtype = saved[1], None if ns_dtype == "auto" else getattr(torch, ns_dtype)

        class _Muon(base):
            def __init__(self, params, **kw):
                super().__init__(params, ns_steps=ns_steps, ns_dtype=dtype, **kw)

        optim.BatchedMuon = _Muon
    try:
        yield
    finally:
        optim.muon_matrices, optim.BatchedMuon = saved


def lbfgs_polish(fm, objective, bank, a, max_jump):
    """``a.lbfgs`` L-BFGS iterations on ``a.lbfgs_pairs`` fixed pairs after training."""
    g = torch.Generator().manual_seed(5)
    b = bank.sample_pairs(a.lbfgs_pairs, g, max_gap=max_jump, log_fraction=a.log_fraction)
    pairs = type(b)(*[v.to(fm.device, fm.dtype) for v in (b.s, b.t, b.x_s, b.x_t, b.p)])
    opt = torch.optim.LBFGS(fm.parameters(), lr=1.0, max_iter=a.lbfgs, history_size=50,
                            line_search_fn="strong_wolfe", tolerance_grad=0, tolerance_change=0)
    fm.train()

    def closure():
        opt.zero_grad()
        loss = objective(fm, pairs)
        loss.backward()
        return loss

    opt.step(closure)
    fm.eval()


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", nargs="+", default=DEFAULT_SYSTEMS)
    ap.add_argument("--objectives", nargs="+", default=DEFAULT_OBJECTIVES)
    ap.add_argument("--minutes", type=float, default=10.0, help="training budget per run")
    ap.add_argument("--steps", type=int, default=None, help="fixed step count instead of a budget")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--backbone", default=BACKBONES[0], choices=list(BACKBONES),
                    help="FlowMap(backbone=…); resnet is the library's default")
    ap.add_argument("--activation", default="gelu")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--jump-weight", type=float, default=0.0,
                    help="PairRegression(jump_weight=…); 0: every pair weighted equally")
    ap.add_argument("--log-fraction", type=float, default=0.2, help="fit(log_fraction=…)")
    ap.add_argument("--early-fraction", type=float, default=FitConfig().early_fraction,
                    help="fit(early_fraction=…)")
    ap.add_argument("--initial-fraction", type=float, default=FitConfig().initial_fraction,
                    help="fit(initial_fraction=…): starts exactly at the initial states")
    ap.add_argument("--ema-decay", type=float, default=FitConfig().ema_decay,
                    help="fit(ema_decay=…): the moving average of the weights evaluated")
    ap.add_argument("--loss", default="norm", choices=["norm", "squared"],
                    help="PairRegression(loss=…) for the data term")
    ap.add_argument("--jump-margin", type=float, default=0.1, help="fit(jump_margin=…)")
    ap.add_argument("--clip", type=float, default=FitConfig().clip,
                    help="fit(clip=…): the gradient-norm clip")
    ap.add_argument("--weight-decay", type=float, default=FitConfig().weight_decay,
                    help="fit(weight_decay=…)")
    ap.add_argument("--tangent", action="store_true", help="build b into the map")
    ap.add_argument("--decay", type=int, default=1, choices=[0, 1],
                    help="FlowMap(decay=…): 1 (the default) the start state fades at a learned "
                         "rate, 0 the plain map x + h·w (--tangent needs 0)")
    ap.add_argument("--relax", default="auto", choices=["auto", "on", "off"],
                    help="FlowMap(relax=…): the fading start relaxes towards a learned state; "
                         "auto (the default) on for systems marked stiff")
    ap.add_argument("--log-states", default="auto", choices=["auto", "off"],
                    help="FlowMap(log_states=…): 'auto' log-standardises positive states whose "
                         "initial box spans two decades, 'off' none")
    ap.add_argument("--jump-scales", type=int, default=0,
                    help="FlowMap(jump_scales=…): multi-scale decay features of the jump")
    ap.add_argument("--optimizer", default="auto", choices=list(optim.OPTIMIZERS),
                    help="fit(optimizer=…)")
    ap.add_argument("--muon-layers", default="input+hidden", choices=MUON_LAYERS,
                    help="the matrices Muon trains: the library's split (every backbone matrix "
                         "but the head's), the hidden ones only, or all")
    ap.add_argument("--ns-dtype", default="auto", choices=NS_DTYPES,
                    help="dtype of Muon's Newton–Schulz iterations (auto: the library's choice)")
    ap.add_argument("--ns-steps", type=int, default=5, help="Newton–Schulz iterations of Muon")
    ap.add_argument("--lbfgs", type=int, default=0, help="L-BFGS iterations after training")
    ap.add_argument("--lbfgs-pairs", type=int, default=65536)
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--prior-scale", type=float, default=1.0,
                    help="shrink the parameter prior around the defaults (1 = full prior)")
    ap.add_argument("--max-jump-T", type=float, default=1.0)
    ap.add_argument("--min-jump-T", type=float, default=None,
                    help="fit(min_jump=…) in timescales: the shortest gap trained (default 1/200)")
    ap.add_argument("--system-params", nargs="+", default=[], metavar="NAME=VALUE",
                    help="parameter overrides of the systems (e.g. mu=1000: a stiff Van der Pol)")
    ap.add_argument("--data-store", default=None, metavar="DIR",
                    help="solve the data per trajectory (scipy LSODA, Dask workers) into zarr "
                         "stores in DIR, reused when complete")
    ap.add_argument("--members", type=int, default=1,
                    help="train an ensemble of this many maps side by side (fit_ensemble), one "
                         "process each with an equal share of the CPU threads; 1: one map")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cuda-graph", action="store_true", help="fit(cuda_graph=True) (GPU)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--ablate", nargs="+", default=None, metavar=("OPTION", "VALUE"),
                    help="repeat the run for each VALUE of the recipe OPTION (e.g. depth 4 6 8)")
    ap.add_argument("--save-models", default=None,
                    help="folder to save each trained map in (<system>-<objective>/)")
    ap.add_argument("--part", default=None,
                    help="write this run's result to this file (for --merge) instead of recording it")
    ap.add_argument("--merge", nargs="+", default=None,
                    help="record the results of these --part files as one; trains nothing")
    ap.add_argument("--smoke", action="store_true",
                    help="a few seconds end to end: Lotka-Volterra, pairs, 30 steps, tiny data")
    _record.add_arguments(ap)
    return ap


def ablation_values(ap, args) -> tuple[str | None, list]:
    """The option an ablation varies and its values, converted like the option itself."""
    if not args.ablate:
        return None, [None]
    if len(args.ablate) < 2:
        ap.error("--ablate OPTION VALUE [VALUE ...]")
    option, raw = args.ablate[0].lstrip("-"), args.ablate[1:]
    dest = option.replace("-", "_")
    if dest in NOT_ABLATABLE or not hasattr(ap.parse_args([]), dest):
        ap.error(f"--ablate: {option!r} is not a recipe option")
    # each value parsed as the option itself would be (type and choices checked)
    values = [getattr(ap.parse_args([f"--{option}", v]), dest) for v in raw]
    return dest, values


def train_and_measure(args, name, objective, data, jumps, ablated) -> dict:
    system = get_system(name, args)
    T = system.timescale
    bank, test, gen_time = data
    fm = flowsim.FlowMap(system, width=args.width, depth=args.depth, backbone=args.backbone,
                         activation=args.activation, tangent=args.tangent,
                         decay=None if args.decay else False, jump_scales=args.jump_scales,
                         log_states="auto" if args.log_states == "auto" else False,
                         relax={"auto": None, "on": True, "off": False}[args.relax])
    objs = flowsim.train.make_objectives(objective)
    for o in objs:
        if isinstance(o, flowsim.train.PairRegression):
            o.jump_weight = args.jump_weight if args.jump_weight > 0 else None
            o.loss = args.loss
    fit_kw = dict(steps=args.steps or 10**9, batch_size=args.batch, lr=args.lr, progress=False,
                  device=torch.device(args.device), validation=test, max_jump=args.max_jump_T * T,
                  min_jump=None if args.min_jump_T is None else args.min_jump_T * T,
                  log_fraction=args.log_fraction,
                  time_budget=None if args.steps else 60 * args.minutes,
                  early_fraction=args.early_fraction, initial_fraction=args.initial_fraction,
                  jump_margin=args.jump_margin, ema_decay=args.ema_decay, clip=args.clip,
                  weight_decay=args.weight_decay,
                  optimizer=args.optimizer, val_every=10**9, cuda_graph=args.cuda_graph)
    train_data = bank if objective != "physics" else None
    t0 = time.perf_counter()
    with muon_settings(args.muon_layers, args.ns_dtype, args.ns_steps):
        if args.members > 1:
            res = flowsim.fit_ensemble(fm, objs, train_data, members=args.members, **fit_kw)
            steps, fm = min(r.steps for r in res.members), res.ensemble
        else:
            res = flowsim.fit(fm, objs, train_data, **fit_kw)
            steps, fm = res.steps, res.flowmap
    train_time = time.perf_counter() - t0
    if args.lbfgs and args.members == 1:
        lbfgs_polish(fm, objs[0], bank, args, args.max_jump_T * T)
    if args.save_models:
        flowsim.save(fm, Path(args.save_models) / f"{name}-{objective}",
                     training={"train_seconds": train_time, "steps": steps})
    errs = error_vs_jump(fm, test, jumps)
    errs0 = error_vs_jump(fm, test, jumps, from_start=True)
    row = dict(system=name, objective=objective, steps=steps, system_params=args.system_params,
               train_seconds=train_time,
               members=args.members, seconds_per_step=train_time / steps, data_seconds=gen_time,
               errors=errs, worst_median_error=worst(errs), target_met=worst(errs) <= 1e-3,
               errors_from_start=errs0, worst_median_error_from_start=worst(errs0))
    if args.members > 1:  # each member alone, for comparison with the ensemble
        row["member_runs"] = []
        for r in res.members:
            e = error_vs_jump(r.flowmap, test, jumps)
            e0 = error_vs_jump(r.flowmap, test, jumps, from_start=True)
            row["member_runs"].append(dict(steps=r.steps, errors=e, worst_median_error=worst(e),
                                           worst_median_error_from_start=worst(e0)))
    if ablated is not None:
        row["ablation"] = ablated
        row["errors_train"] = error_vs_jump(fm, bank, jumps)
        row["errors_train_from_start"] = error_vs_jump(fm, bank, jumps, from_start=True)
        row["p90_normalised_error"] = p90_normalised(fm, test, jumps)
    print(f"{name:16s} {objective:7s} " + (f"{ablated} " if ablated else "")
          + f"steps={steps:6d} train={train_time:5.0f}s "
          + " ".join(f"{e['jump'] / T:.2g}T:{e['rel']:.1e}/{e['norm']:.1e}" for e in errs)
          + f"  from the initial states: worst {worst(errs0):.1e}"
          + ("  members alone: worst " + " ".join(f"{m['worst_median_error']:.1e}"
                                                  for m in row["member_runs"])
             if args.members > 1 else ""), flush=True)
    return row


#: options that change the training or test data: an ablation of one of them makes new data
DATA_OPTIONS = {"n_train", "n_test", "prior_scale", "max_jump_T", "jump_margin"}


def make_data(system, args):
    """Training and held-out banks, the data's solve time and the jump sizes measured."""
    T = system.timescale
    # training trajectories reach past the longest jump by the margin; both grids step T/200
    horizon = (args.max_jump_T * (1 + args.jump_margin) + 1.0) * T
    per_T = 20 if args.smoke else 200
    stores = [None, None]
    if args.data_store:
        key = f"{system.name}-{system_params_label(args)}-p{args.prior_scale:g}-m{args.jump_margin:g}"
        stores = [str(Path(args.data_store) / f"{key}-{part}{n}.zarr")
                  for part, n in (("train", args.n_train), ("test", args.n_test))]
    bank, gen_time = make_bank(system, args.n_train, horizon, round(horizon / T * per_T) + 1, 1,
                               args.prior_scale, store=stores[0])
    test_horizon = (args.max_jump_T + 1.0) * T
    test, _ = make_bank(system, args.n_test, test_horizon, round(test_horizon / T * per_T) + 1, 2,
                        args.prior_scale, store=stores[1])
    jumps = [T * v for v in torch.logspace(-2, math.log10(args.max_jump_T), 7).tolist()]
    return bank, test, gen_time, jumps


def system_params_label(args) -> str:
    return "_".join(args.system_params) or "defaults"


def get_system(name, args):
    """The catalogue system ``name`` with ``--system-params`` applied."""
    overrides = {}
    for item in args.system_params:
        key, _, value = item.partition("=")
        overrides[key] = float(value)
    return flowsim.get_system(name, **overrides)


def run(ap, args) -> list[dict]:
    option, values = ablation_values(ap, args)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = []
    for name in args.systems:
        system = get_system(name, args)
        data = None
        for value in values:
            run_args = argparse.Namespace(**vars(args))
            if option is not None:
                setattr(run_args, option, value)
            if data is None or option in DATA_OPTIONS:  # the data follow an ablated data option
                data = make_data(system, run_args)
            bank, test, gen_time, jumps = data
            for objective in args.objectives:
                results.append(train_and_measure(run_args, name, objective, (bank, test, gen_time),
                                                 jumps, {option: value} if option else None))
    return results


def main(argv=None):
    ap = parser()
    args = ap.parse_args(argv)
    if args.smoke:
        if args.systems == DEFAULT_SYSTEMS:
            args.systems = ["lotka_volterra"]
        if args.objectives == DEFAULT_OBJECTIVES:
            args.objectives = ["pairs"]
        args.steps, args.n_train, args.n_test, args.width, args.depth = 30, 64, 16, 16, 2
    if args.merge:
        return merge(args)
    results = run(ap, args)
    tag = args.tag or (f"ablate-{args.ablate[0].lstrip('-').replace('_', '-')}" if args.ablate else None)
    if args.part:
        _record.write_json(Path(args.part), {**_record.provenance(), "results": results})
        print(f"wrote {args.part}")
        return
    _record.record("accuracy", results, tag=tag, figure=plot(results),
                   results_dir=args.results_dir)


def prototype_args(argv, tag: str) -> tuple[list[str], list[str]]:
    """Split a prototype's command line at ``--``: its own options, and the arguments for
    :func:`main`, recorded under ``tag`` unless they name a ``--tag`` or ``--part``
    (``hard_starts.py``, ``curriculum.py``).

    >>> prototype_args(["--fraction", "0.5", "--", "--steps", "10"], "ablate-x")
    (['--fraction', '0.5'], ['--steps', '10', '--tag', 'ablate-x'])
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    split = argv.index("--") if "--" in argv else len(argv)
    rest = argv[split + 1:]
    if "--tag" not in rest and "--part" not in rest:
        rest += ["--tag", tag]
    return argv[:split], rest


def merge(args):
    """Record the results of several ``--part`` runs (e.g. run side by side) as one."""
    parts = [json.loads(Path(f).read_text()) for f in args.merge]
    results = [r for part in parts for r in part["results"]]
    runs = [{k: part.get(k) for k in ("commit", "date", "machine", "command")} for part in parts]
    for r in results:
        start = r.get("worst_median_error_from_start")
        print(f"{r['system']:18s} {r['objective']:10s} steps={r['steps']:6d} "
              f"worst={r['worst_median_error']:.1e}"
              + (f" from the initial states: {start:.1e}" if start is not None else ""))
    ablated = {k for r in results for k in (r.get("ablation") or {})}
    tag = args.tag or (f"ablate-{ablated.pop().replace('_', '-')}" if len(ablated) == 1 else None)
    _record.record("accuracy", results, tag=tag, figure=plot(results),
                   results_dir=args.results_dir, extra={"parts": runs})


def plot(results):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = sorted({r["system"] for r in results}, key=[r["system"] for r in results].index)

    def label(r):
        return r["objective"] + "".join(f" {k}={v}" for k, v in (r.get("ablation") or {}).items()) \
            + "".join(f" {v}" for v in r.get("system_params") or [])

    # one colour per run (the same label in every panel), one line style per error
    runs = list(dict.fromkeys(label(r) for r in results))
    width = max(5.0, 4.2 * len(systems))
    ncol = max(1, int(width // 4.0))  # legend columns of about 4 inches
    entries = len(runs) + 4
    legend_h = 0.2 + 0.16 * -(-entries // ncol)  # inches for the legend below the plots
    fig, axes = plt.subplots(1, len(systems), figsize=(width, 3.6 + legend_h), squeeze=False)
    for ax, name in zip(axes[0], systems):
        for r in [r for r in results if r["system"] == name]:
            T = get_system(name, argparse.Namespace(system_params=r.get("system_params") or [])).timescale
            c = f"C{runs.index(label(r)) % 10}"
            h = [e["jump"] / T for e in r["errors"]]
            ax.loglog(h, [e["rel"] for e in r["errors"]], "o-", color=c)
            ax.loglog(h, [e["norm"] for e in r["errors"]], "x--", color=c, alpha=0.6)
            if "errors_from_start" in r:
                ax.loglog(h, [max(e["rel"], e["norm"]) for e in r["errors_from_start"]], "s:",
                          color=c, alpha=0.6)
        ax.axhline(1e-3, color="k", lw=0.8, ls=":")
        ax.set_title(name)
        ax.set_xlabel("jump size / timescale")
        ax.set_ylabel("median error of one jump")
        ax.grid(True, which="both", alpha=0.3)
    # below the plots: with several runs per system a legend inside would hide the curves
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{i % 10}", lw=4) for i in range(len(runs))] + [
        Line2D([], [], color="0.3", marker="o", ls="-"), Line2D([], [], color="0.3", marker="x", ls="--"),
        Line2D([], [], color="0.3", marker="s", ls=":"), Line2D([], [], color="k", lw=0.8, ls=":")]
    names = runs + ["relative error, along the trajectories", "normalised error, along the trajectories",
                    "from the initial states (worse of the two)", "target 1e-3"]
    fig.legend(handles, names, loc="lower center", ncol=ncol, fontsize=7)
    fig.tight_layout(rect=(0, legend_h / (3.6 + legend_h), 1, 1))
    return fig


if __name__ == "__main__":
    main()
