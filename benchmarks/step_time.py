"""How long does one ``flowsim.fit`` step take, and how much of it is Muon's?

Default: milliseconds per training step on whatever device is here, at a few batch sizes — the
accuracy benchmark's recipe on FitzHugh–Nagumo (128×6 residual network, pair regression,
``early_fraction=0.25``, ``--optimizer`` muon) on 500 reference trajectories. Each batch size:
one warm-up ``fit``, then ``fit`` for 50 steps and for ``50 + --steps`` steps; the difference over
``--steps`` is the time of a step without the set-up and the final validation.

``--compare-muon``: ``torch.optim.Muon`` against flowsim's ``BatchedMuon`` (the Newton–Schulz
iterations of same-shaped matrices batched) with its iterations in float32 and in bfloat16, all
in one process on the same map, data and seed: first the optimiser step alone on the backbone's
matrices with random gradients, then whole ``fit`` calls of ``--steps`` steps at each batch size,
alternating the three ``--repeats`` times. This machine's speed drifts by tens of per cent within
minutes, so the figure to read is the median of the ratios of neighbouring runs.

    python benchmarks/step_time.py                                   # batches 1024 and 8192
    python benchmarks/step_time.py --device cuda --tag gpu-h200      # on a GPU
    python benchmarks/step_time.py --device cuda --cuda-graph --tag gpu-graph   # captured step
    python benchmarks/step_time.py --optimizer adamw --tag adamw     # or --ns-dtype float32
    python benchmarks/step_time.py --compare-muon --batches 512 1024 --steps 400 --threads 2
    python benchmarks/step_time.py --compare-backbones --batches 512 --steps 400 --threads 1
    python benchmarks/step_time.py --members 2 4 8 --batches 1024 --steps 200   # ensembles
    python benchmarks/step_time.py --smoke --results-dir /tmp/bench-smoke   # seconds

``--compare-backbones``: the residual network (``FlowMap``'s default) against the plain MLP of
the same width and depth, ms per step as (fit of 50 + ``--steps``) − (fit of 50), alternating
the two ``--repeats`` times in one process; the figure to read is the median ratio.

``--members K …``: K members stacked (one vmapped network, ``fit_ensemble(stacked=True)``)
against the process pool (one process per member, on a CPU) and one map, ms per step.

Writes ``benchmarks/results/step_time/<date>-<commit>[-<tag>].json`` and replaces
``latest[-<tag>].json`` there (``--compare-muon``: tag ``muon`` unless ``--tag`` is given).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import flowsim
from flowsim.maps.networks import BACKBONES
from flowsim.train import fit_ensemble, optim
from flowsim.train.muon import BatchedMuon

sys.path.insert(0, str(Path(__file__).parent))
import _record  # noqa: E402
from accuracy import NS_DTYPES, make_bank  # noqa: E402


def _batched(ns_dtype: torch.dtype | None):
    class _BatchedMuon(BatchedMuon):
        def __init__(self, params, **kw):
            super().__init__(params, ns_dtype=ns_dtype, **kw)

    return _BatchedMuon


class _TorchMuon(getattr(torch.optim, "Muon", object)):
    """``torch.optim.Muon``, answering fit's question about its Newton–Schulz dtype."""

    def ns_dtype_for(self, device) -> torch.dtype:
        return torch.bfloat16  # torch's Muon casts the gradient to bfloat16


THEIRS = "torch.optim.Muon"
IMPLS = {THEIRS: _TorchMuon if hasattr(torch.optim, "Muon") else None,
         "flowsim BatchedMuon (float32)": _batched(torch.float32),
         "flowsim BatchedMuon (bfloat16)": _batched(torch.bfloat16)}


def _fit(system, bank, steps, batch, a, *, muon_cls=None, validation=None,
         backbone: str = "resnet") -> float:
    """Seconds of one ``fit`` call of ``steps`` steps (Muon's class replaced by ``muon_cls``)."""
    if muon_cls is not None:
        optim.BatchedMuon = muon_cls  # what MuonAdamW builds
    try:
        fm = flowsim.FlowMap(system, width=a.width, depth=a.depth, backbone=backbone)
        t0 = time.perf_counter()
        flowsim.fit(fm, "pairs", bank, steps=steps, batch_size=batch, lr=5e-3, progress=False,
                    device=a.device, optimizer=a.optimizer, val_every=10**9, early_fraction=0.25,
                    jump_margin=0.1, max_jump=system.timescale, validation=validation,
                    cuda_graph=a.cuda_graph)
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    finally:
        optim.BatchedMuon = BatchedMuon


