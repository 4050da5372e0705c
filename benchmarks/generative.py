"""Generative flow maps: sample quality against network evaluations (NFE), and reward tilting.

    python benchmarks/generative.py                 # all four distributions + tilts (~10 min, 2 cores)
    python benchmarks/generative.py --only gm8 moons --smoke

For each distribution: a flow-matching teacher (linear interpolant, independent coupling) and the
flow map of its probability-flow ODE distilled with FlowMap + fit (Lagrangian objective, the
teacher as b). Quality is the energy distance to held-out data; the data-vs-data noise floor
(two independent held-out sets of the same size) is in the same table. Flow map: 1, 2, 4, 8 jumps;
teacher: Euler and Heun at 1–128 steps, dopri5 (rtol = atol = 1e-5). Tilted toys: look-ahead
guidance and fine-tuning against importance-resampled exact references. Timings are taken side
by side in one process on a shared machine (machine_load is recorded): ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _record  # noqa: E402

import flowsim  # noqa: E402
from flowsim.analysis import energy_distance, machine_load, mode_coverage  # noqa: E402
from flowsim.generative import (  # noqa: E402
    distill,
    guided_sample,
    samples_from_store,
    tilt_finetune,
    train_teacher,
)

ROOT = Path(__file__).resolve().parents[1]
STEPS = [1, 2, 4, 8, 16, 32, 64, 128]
JUMPS = [1, 2, 4, 8]


def gm8(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(8, (n,), generator=g)
    ang = 2 * math.pi * k / 8
    return 4 * torch.stack([torch.cos(ang), torch.sin(ang)], 1) + 0.3 * torch.randn(n, 2, generator=g)


GM8_CENTERS = torch.stack([4 * torch.cos(2 * math.pi * torch.arange(8) / 8),
                           4 * torch.sin(2 * math.pi * torch.arange(8) / 8)], 1)


def moons(n: int, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(2, (n,), generator=g)
    a = math.pi * torch.rand(n, generator=g)
    x = torch.where(k == 0, torch.cos(a), 1 - torch.cos(a))
    y = torch.where(k == 0, torch.sin(a), 0.5 - torch.sin(a))
    return 2 * torch.stack([x, y], 1) + 0.1 * torch.randn(n, 2, generator=g)


def lorenz_samples(system: str, n_traj: int, horizon: float, burn: float, every: float,
                   n_each: int, seed: int, **kw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """States along long trajectories written to a store, read back with samples_from_store;
    the first trajectory trains, the second and third are the held-out sets (noise floor)."""
    sys_ = flowsim.get_system(system, **kw)
    t = torch.arange(0, horizon + 1e-9, every, dtype=torch.float64)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            path = f"{tmp}/{system}-{i}.zarr"
            flowsim.simulate_ensemble(sys_, n_traj, t, store=path, progress=False, seed=seed + i,
                                      chunk_size=n_traj, n_workers=1)
            x = samples_from_store(path, burn_in=burn).x.float()
            g = torch.Generator().manual_seed(seed + i)
            out.append(x[torch.randperm(len(x), generator=g)[: n_each if i == 0 else n_each // 4]])
    return out[0], out[1], out[2]


def distributions(a) -> dict:
    g = torch.Generator().manual_seed(0)
    n, m = a.n_train, a.n_test
    out = {"gm8": (gm8(n, g), gm8(m, g), gm8(m, g)), "moons": (moons(n, g), moons(m, g), moons(m, g))}
    if "lorenz63" in a.only:
        out["lorenz63"] = lorenz_samples("lorenz63", 4, 40.0 if a.smoke else 400.0, 5.0, 0.05,
                                         n, 1)
    if "lorenz96" in a.only:
        out["lorenz96"] = lorenz_samples("lorenz96", 8, 20.0 if a.smoke else 200.0, 5.0, 0.1, n, 2,
                                         n=20)
    return {k: v for k, v in out.items() if k in a.only}


def floor_spread(name: str, k: int) -> float | None:
    """Standard deviation of the data-vs-data energy distance over 5 fresh pairs of sets of
    ``k`` (the toys, which can be drawn afresh); ``None`` for the stored Lorenz states."""
    sampler = {"gm8": gm8, "moons": moons}.get(name)
    if sampler is None:
        return None
    g = torch.Generator().manual_seed(99)
    return float(torch.tensor([energy_distance(sampler(k, g), sampler(k, g)) for _ in range(5)]).std())


def evaluate(name: str, data, a) -> dict:
    train, test, test2 = data
    test2 = test2[: len(test)]
    k = min(len(test), len(test2))
    test, test2 = test[:k], test2[:k]
    t0 = time.perf_counter()
    teacher = train_teacher(train, steps=a.teacher_steps, width=a.width, depth=3, batch_size=256,
                            lr=2e-3)
    t_teacher = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen = distill(teacher, width=a.width, depth=4, steps=a.map_steps, batch_size=512, lr=2e-3)
    t_map = time.perf_counter() - t0
    row = {"dim": train.shape[1], "n_train": len(train), "n_test": k,
           "floor": energy_distance(test2, test), "floor_sd": floor_spread(name, k),
           "teacher_train_s": t_teacher, "distill_s": t_map,
           "map": {}, "euler": {}, "heun": {}}
    for j in JUMPS:
        row["map"][j] = energy_distance(gen.sample(k, steps=j, generator=11), test)
    for method in ("euler", "heun"):
        for s in STEPS:
            x, nfe = teacher.sample(k, method, steps=s, generator=11)
            row[method][nfe] = energy_distance(x, test)
    x, nfe = teacher.sample(k, "dopri5", generator=11)
    row["dopri5"] = {"nfe": nfe, "energy": energy_distance(x, test)}
    # side by side: seconds for 10^4 samples, map 1 jump vs teacher dopri5
    reps = 3
    t0 = time.perf_counter()
    for _ in range(reps):
        gen.sample(10_000, steps=1, generator=0)
    t_map1 = (time.perf_counter() - t0) / reps
    t0 = time.perf_counter()
    teacher.sample(10_000, "dopri5", generator=0)
    row["seconds_per_1e4"] = {"map_1_jump": t_map1, "dopri5": time.perf_counter() - t0}
    if name == "gm8":
        row["mode_coverage_map1"] = mode_coverage(gen.sample(k, steps=1, generator=3), GM8_CENTERS, 1.0)
        row["mode_coverage_data"] = mode_coverage(test, GM8_CENTERS, 1.0)
    row["validation_vs_teacher_ode"] = gen.fit_result.metrics
    print(name, {kk: v for kk, v in row.items() if kk in ("floor", "map", "dopri5")}, flush=True)
    return row, gen


REWARDS = {"gm8": (lambda x: x[:, 0], 2.0), "moons": (lambda x: -x[:, 1], 0.5)}


def tilt(name: str, gen, sampler, a) -> dict:
    reward, lam = REWARDS[name]
    g = torch.Generator().manual_seed(5)
    k = a.n_test
    pool = sampler(40 * k, g)  # exact tilted references by importance resampling
    w = torch.softmax(reward(pool) / lam, 0)
    ref = pool[torch.multinomial(w, k, replacement=True, generator=g)]
    ref2 = pool[torch.multinomial(w, k, replacement=True, generator=g)]
    ess = float(1 / (w**2).sum())
    guided = {s: energy_distance(guided_sample(gen, k, reward, lam, steps=s, generator=7), ref)
              for s in (4, 8, 16)}
    fine = tilt_finetune(gen, reward, lam, teacher_steps=a.teacher_steps // 2, map_steps=a.map_steps // 2)
    return {"lambda": lam, "floor": energy_distance(ref2, ref), "pool_ess": ess,
            "untilted_map": energy_distance(gen.sample(k, generator=7), ref),
            "guided": guided, "finetuned_map": {j: energy_distance(fine.sample(k, steps=j, generator=7), ref)
                                                for j in (1, 4)}}


SBI_TASKS = {
    # prey and predators, log-normal noise, 10 times over one cycle
    "lotka_volterra": dict(times=tuple(1.5 * k for k in range(1, 11)), noise=0.1, log=True),
    # infected fraction of an epidemic curve, log-normal noise, every 10 days
    "sir": dict(times=tuple(10.0 * k for k in range(1, 11)), noise=0.1, observed=(1,), log=True),
}


def sbi_task(name: str, budgets: list[int], a) -> dict:
    """p(θ | y) at equal simulation budgets: the conditional flow map against sbi's NPE and FMPE,
    C2ST against an MCMC reference on the exact likelihood, and seconds per 10^4 samples."""
    from sbi.inference import FMPE, NPE
    from sbi.utils import BoxUniform

    from flowsim.analysis import c2st
    from flowsim.generative import InferenceTask, fit_posterior

    task = InferenceTask(name, **SBI_TASKS[name])
    truth = task.system.default_params()[None]
    g = torch.Generator().manual_seed(123)
    y_o = (task.mean_observation(truth) + task.noise * torch.randn(1, task.obs_dim, generator=g,
                                                                  dtype=torch.float64))[0]
    t0 = time.perf_counter()
    ref = task.reference_posterior(y_o, n=a.sbi_samples, seed=1, burn=30 if a.smoke else 300).float()
    out = {"obs_dim": task.obs_dim, "n_params": task.n_params, "mcmc_s": time.perf_counter() - t0,
           "budgets": {}}
    lo, hi = task.prior_box
    prior = BoxUniform(lo.float(), hi.float())
    for budget in budgets:
        theta, y = task.simulate(budget, seed=budget)
        theta, y = theta.float(), y.float()
        row = {}
        t0 = time.perf_counter()
        gen = fit_posterior(theta, y, teacher_steps=a.sbi_teacher_steps, map_steps=a.sbi_map_steps,
                            width=a.width)
        row["flowmap_train_s"] = time.perf_counter() - t0
        for j in (1, 4):
            post = gen.sample(a.sbi_samples, steps=j, condition=y_o.float(), generator=3)
            row[f"flowmap_{j}_c2st"] = c2st(post, ref, classifier=a.c2st_classifier)
        t0 = time.perf_counter()
        gen.sample(10_000, steps=1, condition=y_o.float(), generator=4)
        row["flowmap_1_s_per_1e4"] = time.perf_counter() - t0
        # --smoke skips sbi: 200 simulations and 2 epochs leave NPE a posterior so leaky that
        # sbi's rejection of samples outside the prior runs for minutes
        for label, cls in () if a.smoke else (("npe", NPE), ("fmpe", FMPE)):
            from torch.utils.tensorboard import SummaryWriter

            logs = tempfile.mkdtemp(prefix="sbi-logs-")  # not ./sbi-logs, sbi's default
            inf = cls(prior=prior, show_progress_bars=False, summary_writer=SummaryWriter(logs))
            t0 = time.perf_counter()
            inf.append_simulations(theta, y).train(max_num_epochs=a.sbi_epochs)
            row[f"{label}_train_s"] = time.perf_counter() - t0
            posterior = inf.build_posterior()
            t0 = time.perf_counter()
            post = posterior.sample((10_000,), x=y_o.float(), show_progress_bars=False)
            row[f"{label}_s_per_1e4"] = time.perf_counter() - t0
            row[f"{label}_c2st"] = c2st(post[: a.sbi_samples], ref, classifier=a.c2st_classifier)
        out["budgets"][budget] = row
        print(name, budget, row, flush=True)
    return out


def figure(results: dict):
    import matplotlib.pyplot as plt

    names = list(results["distributions"])
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        r = results["distributions"][name]
        for key, style in (("euler", "o-"), ("heun", "s-")):
            ax.loglog(list(map(int, r[key])), list(r[key].values()), style, label=f"teacher {key}", ms=3)
        ax.loglog(list(map(int, r["map"])), list(r["map"].values()), "D-", label="flow map", ms=4)
        ax.loglog([r["dopri5"]["nfe"]], [r["dopri5"]["energy"]], "k*", label="teacher dopri5", ms=8)
        ax.axhline(abs(r["floor"]), color="grey", ls=":", label="data vs data")
        ax.set_yscale("symlog", linthresh=1e-3)  # unbiased distances scatter around 0 at the floor
        ax.set_title(f"{name} ({r['dim']}-D)")
        ax.set_xlabel("network evaluations")
    axes[0][0].set_ylabel("energy distance to held-out data")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=["gm8", "moons", "lorenz63", "lorenz96"])
    ap.add_argument("--teacher-steps", type=int, default=2000)
    ap.add_argument("--map-steps", type=int, default=2000)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=8000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--no-tilt", action="store_true")
    ap.add_argument("--sbi", nargs="*", default=None, metavar="BUDGET",
                    help="run the posterior benchmark instead (Lotka–Volterra, SIR) at these "
                         "simulation budgets (default 1000 10000); recorded with tag 'sbi'")
    ap.add_argument("--sbi-tasks", nargs="+", default=None, choices=list(SBI_TASKS),
                    help="only these SBI tasks (default: all)")
    ap.add_argument("--sbi-teacher-steps", type=int, default=3000)
    ap.add_argument("--sbi-map-steps", type=int, default=2000)
    ap.add_argument("--sbi-epochs", type=int, default=200, help="cap on sbi's training epochs")
    ap.add_argument("--sbi-samples", type=int, default=2000, help="samples per C2ST side")
    ap.add_argument("--c2st-classifier", default="mlp", choices=["mlp", "rf"])
    ap.add_argument("--smoke", action="store_true", help="seconds: tiny networks and data")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the figure of the latest record (its PNGs and docs/img)")
    _record.add_arguments(ap)
    a = ap.parse_args(argv)
    if a.smoke:
        a.teacher_steps, a.map_steps, a.width, a.n_train, a.n_test = 50, 20, 16, 400, 200
    torch.manual_seed(0)
    if a.replot:
        import json

        folder = _record.results_root(a.results_dir) / "generative"
        doc = json.loads((folder / "latest.json").read_text())
        fig = figure(doc["results"])
        stamp = [p for p in sorted(folder.glob("*.json"))
                 if p.name != "latest.json" and json.loads(p.read_text()).get("date") == doc["date"]]
        for path in [folder / "latest.png", ROOT / "docs" / "img" / "benchmarks" / "generative.png",
                     *[p.with_suffix(".png") for p in stamp]]:
            fig.savefig(path, dpi=110)
        return
    if a.sbi is not None:
        budgets = [int(b) for b in a.sbi] or [1000, 10_000]
        if a.smoke:
            budgets, a.sbi_teacher_steps, a.sbi_map_steps, a.sbi_epochs, a.sbi_samples = [200], 20, 10, 2, 200
        load = machine_load()
        res = {"settings": {"budgets": budgets, **{k: getattr(a, k) for k in (
            "sbi_teacher_steps", "sbi_map_steps", "sbi_epochs", "sbi_samples", "c2st_classifier", "width")}},
            "machine_load_before": load.to_dict(),
            "tasks": {name: sbi_task(name, budgets, a) for name in (a.sbi_tasks or SBI_TASKS)}}
        res["machine_load_after"] = machine_load().to_dict()
        _record.record("generative", res, tag=a.tag or "sbi", results_dir=a.results_dir)
        return
    load_before = machine_load()
    results = {"settings": {k: getattr(a, k) for k in ("only", "teacher_steps", "map_steps", "width",
                                                       "n_train", "n_test")},
               "machine_load_before": load_before.to_dict(),
               "distributions": {}, "tilt": {}}
    samplers = {"gm8": gm8, "moons": moons}
    for name, data in distributions(a).items():
        row, gen = evaluate(name, data, a)
        results["distributions"][name] = row
        if not a.no_tilt and name in samplers:
            results["tilt"][name] = tilt(name, gen, samplers[name], a)
            print(name, "tilt", results["tilt"][name], flush=True)
    after = machine_load()
    results["machine_load_after"] = after.to_dict()
    fig = figure(results)
    if not a.smoke and a.results_dir is None:
        fig.savefig(ROOT / "docs" / "img" / "benchmarks" / f"generative{'-' + a.tag if a.tag else ''}.png",
                    dpi=110)
    _record.record("generative", results, tag=a.tag, figure=fig, results_dir=a.results_dir)


if __name__ == "__main__":
    main()
