"""SBML models: ensemble speed against libroadrunner, and flow maps on two of them.

1. ``ensemble``: N trajectories of 2–3 shipped models (default: the repressilator and the toggle
   switch) (tests/data/sbml) with parameters and
   initial states from the prior, through flowsim's batched torchdiffeq dopri5 (one call) against
   libroadrunner (CVODE) called in a loop, at the same tolerances; libroadrunner's loop is timed on
   a subset and scaled to N (stated in the record). Both in this process, side by side.
2. ``maps``: a flow map per model (the repressilator, a small oscillator; Kholodenko's MAPK
   cascade, a signalling cascade) trained by pair regression on a stored ensemble with the
   default recipe (``--steps`` fewer than its 6000 when time is short: recorded), then error vs
   jump from the initial states and along trajectories, and the speed-up at matched error.

Timings are taken on a shared machine (``machine_load`` is recorded); ratios are side by side.

    PYTHONPATH=. python benchmarks/sbml.py --n 10000 --rr-n 500 --steps 6000

libroadrunner's loop sets each trajectory's parameters and state after ``reset()`` (its
reaction-local parameters, ``R.k`` in flowsim, stay at their defaults there).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _record  # noqa: E402

import flowsim  # noqa: E402

DATA = _record.ROOT / "tests" / "data" / "sbml"
#: model -> (horizon, output times, timescale for maps)
MODELS = {"BIOMD0000000012": (100.0, 51, 20.0), "BIOMD0000000507": (20.0, 41, 5.0),
          "Kholodenko2000_MAPK": (1000.0, 51, 200.0)}


def roadrunner_loop(name, system, x0, p, t, rtol, atol) -> float:
    """Seconds for libroadrunner to solve every row of ``x0``/``p`` (reset, set, simulate)."""
    import roadrunner

    r = roadrunner.RoadRunner(str(DATA / f"{name}.xml"))
    r.integrator.relative_tolerance, r.integrator.absolute_tolerance = rtol, atol
    floating = set(r.model.getFloatingSpeciesIds())
    keys = [f"[{k}]" if k in floating else k for k in system.state_names]
    pkeys = list(system.param_names)  # reaction-local parameters ("R.k") keep their defaults here
    times = [float(v) for v in t]
    start = time.perf_counter()
    for i in range(len(x0)):
        r.reset()
        for j, k in enumerate(pkeys):
            if "." not in k:
                r[k] = float(p[i, j])
        for j, k in enumerate(keys):
            r[k] = float(x0[i, j])  # the state at t = 0 (init(…) would regenerate the model: slow)
        r.simulate(times=times)
    return time.perf_counter() - start


def ensemble(n: int, rr_n: int, rtol: float, atol: float, names: list[str]) -> dict:
    out = {}
    for name in names:
        horizon, n_times, _ = MODELS[name]
        system = flowsim.from_sbml(DATA / f"{name}.xml")
        t = torch.linspace(0.0, horizon, n_times, dtype=torch.float64)
        x0, p = system.sample_initial(n, generator=0), system.sample_params(n, generator=1)
        start = time.perf_counter()
        sol = flowsim.reference_solve(system, x0, t, p, rtol=rtol, atol=atol, max_steps=10**6)
        fs = time.perf_counter() - start
        rr = roadrunner_loop(name, system, x0[:rr_n].numpy(), p[:rr_n].numpy(), t, rtol, atol)
        out[name] = {"n": n, "dim": system.dim, "n_params": system.n_params, "horizon": horizon,
                     "flowsim_s": fs, "flowsim_ok": int((sol.status == 0).sum()),
                     "roadrunner_n_timed": rr_n, "roadrunner_s_per_traj": rr / rr_n,
                     "roadrunner_s_scaled_to_n": rr / rr_n * n,
                     "speedup_flowsim_vs_roadrunner": rr / rr_n * n / fs}
        print(name, out[name], flush=True)
    return out


def maps(steps: int, n_train: int, tmp: Path) -> dict:
    out = {}
    for name in ("BIOMD0000000012", "Kholodenko2000_MAPK"):
        horizon, n_times, ts = MODELS[name]
        system = flowsim.from_sbml(DATA / f"{name}.xml", timescale=ts)
        t = torch.linspace(0.0, horizon, n_times, dtype=torch.float64)
        ds = flowsim.simulate_ensemble(system, n_train, t, params="prior", store=tmp / f"{name}.zarr",
                                       client="sync", seed=0, progress=False)
        cfg = dataclasses.replace(flowsim.train.RECIPE_128x6, steps=steps)
        fm = flowsim.FlowMap(system, width=128, depth=6, param_range="prior")
        start = time.perf_counter()
        flowsim.fit(fm, "pairs", ds, config=cfg, progress=False)
        train_s = time.perf_counter() - start
        test = flowsim.simulate_ensemble(system, 64, t, params="prior", store=tmp / f"{name}-test.zarr",
                                         client="sync", seed=99, progress=False)
        res = {"train_steps": steps, "recipe_steps": flowsim.train.RECIPE_128x6.steps, "train_s": train_s}
        for label, from_start in (("from_initial_states", True), ("along_trajectories", False)):
            ev = flowsim.analysis.error_vs_jump(fm, test, from_start=from_start)
            res[label] = {"jump": [float(v) for v in ev["jump"].values],
                          "median_relative_error": [float(v) for v in ev.median_relative_error.values]}
        x0 = torch.as_tensor(test.x.values[:32, 0])
        p = torch.as_tensor(test.params.values[:32])
        wp = flowsim.analysis.work_precision(fm, system, x0, p, horizon=horizon, training_time=train_s)
        sp = flowsim.analysis.speedup_at_matched_error(wp)
        res["speedup_at_matched_error"] = {k: (float(v) if isinstance(v, (int, float)) else str(v))
                                           for k, v in dataclasses.asdict(sp).items()}
        out[name] = res
        print(name, res["speedup_at_matched_error"], flush=True)
    return out


def plot(results: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, res in results.get("maps", {}).items():
        for label, style in (("from_initial_states", "-"), ("along_trajectories", "--")):
            ax.loglog(res[label]["jump"], res[label]["median_relative_error"], style, label=f"{name} {label}")
    ax.set_xlabel("jump")
    ax.set_ylabel("median relative error")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--rr-n", type=int, default=500)
    ap.add_argument("--rtol", type=float, default=1e-6)
    ap.add_argument("--atol", type=float, default=1e-9)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--n-train", type=int, default=256)
    ap.add_argument("--skip-maps", action="store_true")
    ap.add_argument("--ensemble-models", nargs="+", default=["BIOMD0000000012", "BIOMD0000000507"],
                    choices=list(MODELS))
    _record.add_arguments(ap)
    args = ap.parse_args()
    torch.set_num_threads(1)
    results = {"load": dataclasses.asdict(flowsim.analysis.machine_load()),
               "ensemble": ensemble(args.n, args.rr_n, args.rtol, args.atol, args.ensemble_models)}
    if not args.skip_maps:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            results["maps"] = maps(args.steps, args.n_train, Path(tmp))
    _record.record("sbml", results, tag=args.tag, figure=plot(results) if "maps" in results else None,
                   results_dir=args.results_dir)
    np.set_printoptions(precision=3)


if __name__ == "__main__":
    main()
