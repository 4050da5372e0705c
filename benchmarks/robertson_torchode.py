"""Are torchode's "successful" samples on the stiff Robertson system right?

torchode dopri5 at rtol = atol = 1e-3 returns on Robertson in seconds, with a few samples flagged
as failed (the work-precision benchmark's "no usable answer" rests on this check). This solves
``--n`` prior states over one timescale, reruns the samples it called successful without the
failed ones, and compares ``--n-check`` of them with scipy Radau at 1e-10: the median relative
error says whether "successful" means "solved".

    python benchmarks/robertson_torchode.py            # needs: pip install torchode
    python benchmarks/robertson_torchode.py --smoke --results-dir /tmp/bench-smoke

Writes ``benchmarks/results/robertson_torchode/<date>-<commit>[-<tag>].json`` and replaces
``latest[-<tag>].json`` there (``benchmarks/_record.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torchode as to

import flowsim

sys.path.insert(0, str(Path(__file__).parent))
import _record  # noqa: E402


def solve(system, x0, p, tol):
    term = to.ODETerm(lambda t, y: system.vector_field(t, y, p))
    ctrl = to.IntegralController(atol=tol, rtol=tol, term=term)
    t_eval = torch.tensor([0.0, system.timescale], dtype=torch.float64).expand(len(x0), 2)
    return to.solve_ivp(term, x0, t_eval, method="dopri5", controller=ctrl, max_steps=20_000)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="prior states solved by torchode")
    ap.add_argument("--n-check", type=int, default=50, help="'successful' samples checked with Radau")
    ap.add_argument("--tol", type=float, default=1e-3, help="torchode rtol = atol")
    ap.add_argument("--smoke", action="store_true", help="seconds: 40 states, 5 checked")
    _record.add_arguments(ap)
    a = ap.parse_args(argv)
    if a.smoke:
        a.n, a.n_check = 40, 5
    system = flowsim.get_system("robertson")
    g = torch.Generator().manual_seed(2024)
    x0, p = system.sample_initial(a.n, g), system.sample_params(a.n, g)
    t0 = time.perf_counter()
    first = solve(system, x0, p, a.tol)
    seconds = time.perf_counter() - t0
    status = torch.as_tensor(first.status)
    ok = status == 0
    counts = torch.bincount(status.long()).tolist()
    print(f"torchode rtol=atol={a.tol:g}: {seconds:.1f} s, status counts {counts} (0 = success)")
    again = solve(system, x0[ok], p[ok], a.tol)
    m = min(a.n_check, int(ok.sum()))
    grid = torch.tensor([0.0, system.timescale], dtype=torch.float64)
    ref = flowsim.reference_solve(system, x0[ok][:m], grid, p[ok][:m], backend="scipy", method="Radau",
                                  rtol=1e-10, atol=1e-14)
    results = {"n": a.n, "tol": a.tol, "torchode_seconds": seconds, "status_counts": counts,
               "n_checked": m}
    for key, name, sol in (("with_failed_in_batch", "with the failed samples in the batch", first.ys[ok]),
                           ("without_failed", "without them", again.ys)):
        err = (sol[:m, -1] - ref.x[:, -1]).norm(dim=-1) / ref.x[:, -1].norm(dim=-1)
        results[f"median_relative_error_{key}"] = float(err.median())
        print(f"  'successful' samples, {name}: median relative error {err.median():.2g} vs Radau 1e-10")
    _record.record("robertson_torchode", results, tag=a.tag, results_dir=a.results_dir)


if __name__ == "__main__":
    main()
