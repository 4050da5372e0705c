"""Is the error of a jump from the initial states the flow's sensitivity there?

A map's jumps from the initial states are several times worse than its jumps from states along
the trajectories (issue 17). One explanation: the exact flow is steeper there. From a state in
the transient, far from the attractor, where a trajectory lands after a long jump can depend
sharply on where it started (near an unstable focus, around which the isochrons of a limit cycle
wind), and a steep function is harder to fit. This script measures it for a trained map:

* for ``--n`` fresh initial states and parameters (the map's prior) it solves the reference flow
  (dopri5 at 1e-10 / 1e-12, or scipy Radau for stiff systems) from each state and from central
  finite-difference perturbations of it, and takes the sensitivity
  ``S = ‖diag(1/σ) ∂X/∂x₀ diag(σ)‖₂`` of the landing state after each jump (σ: the per-state
  spread of the reference data, the normalised error's);
* the same for starts along the trajectories (the state one timescale after the initial one);
* the map's normalised error of each jump, and its median per decile of ``S``, for both kinds of
  start;
* how far each start travels in the jump, ``‖X − x₀‖`` in σ units, the error per distance
  travelled, and the error the starts from x0 would have at the along-trajectory error of starts
  that travel as far (how much of the gap the longer transient explains).

If the two kinds of start have the same error at the same sensitivity (or distance), the gap
between them is the flow's sensitivity (or the distance), not a lack of training near the
initial states::

    python benchmarks/x0_sensitivity.py --model MODELS/fitzhugh_nagumo-pairs --jumps 0.1 1

Writes ``benchmarks/results/x0_sensitivity/`` (JSON and PNG, tag ``--tag``, default the system).
"""

from __future__ import annotations

import argparse

import _record
import numpy as np
import torch

import flowsim
from flowsim.metrics import normalised_error, state_std


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a saved map (flowsim.save / --save-models)")
    ap.add_argument("--n", type=int, default=2000, help="initial states (and parameters) drawn")
    ap.add_argument("--jumps", type=float, nargs="+", default=[0.1, 1.0],
                    help="jump sizes, in timescales")
    ap.add_argument("--delta", type=float, default=1e-5,
                    help="finite-difference step, in units of each state's spread σ")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--threads", type=int, default=None)
    _record.add_arguments(ap)
    return ap


def solve(system, x0, p, t):
    """Reference states ``(n, len(t), dim)`` (float64)."""
    if system.stiff:
        opts = flowsim.SolverOptions(backend="scipy", method="Radau", rtol=1e-10, atol=1e-14, stacked=True)
        sol = flowsim.reference_solve(system, x0, t, p, opts, chunk_size=128)
    else:
        sol = flowsim.reference_solve(system, x0, t, p, rtol=1e-10, atol=1e-12, chunk_size=4096)
    return sol.x


def sensitivity(system, x, p, times, sigma, delta):
    """``(n, len(times))`` spectral norms of the flow's Jacobian from ``x`` over each time in
    ``times`` (in σ units), by central differences, and the unperturbed landing states."""
    n, dim = x.shape
    steps = torch.eye(dim, dtype=torch.float64) * (delta * sigma)  # (dim, dim)
    starts = torch.cat([x] + [x + steps[i] for i in range(dim)] + [x - steps[i] for i in range(dim)])
    t = torch.cat([torch.zeros(1, dtype=torch.float64), times])
    out = solve(system, starts, p.repeat(2 * dim + 1, 1), t)[:, 1:]      # ((2d+1) n, J, dim)
    land = out[:n]
    plus, minus = out[n:(dim + 1) * n], out[(dim + 1) * n:]
    cols = (plus - minus).reshape(dim, n, len(times), dim) / (2 * delta)  # column i: ∂X/∂(x_i/σ_i)
    jac = cols.permute(1, 2, 3, 0) / sigma[:, None]                       # (n, J, dim_out, dim_in)
    return torch.linalg.matrix_norm(jac, ord=2), land


def deciles(s, e):
    """Median error per decile of the sensitivity: ``[(median S, median error, count)]``."""
    ok = torch.isfinite(s) & torch.isfinite(e)
    s, e = s[ok], e[ok]
    edges = torch.quantile(s, torch.linspace(0, 1, 11, dtype=s.dtype))
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (s >= lo) & (s <= hi)
        rows.append((float(s[m].median()), float(e[m].median()), int(m.sum())))
    return rows


def spearman(a, b):
    from scipy.stats import spearmanr

    ok = torch.isfinite(a) & torch.isfinite(b)
    return float(spearmanr(a[ok].numpy(), b[ok].numpy()).statistic)


