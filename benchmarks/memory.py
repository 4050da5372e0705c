"""Does peak memory stay bounded as the ensemble grows?

Peak resident memory (RSS) against the number of trajectories, for the two steps whose memory
could grow with the data:

* ``simulate`` — ``simulate_ensemble`` of FitzHugh–Nagumo (parameters from the prior, 201 output
  times over [0, 100]) into a zarr store, with the default ``client=None`` (flowsim's
  ``local_cluster``: one worker process per core) or ``--client sync`` (this process only);
* ``train`` — ``fit`` of a 64×3 flow map streaming pairs from that store
  (``FitConfig(stream=True)``) for ``--steps`` steps.

Each (step, size) runs in a fresh subprocess, so peaks do not mix. This process samples the RSS
of the subprocess and all its descendants (Dask scheduler threads live in it, workers and
DataLoader workers are its children) every 20 ms with psutil and reports the peak of the sum
(``peak_tree_mib``) and of the subprocess alone; the subprocess adds its own exact peak
(``ru_maxrss``). ``idle`` is a subprocess that only imports torch and flowsim: the floor every
figure stands on. Bounded memory means the peaks do not grow with ``n`` (``growth_mib_per_10k``:
the slope of a least-squares line through the three sizes).

    python benchmarks/memory.py           # 2,000 / 6,000 / 20,000 trajectories (~10 min, idle 2 cores)
    python benchmarks/memory.py --smoke --results-dir /tmp/bench-smoke   # seconds per size: a check

Writes ``benchmarks/results/memory/<date>-<commit>[-<tag>].json`` and ``.png`` and replaces
``latest[-<tag>].json`` / ``.png`` there (``benchmarks/_record.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _record  # noqa: E402

SYSTEM = "fitzhugh_nagumo"
N_TIMES, T_END = 201, 100.0
MIB = 2**20


# --------------------------------------------------------------------------- the measured child
def _child(args: argparse.Namespace) -> None:
    """One step at one size, in this (fresh) process; prints a JSON line with what it did."""
    import resource

    import torch

    import flowsim

    out: dict = {"phase": args.phase, "n": args.n}
    t0 = time.perf_counter()
    if args.phase == "simulate":
        stats: dict = {}
        client = "sync" if args.client == "sync" else None
        ds = flowsim.simulate_ensemble(
            SYSTEM, args.n, torch.linspace(0.0, T_END, N_TIMES, dtype=torch.float64), params="prior",
            store=args.store, client=client, n_workers=args.workers, progress=False, stats=stats,
            overwrite=True)
        out.update(chunk_size=int(ds.x.encoding.get("chunks", (0,))[0] or 0),
                   n_failed=int(stats.get("n_failed", 0)), workers=stats.get("workers"),
                   store_mib=_du(Path(args.store)) / MIB,
                   states_mib=args.n * N_TIMES * 2 * 8 / MIB)
    elif args.phase == "train":
        fm = flowsim.FlowMap(SYSTEM, width=64, depth=3)
        cfg = flowsim.train.FitConfig(stream=True, steps=args.steps, batch_size=512)
        res = flowsim.fit(fm, "pairs", args.store, cfg, progress=False, checkpoint_dir=None)
        out.update(steps=res.steps)
    out["wall_s"] = time.perf_counter() - t0
    out["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MIB
    print("RESULT " + json.dumps(out), flush=True)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- the measuring parent
def _tree_rss(proc) -> tuple[int, int]:
    """(RSS of ``proc`` and all its descendants, RSS of ``proc``) in bytes; vanished ones count 0."""
    import psutil

    try:
        own = proc.memory_info().rss
        kids = proc.children(recursive=True)
    except psutil.Error:
        return 0, 0
    total = own
    for k in kids:
        try:
            total += k.memory_info().rss
        except psutil.Error:
            pass
    return total, own


def measure(argv: list[str], timeout: float) -> dict:
    """Run ``this script <argv>`` in a subprocess and sample its process tree's RSS."""
    import psutil

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_record.ROOT),
                                                                   os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *argv]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    ps = psutil.Process(proc.pid)
    peak = {"tree": 0, "main": 0, "samples": 0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            tree, own = _tree_rss(ps)
            peak["tree"], peak["main"] = max(peak["tree"], tree), max(peak["main"], own)
            peak["samples"] += 1
            stop.wait(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise RuntimeError(f"{' '.join(argv)} ran past {timeout:.0f} s") from None
    finally:
        stop.set()
        th.join()
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(argv)} failed (exit {proc.returncode}):\n{stderr[-3000:]}")
    res = json.loads(lines[-1][len("RESULT "):])
    res.update(peak_tree_mib=peak["tree"] / MIB, peak_main_mib=peak["main"] / MIB,
               rss_samples=peak["samples"])
    return res


def _slope(xs: list[float], ys: list[float]) -> float | None:
    if len(xs) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return None if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var


def plot(results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for phase, style in (("simulate", "o-"), ("train", "s-")):
        rows = results[phase]
        ax.plot([r["n"] for r in rows], [r["peak_tree_mib"] for r in rows], style,
                label=f"{phase} (process tree)")
    if results.get("idle"):
        ax.axhline(results["idle"]["peak_tree_mib"], color="grey", ls=":", label="import torch + flowsim")
    ax.plot([r["n"] for r in results["simulate"]], [r["states_mib"] for r in results["simulate"]], "k--",
            lw=0.8, label="the states themselves (float64)")
    ax.set_xlabel("trajectories (201 times each)")
    ax.set_ylabel("peak RSS (MiB)")
    ax.set_title("Peak memory against ensemble size")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2_000, 6_000, 20_000],
                    help="numbers of trajectories")
    ap.add_argument("--steps", type=int, default=300, help="training steps streamed from each store")
    ap.add_argument("--client", choices=["local", "sync"], default="local",
                    help="local: simulate_ensemble's default LocalCluster; sync: this process only")
    ap.add_argument("--workers", type=int, default=None, help="Dask workers (default: one per core)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per subprocess")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes (200 / 400 / 800) and 20 steps: checks the script, measures nothing")
    ap.add_argument("--keep", default=None, help="keep the stores in this folder (default: a temporary one)")
    # the child's own options
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--phase", choices=["idle", "simulate", "train"], help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--store", default=None, help=argparse.SUPPRESS)
    _record.add_arguments(ap)
    args = ap.parse_args(argv)
    if args.child:
        _child(args)
        return 0
    if args.smoke:
        args.sizes, args.steps = [200, 400, 800], 20
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="flowsim-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    common = ["--client", args.client, "--steps", str(args.steps)]
    if args.workers is not None:
        common += ["--workers", str(args.workers)]
    results: dict = {"system": SYSTEM, "n_times": N_TIMES, "t_end": T_END, "client": args.client,
                     "steps": args.steps, "smoke": bool(args.smoke), "simulate": [], "train": []}
    try:
        results["idle"] = measure(["--phase", "idle", *common], args.timeout)
        print(f"idle: {results['idle']['peak_tree_mib']:.0f} MiB", flush=True)
        for n in sorted(args.sizes):
            store = str(work / f"fhn-{n}.zarr")
            for phase in ("simulate", "train"):
                r = measure(["--phase", phase, "--n", str(n), "--store", store, *common], args.timeout)
                results[phase].append(r)
                print(f"{phase:8s} n={n:6d}: peak {r['peak_tree_mib']:7.0f} MiB (tree), "
                      f"{r['peak_main_mib']:6.0f} MiB (main), {r['wall_s']:6.1f} s", flush=True)
            if not args.keep:
                shutil.rmtree(store, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    for phase in ("simulate", "train"):
        rows = results[phase]
        slope = _slope([r["n"] for r in rows], [r["peak_tree_mib"] for r in rows])
        results[f"{phase}_growth_mib_per_10k"] = None if slope is None else slope * 10_000
        results[f"{phase}_peak_range_mib"] = [min(r["peak_tree_mib"] for r in rows),
                                              max(r["peak_tree_mib"] for r in rows)]
        print(f"{phase}: peak {results[f'{phase}_peak_range_mib'][0]:.0f}–"
              f"{results[f'{phase}_peak_range_mib'][1]:.0f} MiB over n = {[r['n'] for r in rows]}, "
              f"growth {results[f'{phase}_growth_mib_per_10k'] or 0:.1f} MiB per 10,000 trajectories")
    _record.record("memory", results, tag=args.tag, figure=plot(results), results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
