"""Steering through a flow map on the Theoph data: calibration and posterior wall times, accuracy, coverage.

Side by side in one process on this machine (issue 19):

1. **Theoph, all 12 subjects**: (a) scipy ``least_squares`` over ``solve_ivp`` (LSODA) per subject,
   what a pharmacometrician would write; (b) ``flowsim.steer.calibrate`` through the batched
   torchdiffeq solver; (c) ``calibrate`` through a trained map, with and without the solver
   polish. The map's training time is given separately, with the break-even number of
   calibrations at which it pays off. Estimates are compared with scipy's before and after the
   polish.
2. **Posterior** of subject 1's (ka, ke, V): emcee, 32 walkers × 5,000 steps through the map,
   against the same sampler through batched torchdiffeq (at the reference tolerances, rtol 1e-8,
   and at rtol 1e-6) for a shorter chain (``--solver-steps``), its wall time scaled to 5,000 steps
   (said in the record). The map's posterior means are checked
   against the solver by re-weighting 300 draws (:func:`flowsim.steer.posterior_map_check`).
3. **Coverage**: synthetic data sets from known parameters (subject 1's times, Gaussian noise):
   how often the map posterior's 95 % intervals cover the truth.

The machine is shared: ``flowsim.analysis.machine_load()`` is recorded before and after; ratios
are measured side by side in this one process. Run::

    python benchmarks/steering.py            # the recorded run (~5-8 min on 2 cores)
    python benchmarks/steering.py --fast --results-dir /tmp/x   # a smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _record  # noqa: E402

import flowsim  # noqa: E402
from flowsim.analysis import machine_load  # noqa: E402
from flowsim.steer import (  # noqa: E402
    Noise,
    SolverPredictor,
    calibrate,
    sample_posterior,
    scipy_fit,
    theoph_observations,
    train_theoph_map,
)

PARAMS = ("ka", "ke", "V")
#: the solver posterior's torchdiffeq tolerances (same reasoning; the map check uses rtol 1e-8)
POSTERIOR_SOLVER = flowsim.SolverOptions(method="dopri5", rtol=1e-6, atol=1e-8)
IMG = Path(__file__).resolve().parents[1] / "docs" / "img" / "benchmarks" / "steering.png"


def train_map(args) -> tuple[flowsim.FlowMap, float]:
    """A Theoph map over the whole prior (:func:`flowsim.steer.train_theoph_map`: reference data on
    a grid 0.05 h apart over the first hour, pairs starting at the dose), with log-uniform jumps
    down to 0.03 h so that the absorption phase (which decides ka) is trained as well as the rest."""
    t0 = time.perf_counter()
    fm = train_theoph_map(steps=args.train_steps, width=args.width, depth=args.depth,
                          n_trajectories=args.train_trajectories, batch_size=512, lr=2e-3,
                          log_fraction=0.6, min_jump=0.03)
    return fm, time.perf_counter() - t0


def scipy_fits(obs) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """Per-subject least squares over solve_ivp (LSODA), :func:`flowsim.steer.scipy_fit`:
    estimates (S, 3), residual SDs (S,), wall time, settings."""
    t0 = time.perf_counter()
    ds = scipy_fit(obs, PARAMS)
    wall = time.perf_counter() - t0
    n = obs.padded().mask.sum((1, 2)).numpy()
    sd = np.sqrt(2 * ds["cost"].values / np.maximum(n - len(PARAMS), 1))
    est = ds["estimate"].sel(subject=list(obs.subjects), param=list(PARAMS)).values
    return est, sd, wall, {k: ds.attrs[k] for k in ("method", "rtol", "atol", "tol", "optimizer")}


def timed_calibration(model, obs, **kw):
    t0 = time.perf_counter()
    ds = calibrate(model, obs, params=PARAMS, per_subject=True, **kw)
    return ds, time.perf_counter() - t0


def rel_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - b) / np.abs(b)))


def calibration_part(fm, obs, args) -> dict:
    ref, sds, t_scipy, scipy_settings = scipy_fits(obs)
    solver_ds, t_solver = timed_calibration("theophylline", obs, n_starts=args.starts)
    map_ds, t_map = timed_calibration(fm, obs, n_starts=args.starts, polish=True)
    raw_ds, t_raw = timed_calibration(fm, obs, n_starts=args.starts, polish=False)
    order = [str(s) for s in obs.subjects]
    get = lambda ds, v: ds[v].sel(subject=order, param=list(PARAMS)).values  # noqa: E731
    return {
        "wall_s": {"scipy_lsoda_per_subject": t_scipy, "torchdiffeq_batched": t_solver,
                   "map_with_polish": t_map, "map_without_polish": t_raw},
        "max_rel_diff_vs_scipy": {"torchdiffeq": rel_diff(get(solver_ds, "estimate"), ref),
                                  "map_before_polish": rel_diff(get(map_ds, "estimate_map"), ref),
                                  "map_after_polish": rel_diff(get(map_ds, "estimate"), ref),
                                  "map_no_polish_run": rel_diff(get(raw_ds, "estimate"), ref)},
        "scipy": scipy_settings,
        "torchdiffeq": "calibrate through SolverPredictor (dopri5 rtol 1e-8 atol 1e-10; gradients by "
                       "batched forward differences, calibrate's choice for the solver)",
        "scipy_estimates": ref.tolist(), "scipy_residual_sd": sds.tolist(),
        "map_estimates_after_polish": get(map_ds, "estimate").tolist(),
        "map_estimates_before_polish": get(map_ds, "estimate_map").tolist(),
        "status_map": [str(v) for v in map_ds["status"].values.ravel()],
        "map_faster_than_scipy_incl_polish": bool(t_map < t_scipy),
    }


def posterior_part(fm, obs, sigma, args) -> dict:
    one = obs.select([obs.subjects[0]])
    noise = Noise("gaussian", sigma=sigma)
    pm = sample_posterior(fm, one, params=PARAMS, noise=noise, walkers=32, steps=args.post_steps,
                          check_draws=300, seed=0)
    per_map = pm.info["wall_s"] / args.post_steps
    s = pm.summary
    out = {"subject": str(obs.subjects[0]), "sigma": sigma, "walkers": 32,
           "map": {"steps": args.post_steps, "wall_s": pm.info["wall_s"], "s_per_step": per_map,
                   "acceptance": pm.info["acceptance"], "autocorr_time": pm.info["autocorr_time"],
                   "mean": s["mean"].values.tolist(), "sd": s["sd"].values.tolist(),
                   "r_hat": s["r_hat"].values.tolist(), "ess_bulk": s["ess_bulk"].values.tolist()},
           "map_check": {"shift_sd": pm.check.shift_sd.values.tolist(),
                         "max_abs_shift_sd": float(pm.check.max_abs_shift),
                         "mean_solver_reweighted": pm.check.mean_solver.values.tolist(),
                         "ess_fraction": float(pm.check.ess_fraction), "n_draws": int(pm.check.n_draws),
                         "loglik_diff_median": float(pm.check.loglik_diff_median)}}
    draws = [pm.draws()]
    for key, solver in (("solver_reference", None), ("solver_loose", POSTERIOR_SOLVER)):
        pred = SolverPredictor("theophylline", solver)
        ps = sample_posterior(pred, one, params=PARAMS, noise=noise, walkers=32, steps=args.solver_steps,
                              burn=args.solver_steps // 2, check_draws=0, seed=0)
        per = ps.info["wall_s"] / args.solver_steps
        out[key] = {"steps": args.solver_steps, "wall_s": ps.info["wall_s"], "s_per_step": per,
                    "wall_s_scaled_to_map_steps": per * args.post_steps,
                    "solver": f"torchdiffeq {pred.solver.method} rtol {pred.solver.rtol:g} "
                              f"atol {pred.solver.atol:g}",
                    "speedup_per_step_of_map": per / per_map,
                    "note": f"a {args.solver_steps}-step chain (too short to converge: timing only), its "
                            f"wall time scaled to {args.post_steps} steps"}
        draws.append(ps.draws())
    out["speedup_per_step"] = out["solver_reference"]["speedup_per_step_of_map"]
    out["targets"] = {
        "speedup_at_least_100x_vs_reference_solver": bool(out["speedup_per_step"] >= 100),
        "speedup_at_least_100x_vs_loose_solver": bool(out["solver_loose"]["speedup_per_step_of_map"] >= 100),
        "means_within_0.1_sd_of_solver_checked": bool(float(pm.check.max_abs_shift) <= 0.1)}
    out["_draws"] = draws
    return out


def coverage_part(fm, obs, args) -> dict:
    import pandas as pd

    sysm = obs.system
    pad = obs.padded()
    times = pad.times[0].numpy()[pad.mask[0, :, 0].numpy()]
    times = times[times > 0]
    rng = np.random.default_rng(7)
    box = np.array([(0.8, 3.0), (0.05, 0.12), (25.0, 40.0)])
    covered, total, t0 = np.zeros(3), 0, time.perf_counter()
    for k in range(args.coverage_sets):
        truth = box[:, 0] + (box[:, 1] - box[:, 0]) * rng.random(3)
        sol = flowsim.reference_solve(sysm, torch.tensor([[320.0, 0.0]], dtype=torch.float64),
                                      torch.tensor(np.r_[0.0, times]), torch.tensor(truth[None]))
        conc = sol.x[0, 1:, 1].numpy() / truth[2] + args.sigma * rng.standard_normal(times.size)
        frame = pd.DataFrame({"subject": 1, "time": times, "observable": "conc", "value": conc})
        syn = flowsim.steer.Observations(frame, sysm, observe=sysm.concentration, initial={1: (320.0, 0.0)})
        post = sample_posterior(fm, syn, params=PARAMS, noise=Noise(sigma=args.sigma), walkers=32,
                                steps=args.coverage_steps, check_draws=0, seed=k)
        lo, hi = post.summary["q2.5"].values, post.summary["q97.5"].values
        covered += (lo <= truth) & (truth <= hi)
        total += 1
    return {"data_sets": total, "sigma": args.sigma, "steps": args.coverage_steps, "walkers": 32,
            "coverage_per_param": dict(zip(PARAMS, (covered / total).tolist())),
            "coverage_all": float(covered.sum() / (3 * total)), "wall_s": time.perf_counter() - t0,
            "truth_box": box.tolist()}


def figure(res, draws):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    w = res["calibration"]["wall_s"]
    ax[0].bar(range(4), list(w.values()), color=["grey", "tab:blue", "tab:orange", "tab:green"])
    ax[0].set_xticks(range(4), ["scipy\nLSODA", "torchdiffeq\nbatched", "map +\npolish", "map"])
    ax[0].set_ylabel("wall time (s), 12 subjects")
    ax[0].set_title("Theoph calibration")
    p = res["posterior"]
    ax[1].bar([0, 1, 2], [p["solver_reference"]["wall_s_scaled_to_map_steps"],
                          p["solver_loose"]["wall_s_scaled_to_map_steps"], p["map"]["wall_s"]],
              color=["tab:blue", "tab:cyan", "tab:orange"])
    ax[1].set_yscale("log")
    ax[1].set_xticks([0, 1, 2], ["torchdiffeq\nrtol 1e-8\n(scaled)", "torchdiffeq\nrtol 1e-6\n(scaled)",
                                 "map"])
    ax[1].set_ylabel(f"wall time (s), 32 walkers × {p['map']['steps']} steps")
    ax[1].set_title(f"posterior: {p['speedup_per_step']:.0f}× per step")
    dm = draws[0]
    ax[2].hist(dm[:, 0], bins=60, density=True, alpha=0.6, label="map posterior")
    ax[2].axvline(p["map_check"]["mean_solver_reweighted"][0], color="k", label="solver-checked mean")
    ax[2].set_xlabel("ka (1/h), subject 1")
    ax[2].legend()
    ax[2].set_title(f"map check: max shift {p['map_check']['max_abs_shift_sd']:.3f} SD")
    fig.tight_layout()
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="a smoke run (tiny map, short chains)")
    ap.add_argument("--train-trajectories", type=int, default=1024)
    ap.add_argument("--train-steps", type=int, default=10000)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--starts", type=int, default=4)
    ap.add_argument("--post-steps", type=int, default=5000)
    ap.add_argument("--solver-steps", type=int, default=100)
    ap.add_argument("--coverage-sets", type=int, default=16)
    ap.add_argument("--coverage-steps", type=int, default=1000)
    ap.add_argument("--sigma", type=float, default=0.5, help="noise SD of the synthetic data (mg/L)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["calibration", "posterior", "coverage"])
    _record.add_arguments(ap)
    args = ap.parse_args()
    if args.fast:
        args.train_trajectories, args.train_steps, args.width, args.depth = 64, 100, 16, 2
        args.post_steps, args.solver_steps, args.coverage_sets, args.coverage_steps = 60, 10, 2, 60
    torch.set_num_threads(1)
    load_before = machine_load(1.0)
    fm, t_train = train_map(args)
    obs = theoph_observations()
    res = {"settings": {k: v for k, v in vars(args).items() if k not in ("results_dir", "tag")},
           "machine_load_before": vars(load_before),
           "map": {"train_s": t_train, "width": args.width, "depth": args.depth,
                   "gradient_check": None}}
    gc = flowsim.steer.gradient_check(fm, n=32, jumps=[0.25, 1.0, 4.0, 12.0, 24.0])
    res["map"]["gradient_check"] = {k: gc[k].values.tolist() for k in gc.data_vars} | {
        "jump": gc.jump.values.tolist()}
    draws = [np.zeros((1, 3))]
    if "calibration" not in args.skip:
        cal = calibration_part(fm, obs, args)
        w = cal["wall_s"]
        saved = w["torchdiffeq_batched"] - w["map_with_polish"]
        cal["break_even_calibrations_vs_torchdiffeq"] = t_train / saved if saved > 0 else None
        saved_sp = w["scipy_lsoda_per_subject"] - w["map_with_polish"]
        cal["break_even_calibrations_vs_scipy"] = t_train / saved_sp if saved_sp > 0 else None
        res["calibration"] = cal
    sigma = float(np.mean(res["calibration"]["scipy_residual_sd"][:1])) if "calibration" in res else 0.5
    if "posterior" not in args.skip:
        post = posterior_part(fm, obs, sigma, args)
        draws = post.pop("_draws")
        res["posterior"] = post
    if "coverage" not in args.skip:
        res["coverage"] = coverage_part(fm, obs, args)
    load_after = machine_load(1.0)
    res["machine_load_after"] = vars(load_after)
    fig = figure(res, draws) if {"calibration", "posterior"}.isdisjoint(args.skip) else None
    _record.record("steering", res, tag=args.tag, figure=fig, results_dir=args.results_dir)
    if fig is not None and args.results_dir is None:
        IMG.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(IMG, dpi=110)
    print({k: res[k] for k in res if k in ("calibration", "posterior", "coverage")})


if __name__ == "__main__":
    main()