def main(argv=None):
    args = parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    fm = flowsim.load(args.model)
    system = fm.system
    T = system.timescale
    g = torch.Generator().manual_seed(args.seed)
    x0 = system.sample_initial(args.n, g).double()
    p = fm.sample_params(args.n, g)
    jumps = torch.tensor(args.jumps, dtype=torch.float64) * T
    # the spread σ of the reference data over the first two timescales (the normalised error's)
    grid = torch.linspace(0, 2 * T, 81, dtype=torch.float64)
    ref = solve(system, x0, p, grid)
    sigma = state_std(ref.reshape(-1, ref.shape[-1]))
    along = ref[:, 40]  # the state one timescale after the initial one
    results = {"system": system.name, "model": str(args.model), "n": args.n, "delta": args.delta,
               "sigma": sigma.tolist(), "jumps": []}
    data = {}
    for kind, start in (("from the initial states", x0), ("along the trajectories", along)):
        S, land = sensitivity(system, start, p, jumps, sigma, args.delta)
        for j, h in enumerate(jumps.tolist()):
            dev, dt = fm.device, fm.dtype
            n = start.shape[0]
            with torch.no_grad():
                pred = fm(torch.zeros(n, device=dev, dtype=dt), torch.full((n,), h, device=dev, dtype=dt),
                          start.to(dev, dt), p.to(dev, dt)).double().cpu()
            err = normalised_error(pred, land[:, j], sigma)
            travel = normalised_error(start, land[:, j], sigma)  # how far the state moves
            data[(kind, j)] = (S[:, j], err, travel)
    for j, h in enumerate(jumps.tolist()):
        row = {"jump_T": h / T}
        for kind in ("from the initial states", "along the trajectories"):
            s, e, d = data[(kind, j)]
            row[kind] = {"median_error": float(e.nanmedian()), "median_sensitivity": float(s.nanmedian()),
                         "spearman": spearman(s, e), "deciles": deciles(s, e),
                         "median_travel": float(d.nanmedian()), "spearman_travel": spearman(d, e),
                         "median_error_per_travel": float((e / d).nanmedian()),
                         "travel_deciles": deciles(d, e)}
        # the from-x0 errors predicted by the along-trajectory error at the same sensitivity
        s0, _, d0 = data[("from the initial states", j)]
        sa, ea, da = data[("along the trajectories", j)]
        row["from_x0_error_at_along_error_for_its_sensitivity"] = _matched(s0, sa, ea)
        row["from_x0_error_at_along_error_for_its_travel"] = _matched(d0, da, ea)
        results["jumps"].append(row)
        print(f"{system.name} jump {h / T:.3g} T:")
        for kind in ("from the initial states", "along the trajectories"):
            r = row[kind]
            print(f"  {kind:25s} median error {r['median_error']:.2e}  median S {r['median_sensitivity']:.3g}"
                  f"  Spearman(S, error) {r['spearman']:.2f}  median travel {r['median_travel']:.2e}"
                  f"  Spearman(travel, error) {r['spearman_travel']:.2f}"
                  f"  median error/travel {r['median_error_per_travel']:.2e}")
        print(f"  median error from x0 if it followed the along-trajectory error at each S: "
              f"{row['from_x0_error_at_along_error_for_its_sensitivity']:.2e}, at each distance "
              f"travelled: {row['from_x0_error_at_along_error_for_its_travel']:.2e}")
    _record.record("x0_sensitivity", results, tag=args.tag or system.name,
                   figure=plot(system.name, jumps / T, data), results_dir=args.results_dir)


def _matched(s0, sa, ea, bins=10):
    """Median over the from-x0 starts of the along-trajectory error at their sensitivity (the
    along-trajectory median error in the log-spaced sensitivity bin each from-x0 start falls in;
    starts outside the along-trajectory range take the nearest bin)."""
    ok = torch.isfinite(sa) & torch.isfinite(ea)
    ls, le = sa[ok].log(), ea[ok]
    edges = torch.quantile(ls, torch.linspace(0, 1, bins + 1, dtype=ls.dtype))
    med = [float(le[(ls >= lo) & (ls <= hi)].median()) for lo, hi in zip(edges[:-1], edges[1:])]
    idx = torch.bucketize(s0[torch.isfinite(s0)].log(), edges[1:-1])
    return float(np.median(np.array(med)[idx.numpy()]))


def plot(name, jumps_T, data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    J = len(jumps_T)
    fig, axes = plt.subplots(2, J, figsize=(4.6 * J, 7.6), squeeze=False)
    for row, (k, xlabel) in enumerate(((0, "sensitivity ‖∂X/∂x₀‖ (σ units)"),
                                       (2, "distance travelled ‖X − x₀‖ (σ units)"))):
        for j, ax in enumerate(axes[row]):
            for c, kind in (("C3", "from the initial states"), ("C0", "along the trajectories")):
                v, e = data[(kind, j)][k], data[(kind, j)][1]
                ax.loglog(v.numpy(), e.numpy(), ".", color=c, alpha=0.12, ms=2)
                rows = deciles(v, e)
                ax.loglog([r[0] for r in rows], [r[1] for r in rows], "o-", color=c,
                          label=f"{kind} (decile medians)")
            ax.axhline(1e-3, color="k", lw=0.8, ls=":")
            ax.set_title(f"{name}: jump {float(jumps_T[j]):.2g} T")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("normalised error of the map's jump")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
