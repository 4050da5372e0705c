"""Jump throughput: states per second against batch size, float32 and bfloat16, error beside it.

One jump of a 3-state system (SIR) through the default-sized 128×6 flow map, for batches from 10³
up to ``--max-batch`` states, timed as the minimum of ``--repeats`` runs after a warm-up, under
``torch.no_grad``. The map's weights are random (throughput does not depend on training); the
error column is what bfloat16 inference changes: the median normalised difference between the
bf16 and float32 outputs, in units of each state's standard deviation over the batch, next to
the median normalised length of the jump itself. Big batches go through ``jump``'s automatic
chunking (``flowsim.maps.auto_chunk_size``), as a user's call would.

    python benchmarks/throughput.py                        # CPU, up to 10^6 states (~2 min, idle)
    python benchmarks/throughput.py --device cuda --max-batch 100000000
    python benchmarks/throughput.py --ensemble 2 4         # K members: vmapped call vs loop
    python benchmarks/throughput.py --backbones resnet mlp --max-batch 100000 --tag backbones
    python benchmarks/throughput.py --smoke --results-dir /tmp/bench-smoke

Writes ``benchmarks/results/throughput/<date>-<commit>[-<tag>].json`` and ``.png``
(``benchmarks/_record.py``), with the machine's load before timing (``flowsim.analysis.machine_load``).
"""

from __future__ import annotations

import argparse
import time

import torch

import flowsim
from flowsim.analysis import machine_load
from flowsim.maps.networks import BACKBONES
from flowsim.metrics import normalised_error, state_std

try:
    from . import _record
except ImportError:  # run as a script
    import _record


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fm: flowsim.FlowMap, n: int, precision: str, repeats: int, device: torch.device) -> dict:
    """Time one jump of ``n`` SIR states; return states/s and the outputs' error columns."""
    g = torch.Generator().manual_seed(n)
    x = fm.system.sample_initial(n, generator=g).to(device=device, dtype=fm.dtype)
    p = fm.sample_params(n, generator=g).to(device=device, dtype=fm.dtype)
    t = torch.full((n,), 0.5 * fm.max_jump, device=device, dtype=fm.dtype)
    s = torch.zeros_like(t)
    with torch.no_grad():
        fm.jump(x[:1024], s[:1024], t[:1024], p[:1024], precision=precision)  # warm-up
        best = float("inf")
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            y = fm.jump(x, s, t, p, precision=precision)
            _sync(device)
            best = min(best, time.perf_counter() - t0)
    return {"n": n, "precision": precision, "seconds": best, "states_per_s": n / best, "y": y, "x": x}


def _map(backbone: str, device: torch.device):
    torch.manual_seed(0)
    fm = flowsim.FlowMap("sir", width=128, depth=6, backbone=backbone).to(device)
    with torch.no_grad():            # the last layer starts at zero: random weights for realism
        for w in fm.parameters():
            w.add_(0.05 * torch.randn_like(w))
    return fm


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    maps = {b: _map(b, device) for b in args.backbones}
    sizes = [10**k for k in range(3, 20) if 10**k <= args.max_batch]
    load = machine_load()
    rows = []
    for n in sizes:
        for backbone, fm in maps.items():  # side by side in this process, size by size
            f32 = measure(fm, n, "float32", args.repeats, device)
            b16 = measure(fm, n, "bfloat16", args.repeats, device)
            sigma = state_std(f32["y"].double().cpu())
            dev_b16 = normalised_error(b16["y"].double().cpu(), f32["y"].double().cpu(), sigma).median()
            step = normalised_error(f32["y"].double().cpu(), f32["x"].double().cpu(), sigma).median()
            for r in (f32, b16):
                rows.append({"backbone": backbone, **{k: v for k, v in r.items() if k not in ("y", "x")}})
            rows[-1]["median_normalised_difference_from_float32"] = float(dev_b16)
            rows[-1]["median_normalised_jump_length"] = float(step)
            print(f"{n:>11,d}  {backbone:6s}  float32 {f32['states_per_s']:.3g}/s  bfloat16 "
                  f"{b16['states_per_s']:.3g}/s  bf16 deviation {float(dev_b16):.2e} of a jump of "
                  f"{float(step):.2e} (normalised)", flush=True)
    return {"system": "sir", "network": " and ".join(f"{b} 128x6" for b in maps), "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch_threads": torch.get_num_threads(), "machine_load": load.to_dict(), "rows": rows}


