"""Teacher and flow map trained jointly (one fit loop) against one after the other, at equal steps.

    python benchmarks/generative_joint.py            # ~6 min on the shared 2-core CPU
    python benchmarks/generative_joint.py --steps 2000 --seeds 0 1 2 --tag seeds   # ~8 min
    python benchmarks/generative_joint.py --smoke --results-dir /tmp/bench

Both use the same networks (teacher MLP 64×3, map ResNet 64×4), batch 256, AdamW at lr 2e-3.
"joint": ``train_jointly`` for N steps (each step one flow-matching and one distillation update).
"sequential": ``train_teacher`` for N steps, then ``distill`` for N steps. Two distributions:

* a correlated 2-D Gaussian (correlation 0.96), whose flow map for the linear interpolant is
  known: ``X(0, 1, z) = μ + C^½ z`` in the teacher's standardised coordinates (sample moments).
  Error: the median of ``‖(X_model(z) − X_exact(z)) / σ‖ / √2`` over 2,000 noise draws ``z``.
* the 8-Gaussian ring: energy distance of 2,000 samples to 2,000 held-out data, with the
  data-vs-data noise floor.

Wall times are taken side by side in one process on a shared machine (``machine_load`` recorded).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _record  # noqa: E402

from flowsim.analysis import energy_distance, machine_load  # noqa: E402
from flowsim.generative import TeacherConfig, distill, train_jointly, train_teacher  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
L = torch.tensor([[2.0, 0.0], [1.7, 0.5]])


def gauss(n: int, g: torch.Generator) -> torch.Tensor:
    return torch.randn(n, 2, generator=g) @ L.T + torch.tensor([1.0, -2.0])


def gm8(n: int, g: torch.Generator) -> torch.Tensor:
    ang = 2 * math.pi * torch.randint(8, (n,), generator=g) / 8
    return 4 * torch.stack([torch.cos(ang), torch.sin(ang)], 1) + 0.3 * torch.randn(n, 2, generator=g)


def train(mode: str, data: torch.Tensor, steps: int, width: int, seed: int):
    t0 = time.perf_counter()
    if mode == "joint":
        tcfg = TeacherConfig(width=width, depth=3, batch_size=256, seed=seed)
        gen = train_jointly(data, teacher_config=tcfg, width=width, depth=4, steps=steps, batch_size=256,
                            seed=seed)
    else:
        teacher = train_teacher(data, steps=steps, width=width, depth=3, batch_size=256, seed=seed)
        gen = distill(teacher, width=width, depth=4, steps=steps, batch_size=256, seed=seed)
    return gen, time.perf_counter() - t0


def gauss_errors(gen, data: torch.Tensor) -> dict:
    te = gen.teacher
    zd = te.standardise(data.double())
    ev, vec = torch.linalg.eigh(torch.cov(zd.T))
    z = torch.randn(2000, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    exact = te.unstandardise(zd.mean(0) + z @ (vec @ torch.diag(ev.sqrt()) @ vec.T).T)

    def err(out):
        return float(((out.double() - exact) / te.x_std.double()).norm(dim=1).median() / math.sqrt(2))

    ode, nfe = te.solve(z.float(), 0.0, 1.0, torch.zeros(2000, 0), "dopri5")
    return {"map_1": err(gen.decode(z.float())), "map_4": err(gen.decode(z.float(), 4)),
            "teacher_dopri5": err(te.unstandardise(ode)), "untrained": err(te.unstandardise(z.float()))}


def gm8_errors(gen, test: torch.Tensor) -> dict:
    x, _ = gen.teacher.sample(2000, "dopri5", generator=7)
    return {"map_1": float(energy_distance(gen.sample(2000, 1, generator=7), test)),
            "map_4": float(energy_distance(gen.sample(2000, 4, generator=7), test)),
            "teacher_dopri5": float(energy_distance(x, test))}


def figure(results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(5 + 1.2 * len(results["cases"]["gauss"]["runs"]), 3.6))
    for ax, (case, label) in zip(axes, (("gauss", "error to the exact flow map"),
                                        ("gm8", "energy distance to held-out data"))):
        rows = results["cases"][case]["runs"]
        names = [f"{r['mode']}\n{r['steps']} steps" + (f", seed {r['seed']}" if r["seed"] else "")
                 for r in rows]
        pos = torch.arange(len(rows)).float()
        for key, off in (("map_1", -0.2), ("map_4", 0.0), ("teacher_dopri5", 0.2)):
            ax.bar(pos + off, [max(r[key], 1e-5) for r in rows], 0.2, label=key.replace("_", " "))
        ax.set_xticks(pos.tolist(), names, fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"{case}: {label}")
        if "floor" in results["cases"][case]:
            ax.axhline(max(results["cases"][case]["floor"], 1e-5), color="k", ls="--", lw=1,
                       label="data vs data")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the models (the data stay)")
    ap.add_argument("--smoke", action="store_true", help="50 steps, width 16 (checks the script runs)")
    _record.add_arguments(ap)
    a = ap.parse_args()
    steps, width = ([50], 16) if a.smoke else (a.steps, a.width)
    torch.set_num_threads(1)
    results = {"machine_load_before": machine_load().to_dict(), "width": width, "cases": {}}
    g = torch.Generator().manual_seed(0)
    cases = {"gauss": gauss(8000, g), "gm8": gm8(8000, g)}
    test, other = gm8(2000, g), gm8(2000, g)
    for case, data in cases.items():
        out = {"runs": []}
        if case == "gm8":
            out["floor"] = float(energy_distance(other, test))
        for n in steps:
            for seed in a.seeds:
                for mode in ("joint", "sequential"):
                    gen, wall = train(mode, data, n, width, seed)
                    row = {"mode": mode, "steps": n, "seed": seed, "train_s": wall,
                           **(gauss_errors(gen, data) if case == "gauss" else gm8_errors(gen, test))}
                    out["runs"].append(row)
                    print(case, row, flush=True)
        results["cases"][case] = out
    results["machine_load_after"] = machine_load().to_dict()
    fig = figure(results)
    if not a.smoke and a.results_dir is None:
        name = f"generative_joint{'-' + a.tag if a.tag else ''}.png"
        fig.savefig(ROOT / "docs" / "img" / "benchmarks" / name, dpi=110)
    _record.record("generative_joint", results, tag=a.tag, figure=fig, results_dir=a.results_dir)


if __name__ == "__main__":
    main()
