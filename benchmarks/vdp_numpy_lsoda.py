"""The floor for a scipy user on the stiff Van der Pol: hand-written numpy LSODA against the map.

``work_precision.py --scipy-per-trajectory`` times scipy through flowsim's solve layer (the
system's numpy vector field and Jacobian, one ``solve_ivp`` per trajectory). A user who writes
the two functions as scalar numpy code and calls ``solve_ivp`` directly pays less per call. This
times exactly that, on the same 10⁴ states as ``work_precision.py`` (the first ``--k`` of them,
scaled), against the map's jumps in the same process, and measures both errors against the same
LSODA reference (rtol 1e-10, on the first ``--n-reference`` states):

    python benchmarks/vdp_numpy_lsoda.py --model MODELS/van_der_pol-pairs --threads 2
    python benchmarks/vdp_numpy_lsoda.py --smoke --results-dir /tmp/bench-smoke

Writes ``benchmarks/results/vdp_numpy_lsoda/<date>-<commit>[-<tag>].json`` and replaces
``latest[-<tag>].json`` (``benchmarks/_record.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.integrate import solve_ivp

import flowsim

sys.path.insert(0, str(Path(__file__).parent))
import _record  # noqa: E402


def lsoda(x0: np.ndarray, mu: np.ndarray, horizon: float, tol: float) -> np.ndarray:
    """One ``solve_ivp`` per state with scalar numpy right-hand side and Jacobian."""
    out = np.empty_like(x0)
    for k, (x, m) in enumerate(zip(x0, mu)):
        def f(t, y, m=m):
            return np.array([y[1], m * (1 - y[0] * y[0]) * y[1] - y[0]])

        def jac(t, y, m=m):
            return np.array([[0.0, 1.0], [-2 * m * y[0] * y[1] - 1, m * (1 - y[0] * y[0])]])

        out[k] = solve_ivp(f, (0.0, horizon), x, method="LSODA", rtol=tol, atol=tol, jac=jac).y[:, -1]
    return out


def median_rel(x: np.ndarray, ref: np.ndarray) -> float:
    return float(np.median(np.linalg.norm(x - ref, axis=1) / np.linalg.norm(ref, axis=1)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a saved map of van_der_pol at mu=1000")
    ap.add_argument("--n", type=int, default=10_000, help="states (the map jumps all of them)")
    ap.add_argument("--k", type=int, default=500, help="states LSODA solves (time scaled to --n)")
    ap.add_argument("--n-reference", type=int, default=200)
    ap.add_argument("--tolerances", type=float, nargs="+", default=[1e-3, 1e-4, 1e-5, 1e-6])
    ap.add_argument("--jumps", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--smoke", action="store_true", help="seconds: an untrained tiny map, 20 states")
    _record.add_arguments(ap)
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    system = flowsim.get_system("van_der_pol", mu=1000.0)
    if a.smoke:
        a.n, a.k, a.n_reference, a.tolerances, a.jumps = 20, 4, 4, [1e-3], [1]
        fm = flowsim.FlowMap(system, width=8, depth=1)
    else:
        fm = flowsim.load(a.model)
    T = system.timescale
    g = torch.Generator().manual_seed(2024)  # the states and parameters of work_precision.py
    x0 = system.sample_initial(a.n, g)
    lo, hi = fm.param_transform.low.double(), fm.param_transform.high.double()
    p = lo + (hi - lo) * torch.rand(a.n, 1, generator=g, dtype=torch.float64)
    m = a.n_reference
    ref = lsoda(x0[:m].numpy(), p[:m, 0].numpy(), T, 1e-10)
    rows = []
    xf, pf = x0.to(fm.dtype), p.to(fm.dtype)
    for n_jumps in a.jumps:
        with torch.no_grad():
            fm.jump(xf, 0.0, T / n_jumps, pf)  # warm-up
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                x = xf
                for _ in range(n_jumps):
                    x = fm.jump(x, 0.0, T / n_jumps, pf)
                best = min(best, time.perf_counter() - t0)
        rows.append(dict(method="flowmap", n_jumps=n_jumps, seconds=best,
                         median_relative_error=median_rel(x[:m].double().numpy(), ref)))
    xs, mus = x0[: a.k].numpy(), p[: a.k, 0].numpy()
    for tol in a.tolerances:
        t0 = time.perf_counter()
        y = lsoda(xs, mus, T, tol)
        seconds = (time.perf_counter() - t0) * a.n / a.k
        rows.append(dict(method="numpy_lsoda", tolerance=tol, seconds=seconds,
                         median_relative_error=median_rel(y[:m], ref[: min(m, a.k)])))
    for r in rows:
        print({k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
    speedups = []
    for r in (r for r in rows if r["method"] == "flowmap"):
        ok = [s for s in rows if s["method"] == "numpy_lsoda"
              and s["median_relative_error"] <= r["median_relative_error"]]
        if ok:
            s = min(ok, key=lambda s: s["seconds"])
            speedups.append(dict(n_jumps=r["n_jumps"], map_error=r["median_relative_error"],
                                 solver_tolerance=s["tolerance"], speedup=s["seconds"] / r["seconds"]))
            print(f"{r['n_jumps']} jump(s) at {r['median_relative_error']:.2e}: "
                  f"{s['seconds'] / r['seconds']:.0f}x over numpy LSODA (tol {s['tolerance']:g})", flush=True)
    _record.record("vdp_numpy_lsoda", {"n": a.n, "k": a.k, "n_reference": m, "rows": rows,
                                       "speedups_at_matched_error": speedups,
                                       "note": "LSODA on one core, time scaled from k states to n; "
                                               "the map on the torch threads of this process"},
                   tag=a.tag, results_dir=a.results_dir)


if __name__ == "__main__":
    main()
