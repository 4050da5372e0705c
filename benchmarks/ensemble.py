"""How close does a Dask ensemble on two workers come to two plain processes?

Ensemble throughput: serial vs Dask (naive and tuned) vs plain torch processes.

FitzHugh–Nagumo, parameters from the prior, 201 output times over [0, 100], dopri5 at
rtol=1e-8/atol=1e-10, float64, written to a zarr store. Measures trajectories/s of

* ``serial``       — ``simulate_ensemble(client="sync")``: one process, solve + write;
* ``torch_2proc``  — two plain ``multiprocessing`` (spawn) processes solving the same chunks, no
  Dask, no writing: the ceiling for two processes;
* ``dask_naive``   — a hand-written Dask ensemble: ``client.map`` of "draw, solve, write the region"
  (xarray ``to_zarr(region=…)``) on a default ``LocalCluster(n_workers=2, threads_per_worker=1)``
  (the nanny's default ``MALLOC_TRIM_THRESHOLD_=65536``);
* ``dask_user_client`` — ``simulate_ensemble(client=Client(LocalCluster(n_workers=2)))``: a user's
  default cluster, which flowsim's tasks tune at run time (``tune_malloc``);
* ``dask_tuned``   — ``simulate_ensemble(client=None)``: flowsim's ``local_cluster`` set-up;

plus a per-process diagnosis: one chunk solved in a fresh process under each environment.
Cluster start-up is timed separately from the run. The configurations that run
``simulate_ensemble`` must give byte-identical stores (``identical_bytes_across_configs``).

    python benchmarks/ensemble.py --n 100000 --repeat 2    # the docs' table (~10 minutes, idle 2 cores)
    python benchmarks/ensemble.py --smoke --results-dir /tmp/bench-smoke   # minutes: 3 clusters start

Writes ``benchmarks/results/ensemble/<date>-<commit>[-<tag>].json`` and ``.png`` and replaces
``latest[-<tag>].json`` / ``.png`` there (``benchmarks/_record.py``); ``--replot FILE`` redraws a
record's figure beside it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import flowsim
from flowsim.data import WORKER_ENV, simulate_ensemble

sys.path.insert(0, str(Path(__file__).parent))
import _record  # noqa: E402

SYSTEM = "fitzhugh_nagumo"
T = torch.linspace(0.0, 100.0, 201, dtype=torch.float64)
SOLVER = dict(method="dopri5", rtol=1e-8, atol=1e-10)

DIAGNOSE = """
import sys, time, torch, flowsim
threads = int(sys.argv[2])
if sys.argv[3] == "1":
    from flowsim.data.cluster import tune_malloc
    assert tune_malloc()
torch.set_num_threads(threads)
s = flowsim.get_system("fitzhugh_nagumo")
n = int(sys.argv[1])
x0, p = s.sample_initial(n, 0), s.sample_params(n, 1)
t = torch.linspace(0.0, 100.0, 201, dtype=torch.float64)
flowsim.reference_solve(s, x0[:64], t, p[:64], rtol=1e-8, atol=1e-10)  # warm-up
t0 = time.perf_counter()
flowsim.reference_solve(s, x0, t, p, rtol=1e-8, atol=1e-10, chunk_size=n)
print(n / (time.perf_counter() - t0))
"""


def _busy_cpu_s() -> float:
    """CPU seconds spent busy by the whole machine since boot."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def _own_cpu_s() -> float:
    """CPU seconds of this process, its reaped children and its live descendants."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:4])  # user, system, children_user, children_system
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def others_cores(seconds: float) -> float:
    """Average number of cores that other processes kept busy over ``seconds``."""
    b0, o0, t0 = _busy_cpu_s(), _own_cpu_s(), time.perf_counter()
    time.sleep(seconds)
    return max(0.0, (_busy_cpu_s() - b0 - (_own_cpu_s() - o0)) / (time.perf_counter() - t0))


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait (up to ``max_wait`` s) until other processes use under ``threshold`` cores; return their load."""
    deadline = time.perf_counter() + max_wait
    load = others_cores(3.0)
    while load > threshold and time.perf_counter() < deadline:
        load = others_cores(3.0)
    return load


def calibrate(n: int = 1024) -> float:
    """Trajectories/s of one small solve in this process: the host's speed right now.

    The development machine's speed drifts (shared host, frequency scaling) by tens of percent
    between runs a minute apart; dividing each configuration's throughput by calibrations taken
    just before and after it makes the configurations comparable.
    """
    system = flowsim.get_system(SYSTEM)
    x0, p = system.sample_initial(n, 0), system.sample_params(n, 1)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.perf_counter()
        flowsim.reference_solve(system, x0, T, p, chunk_size=n, **SOLVER)
        return n / (time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)