def step_times(system, a) -> list[dict]:
    """Milliseconds per step at each batch size: (fit of 50 + steps) − (fit of 50)."""
    bank, _ = make_bank(system, a.n_trajectories, 2.1 * system.timescale, 421, 0)
    cls = None if a.ns_dtype == "auto" else _batched(getattr(torch, a.ns_dtype))
    rows = []
    for batch in a.batches:
        _fit(system, bank, 20, batch, a, muon_cls=cls)  # warm-up
        short = _fit(system, bank, 50, batch, a, muon_cls=cls)
        long = _fit(system, bank, 50 + a.steps, batch, a, muon_cls=cls)
        rows.append({"batch": batch, "ms_per_step": 1e3 * (long - short) / a.steps})
        print(f"batch {batch:6d}: {rows[-1]['ms_per_step']:.2f} ms per step", flush=True)
    return rows


def compare_backbones(system, a) -> dict:
    """ms per step of each backbone at each batch size, alternating, and their median ratio."""
    bank, _ = make_bank(system, a.n_trajectories, 2.1 * system.timescale, 421, 0)
    out = {}
    for batch in a.batches:
        times: dict[str, list[float]] = {b: [] for b in BACKBONES}
        for b in BACKBONES:
            _fit(system, bank, 20, batch, a, backbone=b)  # warm-up
        for _ in range(a.repeats):  # this machine's speed drifts: compare neighbours
            for b in BACKBONES:
                short = _fit(system, bank, 50, batch, a, backbone=b)
                long = _fit(system, bank, 50 + a.steps, batch, a, backbone=b)
                times[b].append(1e3 * (long - short) / a.steps)
        ratio = statistics.median([r / m for r, m in zip(times["resnet"], times["mlp"])])
        out[str(batch)] = {**times, "resnet_over_mlp_median": ratio}
        print(f"batch {batch}: resnet {statistics.median(times['resnet']):.2f} ms, mlp "
              f"{statistics.median(times['mlp']):.2f} ms per step (medians); resnet / mlp, "
              f"median {ratio:.3f}", flush=True)
    return out


def _fit_members(system, bank, steps, batch, a, members: int, stacked: bool) -> float:
    """Seconds of one ``fit_ensemble`` call of ``steps`` steps: stacked, or one process per member."""
    fm = flowsim.FlowMap(system, width=a.width, depth=a.depth)
    t0 = time.perf_counter()
    fit_ensemble(fm, "pairs", bank, members=members, stacked=stacked, steps=steps, batch_size=batch,
                 lr=5e-3, progress=False, device=a.device, optimizer=a.optimizer, val_every=10**9,
                 early_fraction=0.25, jump_margin=0.1, max_jump=system.timescale)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def member_times(system, a) -> list[dict]:
    """Milliseconds per step of K members: one map, K stacked, K in the process pool (CPU only),
    each as (fit of 30 + steps) − (fit of 30); per member and against one map."""
    bank, _ = make_bank(system, a.n_trajectories, 2.1 * system.timescale, 421, 0)
    rows = []
    for batch in a.batches:
        _fit(system, bank, 20, batch, a)  # warm-up
        one = 1e3 * (_fit(system, bank, 30 + a.steps, batch, a) - _fit(system, bank, 30, batch, a)) / a.steps
        row = {"batch": batch, "one_map_ms": one, "members": {}}
        for k in a.members:
            modes = [True] + ([False] if not a.device.startswith("cuda") else [])
            out = {}
            for stacked in modes:
                _fit_members(system, bank, 10, batch, a, k, stacked)  # warm-up
                ms = 1e3 * (_fit_members(system, bank, 30 + a.steps, batch, a, k, stacked)
                            - _fit_members(system, bank, 30, batch, a, k, stacked)) / a.steps
                out["stacked" if stacked else "process_pool"] = {
                    "ms_per_step": ms, "ms_per_member": ms / k, "vs_one_map": ms / one}
            row["members"][str(k)] = out
            print(f"batch {batch:6d}, {k} members: " + ", ".join(
                f"{m} {v['ms_per_step']:.2f} ms/step ({v['vs_one_map']:.2f}x one map's {one:.2f})"
                for m, v in out.items()), flush=True)
        rows.append(row)
    return rows


def optimizer_step(cls, fm, repeats) -> float:
    """Seconds of one step of ``cls`` on the map's Muon matrices, random gradients."""
    mats = [torch.nn.Parameter(p.detach().clone()) for p in optim.muon_matrices(fm)]
    g = torch.Generator().manual_seed(0)
    for p in mats:
        p.grad = torch.randn(p.shape, generator=g)
    opt = cls(mats, lr=1e-3, adjust_lr_fn="match_rms_adamw")
    for _ in range(20):
        opt.step()
    t0 = time.perf_counter()
    for _ in range(repeats):
        opt.step()
    return (time.perf_counter() - t0) / repeats