def plot(results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    backbones = list(dict.fromkeys(row.get("backbone", "mlp") for row in results["rows"]))
    for prec, style in (("float32", "o-"), ("bfloat16", "s--")):
        for b in backbones:
            r = [row for row in results["rows"] if row["precision"] == prec
                 and row.get("backbone", "mlp") == b]
            ax.loglog([x["n"] for x in r], [x["states_per_s"] for x in r], style,
                      label=f"{b}, {prec}" if len(backbones) > 1 else prec)
    ax.set_xlabel("states per call")
    ax.set_ylabel("states per second (one jump)")
    ax.set_title(f"Jump throughput, 128x6 map, SIR, {results['device_name']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def ensemble_rows(args) -> dict:
    """``--ensemble K …``: one jump of K stacked 128×6 members (each with its own weights and
    normalisation, as ``fit_ensemble`` trains them) as one vmapped call against the member loop,
    both under ``torch.no_grad``, minimum of ``--repeats`` runs, side by side in this process."""
    device = torch.device(args.device)
    sysm = flowsim.get_system("fitzhugh_nagumo")
    torch.manual_seed(0)
    members = [flowsim.FlowMap(sysm, width=128, depth=6, seed=k).to(device)
               for k in range(max(args.ensemble))]
    with torch.no_grad():
        for k, m in enumerate(members):
            for w in m.parameters():
                w.add_(0.05 * torch.randn_like(w))
            m.velocity_scale.mul_(1 + 0.01 * k)
    rows = []
    for k in args.ensemble:
        ens = flowsim.FlowMapEnsemble(members[:k]).eval()
        for n in (10**3, min(10**5, args.max_batch)):
            x = sysm.sample_initial(n, 1).float().to(device)
            p = sysm.sample_params(n, 2).float().to(device)
            times: dict[str, float] = {}
            for mode in (True, False, True, False):
                ens.vectorise = mode
                with torch.no_grad():
                    ens.jump(x, 0.0, 5.0, p)  # warm-up
                    best = float("inf")
                    for _ in range(args.repeats):
                        _sync(device)
                        t0 = time.perf_counter()
                        ens.jump(x, 0.0, 5.0, p)
                        _sync(device)
                        best = min(best, time.perf_counter() - t0)
                key = "vmapped_s" if mode else "loop_s"
                times[key] = min(times.get(key, best), best)
            ratio = times["loop_s"] / times["vmapped_s"]
            rows.append({"members": k, "n": n, **times, "loop_over_vmapped": ratio})
            print(f"{k} members, {n:7d} states: vmapped {1e3 * times['vmapped_s']:.1f} ms, loop "
                  f"{1e3 * times['loop_s']:.1f} ms (loop / vmapped {ratio:.2f})", flush=True)
    return {"device": str(device), "rows": rows, "machine_load_before": machine_load().to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-batch", type=int, default=10**6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="10^3-10^4 states, one repeat")
    parser.add_argument("--backbones", nargs="+", default=[BACKBONES[0]], choices=list(BACKBONES),
                        help="the maps' networks, timed side by side (resnet: the default)")
    parser.add_argument("--ensemble", type=int, nargs="+", default=None, metavar="K",
                        help="ensembles of K members: one vmapped call against the member loop")
    _record.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.max_batch, args.repeats = 10**4, 1
    if args.ensemble:
        path = _record.record("throughput", ensemble_rows(args), tag=args.tag or "ensemble",
                              results_dir=args.results_dir)
        print(f"wrote {path}")
        return
    results = run(args)
    path = _record.record("throughput", results, tag=args.tag, figure=plot(results),
                          results_dir=args.results_dir)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