def _chunks(n: int, chunk: int, seed: int) -> list[tuple[int, int, int]]:
    """``(start, stop, seed)`` of each chunk: its initial states and parameters are drawn from the
    prior with that seed (the same workload as ``simulate_ensemble``, not the same draws)."""
    return [(a, min(a + chunk, n), seed * 1_000_003 + c) for c, a in enumerate(range(0, n, chunk))]


def _inputs(job: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    start, stop, seed = job
    system = flowsim.get_system(SYSTEM)
    g = torch.Generator().manual_seed(seed)
    return (system.sample_initial(stop - start, g, dtype=torch.float64),
            system.sample_params(stop - start, g, dtype=torch.float64))


def _solve_only(job: tuple[int, int, int]) -> float:
    torch.set_num_threads(1)
    x0, p = _inputs(job)
    t0 = time.perf_counter()
    flowsim.reference_solve(SYSTEM, x0, T, p, chunk_size=job[1] - job[0], **SOLVER)
    return time.perf_counter() - t0


def _warm(_: int) -> int:
    torch.set_num_threads(1)
    return os.getpid()


def torch_two_processes(n: int, chunk: int, seed: int) -> dict:
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(2) as pool:
        pool.map(_warm, range(2))
        t1 = time.perf_counter()
        times = pool.map(_solve_only, _chunks(n, chunk, seed), chunksize=1)
        run = time.perf_counter() - t1
    return {"startup_s": t1 - t0, "run_s": run, "solve_s": sum(times), "write_s": 0.0, "workers": 2}


def run_simulate(store: Path, n: int, chunk: int, seed: int, client) -> dict:
    stats: dict = {}
    simulate_ensemble(SYSTEM, n, T, params="prior", store=store, chunk_size=chunk, client=client, seed=seed,
                      progress=False, n_workers=2, stats=stats, **SOLVER)
    return stats


def _naive_task(store: str, job: tuple[int, int, int]) -> dict:
    """A hand-written Dask ensemble task: draw the chunk, solve it, write its region. No tuning."""
    import xarray as xr

    t0 = time.perf_counter()
    x0, p = _inputs(job)
    sol = flowsim.reference_solve(SYSTEM, x0, T, p, chunk_size=job[1] - job[0], **SOLVER)
    t1 = time.perf_counter()
    xr.Dataset({"x": (("trajectory", "time", "state"), sol.x.numpy()),
                "params": (("trajectory", "param"), sol.p.numpy())}).to_zarr(
        store, region={"trajectory": slice(job[0], job[1])}, consolidated=False)
    return {"solve_s": t1 - t0, "write_s": time.perf_counter() - t1, "pid": os.getpid()}


def dask_naive(store: Path, n: int, chunk: int, seed: int) -> dict:
    """``client.map`` of :func:`_naive_task` on a default ``LocalCluster(n_workers=2)``."""
    import dask.array as da
    import xarray as xr
    from distributed import Client, LocalCluster, wait

    system = flowsim.get_system(SYSTEM)
    template = xr.Dataset({
        "x": (("trajectory", "time", "state"),
              da.zeros((n, T.numel(), system.dim), chunks=(chunk, -1, -1))),
        "params": (("trajectory", "param"), da.zeros((n, system.n_params), chunks=(chunk, -1)))},
        coords={"time": T.numpy()})
    template.to_zarr(store, compute=False, consolidated=False)
    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        client.run(lambda: torch.get_num_threads())  # workers up and torch imported
        t1 = time.perf_counter()
        futures = client.map(_naive_task, [str(store)] * len(_chunks(n, chunk, seed)),
                             _chunks(n, chunk, seed), pure=False)
        wait(futures)
        reports = client.gather(futures)
        run = time.perf_counter() - t1
    return {"startup_s": t1 - t0, "run_s": run, "solve_s": sum(r["solve_s"] for r in reports),
            "write_s": sum(r["write_s"] for r in reports), "workers": len({r["pid"] for r in reports})}


def dask_default_client(store: Path, n: int, chunk: int, seed: int) -> dict:
    """``simulate_ensemble`` on a user's default ``LocalCluster(n_workers=2)`` (tuned at run time)."""
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        startup = time.perf_counter() - t0
        stats = run_simulate(store, n, chunk, seed, client)
    stats["startup_s"] += startup
    return stats


def diagnose(chunk: int) -> list[dict]:
    """Throughput of one chunk in a fresh process under each environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "OMP_", "MKL_", "OPENBLAS_"))}
    nanny = {"MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    cases = [
        ("plain process, 1 thread", {}, 1, False),
        ("dask nanny default env (MALLOC_TRIM_THRESHOLD_=65536)", nanny, 1, False),
        ("nanny env + flowsim tune_malloc() at run time", nanny, 1, True),
        ("flowsim WORKER_ENV", dict(WORKER_ENV), 1, False),
        ("plain process, 2 torch threads", {}, 2, False),
    ]
    out = []
    for name, env, threads, tune in cases:
        res = subprocess.run([sys.executable, "-c", DIAGNOSE, str(chunk), str(threads), str(int(tune))],
                             env={**base, **env}, capture_output=True, text=True, check=True)
        rate = float(res.stdout.strip().splitlines()[-1])
        out.append({"case": name, "env": env, "torch_threads": threads, "tune_malloc": tune,
                    "traj_per_s": rate})
        print(f"  diagnose {name:55s} {rate:8.0f} traj/s", flush=True)
    return out


def summarise(name: str, n: int, stats: dict) -> dict:
    workers = max(1, int(stats.get("workers", 1)))
    run = stats["run_s"]
    return {
        "config": name, "n": n, "run_s": run, "startup_s": stats.get("startup_s", 0.0),
        "traj_per_s": n / run, "traj_per_s_with_startup": n / (run + stats.get("startup_s", 0.0)),
        "solve_s_total": stats["solve_s"], "write_s_total": stats["write_s"], "workers": workers,
        "write_share_of_wall": stats["write_s"] / (workers * run),
    }


def markdown_table(results: list[dict]) -> str:
    """The results as the Markdown table used in docs/ensembles.md."""
    rows = ["| config | traj/s | vs serial | vs serial, speed-normalised | run (s) | start-up (s) | writing "
            "| other processes (cores) |",
            "|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r['config']} | {r['traj_per_s']:.0f} | {r['speedup_vs_serial']:.2f}x "
                    f"| {r['speedup_vs_serial_normalised']:.2f}x | {r['run_s']:.1f} | {r['startup_s']:.1f} "
                    f"| {100 * r['write_share_of_wall']:.1f} % | {r.get('others_cores_during', 0.0):.2f} |")
    return "\n".join(rows)


def by_round(results: list[dict]) -> dict[str, list[float]]:
    """Each configuration's throughput over the serial run of the same round (the host's speed
    drifts between minutes, so rounds are compared with themselves)."""
    serial = next(r for r in results if r["config"] == "serial")["all_traj_per_s"]
    return {r["config"]: [v / s for v, s in zip(r["all_traj_per_s"], serial)] for r in results}


def plot(results: list[dict], diag: list[dict], n: int, chunk: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1.3, 1]})
    ratios = by_round(results)
    names = list(ratios)
    rounds = max(len(v) for v in ratios.values())
    width = 0.8 / rounds
    for k in range(rounds):
        xs = [i + (k - (rounds - 1) / 2) * width for i in range(len(names))]
        vals = [ratios[m][k] if k < len(ratios[m]) else 0.0 for m in names]
        bars = a.bar(xs, vals, width=width * 0.95, label=f"round {k + 1}", color=f"C{k}")
        for bar, v in zip(bars, vals):
            a.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.2f}x", ha="center", va="bottom", fontsize=7)
    writes = {r["config"]: r["write_share_of_wall"] for r in results}
    ticks = [f"{m}\nwrite {100 * writes[m]:.1f}%" if m != "torch_2proc" else m for m in names]
    a.set_xticks(range(len(names)), ticks, fontsize=8)
    a.axhline(1.8, color="k", lw=0.6, ls=":", label="target 1.8x")
    a.set_ylabel("throughput / serial throughput of the same round")
    a.set_title(f"FitzHugh-Nagumo ensemble, n={n} per run, chunk {chunk}, {os.cpu_count()} cores")
    a.set_ylim(0, 2.4)
    a.legend(fontsize=8, loc="upper left")
    labels = [d["case"].replace(" (", "\n(").replace(" + ", "\n+ ") for d in diag]
    b.barh(labels, [d["traj_per_s"] for d in diag], color="#4c72b0")
    b.invert_yaxis()
    b.set_xlabel("trajectories / s, one process, one chunk")
    b.set_title("why: per-process solve speed by environment")
    b.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--chunk-size", type=int, default=4096)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="interleaved repeats; the best run is reported")
    ap.add_argument("--skip", nargs="*", default=[], help="configs to skip")
    ap.add_argument("--replot", default=None, help="redraw the figure from this JSON; runs nothing")
    ap.add_argument("--max-wait", type=float, default=60.0,
                    help="seconds to wait, before each config, for other processes to go quiet")
    ap.add_argument("--smoke", action="store_true",
                    help="1,024 trajectories in chunks of 256, one round, no waiting")
    _record.add_arguments(ap)
    args = ap.parse_args()
    if args.replot:
        data = json.loads(Path(args.replot).read_text())["results"]
        plot(data["results"], data["diagnosis_one_chunk"], data["n"], data["chunk_size"]).savefig(
            Path(args.replot).with_suffix(".png"), dpi=110)
        return
    if args.smoke:
        args.n, args.chunk_size, args.repeat, args.max_wait = 1024, 256, 1, 0.0
    n, chunk = args.n, args.chunk_size
    tmp = Path(tempfile.mkdtemp(prefix="flowsim-bench-"))
    load_before = os.getloadavg()
    t_start = time.perf_counter()
    results, stores = [], {}
    try:
        print("diagnosis (one chunk per fresh process):", flush=True)
        wait_for_quiet(args.max_wait)
        diag = diagnose(chunk)
        runs = [
            ("serial", lambda s: run_simulate(s, n, chunk, args.seed, "sync")),
            ("torch_2proc", lambda s: torch_two_processes(n, chunk, args.seed)),
            ("dask_naive", lambda s: dask_naive(s, n, chunk, args.seed)),
            ("dask_user_client", lambda s: dask_default_client(s, n, chunk, args.seed)),
            ("dask_tuned", lambda s: run_simulate(s, n, chunk, args.seed, None)),
        ]
        all_runs: dict[str, list[dict]] = {}
        for rep in range(args.repeat):  # interleaved, so slow background load hits every config alike
            for name, fn in runs:
                if name in args.skip:
                    continue
                store = tmp / f"{name}-{rep}.zarr"
                quiet = wait_for_quiet(args.max_wait)
                calib = calibrate()
                environ = dict(os.environ)  # a plain LocalCluster's nanny writes its env into ours
                b0, o0, t0 = _busy_cpu_s(), _own_cpu_s(), time.perf_counter()
                try:
                    res = summarise(name, n, fn(store))
                finally:
                    os.environ.clear()
                    os.environ.update(environ)
                elapsed = time.perf_counter() - t0
                res["calibration_traj_per_s"] = 0.5 * (calib + calibrate())
                res["normalised_throughput"] = res["traj_per_s"] / res["calibration_traj_per_s"]
                res["others_cores_before"] = quiet
                res["others_cores_during"] = max(0.0, (_busy_cpu_s() - b0 - (_own_cpu_s() - o0)) / elapsed)
                all_runs.setdefault(name, []).append(res)
                if store.exists() and name not in stores:
                    stores[name] = store
                print(f"{name:16s} {res['traj_per_s']:8.0f} traj/s  run {res['run_s']:6.1f} s  start-up "
                      f"{res['startup_s']:4.1f} s  write share {100 * res['write_share_of_wall']:4.1f}%  "
                      f"other processes used {res['others_cores_during']:.2f} cores", flush=True)
        for reps in all_runs.values():  # best of the repeats: the least disturbed run
            best = dict(max(reps, key=lambda r: r["normalised_throughput"]))
            best["all_traj_per_s"] = [r["traj_per_s"] for r in reps]
            best["all_normalised_throughput"] = [r["normalised_throughput"] for r in reps]
            results.append(best)
        serial = next(r for r in results if r["config"] == "serial")
        for r in results:
            r["speedup_vs_serial"] = r["traj_per_s"] / serial["traj_per_s"]
            r["speedup_vs_serial_normalised"] = r["normalised_throughput"] / serial["normalised_throughput"]
        for r, ratios in zip(results, by_round(results).values()):
            r["speedup_vs_serial_by_round"] = ratios
        import xarray as xr

        ref = None
        identical = {}
        for name, store in stores.items():
            if name == "dask_naive":  # its own draws and layout: not a simulate_ensemble store
                continue
            x = np.asarray(xr.open_zarr(store, consolidated=False).x.values)
            ref = x if ref is None else ref
            identical[name] = bool(x.tobytes() == ref.tobytes())
        out = {
            "benchmark": "ensemble throughput", "system": SYSTEM, "n": n, "chunk_size": chunk,
            "repeat": args.repeat, "n_times": int(T.numel()), "t_end": float(T[-1]), "solver": SOLVER,
            "params": "prior",
            "store_nbytes": n * int(T.numel()) * 2 * 8,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "results": results, "diagnosis_one_chunk": diag, "identical_bytes_across_configs": identical,
            "benchmark_wall_s": time.perf_counter() - t_start,
        }
        print(markdown_table(results))
        print(f"{out['benchmark_wall_s']:.0f} s; identical bytes: {identical}")
        _record.record("ensemble", out, tag=args.tag, figure=plot(results, diag, n, chunk),
                       results_dir=args.results_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