def compare_muon(system, a) -> dict:
    """torch's Muon against BatchedMuon (float32, bfloat16): the optimiser step, then fit steps."""
    if IMPLS[THEIRS] is None:
        raise SystemExit(f"--compare-muon needs torch.optim.Muon (torch >= 2.9); this is {torch.__version__}")
    fm = flowsim.FlowMap(system, width=a.width, depth=a.depth)
    out = {"system": system.name, "network": f"{a.width}x{a.depth}",
           "muon_matrices": [list(p.shape) for p in optim.muon_matrices(fm)],
           "optimizer_step_ms": {name: 1e3 * optimizer_step(cls, fm, a.optimizer_repeats)
                                 for name, cls in IMPLS.items()},
           "fit_step_ms": {}}
    bank, _ = make_bank(system, a.n_trajectories, 2.1 * system.timescale, 421, 1)
    test, _ = make_bank(system, 50, 2 * system.timescale, 401, 2)
    ours = [name for name in IMPLS if name != THEIRS]
    for batch in a.batches:  # alternating: this machine's speed drifts, so compare neighbours
        times: dict[str, list[float]] = {name: [] for name in IMPLS}
        for _ in range(a.repeats):
            for name, cls in IMPLS.items():
                _fit(system, bank, 20, batch, a, muon_cls=cls, validation=test)  # warm-up
                times[name].append(1e3 * _fit(system, bank, a.steps, batch, a, muon_cls=cls,
                                              validation=test) / a.steps)
        out["fit_step_ms"][str(batch)] = {**times, "ratio_median": {
            name: statistics.median([t / o for t, o in zip(times[THEIRS], times[name])])
            for name in ours}}
    o = out["optimizer_step_ms"]
    for name in ours:
        print(f"optimiser step: torch {o[THEIRS]:.2f} ms, {name} {o[name]:.2f} ms "
              f"({o[THEIRS] / o[name]:.2f}x)")
    for batch, f in out["fit_step_ms"].items():
        for name in ours:
            print(f"fit step, batch {batch}: torch {statistics.median(f[THEIRS]):.2f} ms, {name} "
                  f"{statistics.median(f[name]):.2f} ms (medians); torch / flowsim, median "
                  f"{f['ratio_median'][name]:.2f}x")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", default="fitzhugh_nagumo")
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--batches", type=int, nargs="+", default=None,
                    help="default 1024 8192 (--compare-muon: 512 1024)")
    ap.add_argument("--steps", type=int, default=None,
                    help="steps timed per run (default 600; --compare-muon: 400)")
    ap.add_argument("--n-trajectories", type=int, default=None,
                    help="reference trajectories to train on (default 500; --compare-muon: 1000)")
    ap.add_argument("--optimizer", default="muon", choices=list(optim.OPTIMIZERS),
                    help="fit(optimizer=…)")
    ap.add_argument("--ns-dtype", default="auto", choices=NS_DTYPES,
                    help="dtype of BatchedMuon's Newton–Schulz iterations (auto: by hardware)")
    ap.add_argument("--compare-muon", action="store_true",
                    help="time torch.optim.Muon against BatchedMuon in float32 and bfloat16")
    ap.add_argument("--compare-backbones", action="store_true",
                    help="the residual network against the plain MLP, alternating in one process")
    ap.add_argument("--repeats", type=int, default=5,
                    help="--compare-muon, --compare-backbones: alternating rounds")
    ap.add_argument("--optimizer-repeats", type=int, default=300,
                    help="--compare-muon: optimiser steps timed alone")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--smoke", action="store_true", help="seconds: a 16×2 map, 5 steps, batch 64")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="fit(cuda_graph=True): the step captured in a CUDA graph (GPU only)")
    ap.add_argument("--members", type=int, nargs="+", default=None,
                    help="ensembles of these sizes: stacked (one vmapped network) against the "
                         "process pool (one process per member, CPU) and one map")
    _record.add_arguments(ap)
    a = ap.parse_args(argv)
    cmp = a.compare_muon
    a.batches = a.batches or ([512, 1024] if cmp else [1024, 8192])
    a.steps = a.steps or (400 if cmp else 600)
    a.n_trajectories = a.n_trajectories or (1000 if cmp else 500)
    if a.smoke:
        a.width, a.depth, a.batches, a.steps, a.n_trajectories = 16, 2, [64], 5, 32
        a.repeats, a.optimizer_repeats = 1, 5
    if a.threads:
        torch.set_num_threads(a.threads)
    if cmp:
        a.optimizer = "muon"
    system = flowsim.get_system(a.system)
    settings = {k: getattr(a, k) for k in ("system", "width", "depth", "batches", "steps",
                                           "n_trajectories", "optimizer", "ns_dtype", "device",
                                           "cuda_graph")}
    if a.members:
        results = {"settings": {**settings, "members": a.members}, "members": member_times(system, a)}
        tag = a.tag or "members"
    elif a.compare_backbones:
        results = {"settings": {**settings, "repeats": a.repeats},
                   "compare_backbones": compare_backbones(system, a)}
        tag = a.tag or "backbones"
    else:
        results = {"settings": settings,
                   **({"compare_muon": compare_muon(system, a)} if cmp else
                      {"steps": step_times(system, a)})}
        tag = a.tag or ("muon" if cmp else None)
    _record.record("step_time", results, tag=tag, results_dir=a.results_dir)


if __name__ == "__main__":
    main()
