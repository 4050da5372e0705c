"""End-to-end runs that write a report folder: ``quickstart`` and ``evaluate``.

``quickstart`` simulates an ensemble into a zarr store, trains a flow map on it, and evaluates
it; ``evaluate`` writes the same report for any trained checkpoint. A report folder holds PNG
figures, ``report.json`` (all numbers) and ``report.md`` (a short summary).
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import analysis as an
from ._report_text import table, write
from ._utils import check_int
from .errors import ConfigError, StoreError, TimeGridError
from .maps.flowmap import FlowMap
from .solve import SolverOptions, reference_solve
from .systems.base import ODESystem
from .systems.registry import get_system
from .train.config import RECIPE_128x6

__all__ = ["quickstart", "evaluate"]

#: How the quickstart trains its 128×6 network: the recipe ``flowsim train`` uses too.
QUICKSTART_FIT = RECIPE_128x6

SIZES = {
    # n trajectories, stored times, width, depth, evaluation states; how to train
    "small": dict(n=96, n_times=81, width=32, depth=2, n_eval=64,
                  fit=dataclasses.replace(QUICKSTART_FIT, steps=150, batch_size=128)),
    "default": dict(n=2048, n_times=321, width=128, depth=6, n_eval=2000, fit=QUICKSTART_FIT),
}


#: The solvers a report races the map against, the headline's first: explicit torch solvers
#: (torchdiffeq dopri5, fixed-step rk4) for a non-stiff system, and for a system marked stiff
#: scipy's LSODA and BDF, stacked over the batch (explicit solvers fail on stiff systems, after
#: a long bisection of their failures).
PEERS, STIFF_PEERS = ("dopri5", "rk4"), ("scipy_lsoda", "scipy_bdf")

#: What "matched" means in the report's speed-ups (also recorded in report.json).
MATCHED_MEANS = (
    "the cheapest solver setting whose median error over the same held-out states is at most the "
    "map's, and which failed on none of them; no speed-up is claimed where the map's median "
    f"error exceeds {an.MAX_MATCHED_ERROR:g} (it is not usable there). Times are wall times of the "
    "whole batch in this process, the map and the solvers side by side."
)


def _say(msg: str, verbose: bool) -> None:
    if verbose:
        print(msg, flush=True)


class _Stages:
    """A progress bar over the stages of an evaluation (nothing when ``progress`` is off)."""

    def __init__(self, n: int, progress: bool) -> None:
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=n, desc="evaluate", unit="stage")

    def start(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name)

    def done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def quickstart(
    system: str | ODESystem = "fitzhugh_nagumo",
    out: str | os.PathLike = "flowsim-quickstart",
    *,
    size: str = "default",
    steps: int | None = None,
    n: int | None = None,
    params: str = "default",
    device: str | None = None,
    client: Any = "sync",
    seed: int = 0,
    progress: bool = True,
    verbose: bool = True,
    restart: bool = False,
) -> dict[str, Any]:
    """Simulate, train and evaluate a flow map end to end; write a report folder.

    Arguments
    ---------
    system:
        Catalogue name (default: the FitzHugh–Nagumo neuron model) or an ODESystem.
    out:
        Output folder: ``data.zarr`` (the ensemble), ``model/`` (the checkpoint), ``report/``.
    size:
        ``"default"`` (a few minutes on a 2-core CPU) or ``"small"`` (seconds; a smoke test).
    steps, n:
        Override the training steps and the number of trajectories (positive integers).
    params:
        ``"default"`` (one parameter set) or ``"prior"`` (a parametric surrogate).
    device:
        Training device (default: CUDA if available, else CPU).
    client:
        Dask client for the ensemble: ``"sync"`` (in process; default), ``None`` (a local
        cluster), a ``Client`` or a scheduler address.
    seed:
        Seed of the ensemble and the training.
    progress:
        Show progress bars.
    verbose:
        Print the stages and the results table.
    restart:
        Start over: simulate the ensemble again and retrain, replacing ``out/data.zarr`` and
        ``out/model`` (default: reuse what is there, resuming the training; other settings
        than theirs are refused).

    Returns
    -------
    dict
        The report's numbers (also in ``out/report/report.json``).

    Raises
    ------
    ConfigError
        Unknown ``size`` or ``params``, or ``steps`` or ``n`` not a positive integer.

    Examples
    --------
    >>> import flowsim
    >>> summary = flowsim.quickstart(out="flowsim-quickstart", size="small")  # doctest: +SKIP
    >>> sorted(p.name for p in (Path("flowsim-quickstart") / "report").iterdir())  # doctest: +SKIP
    """
    from .data import simulate_ensemble
    from .train import fit

    if size not in SIZES:
        raise ConfigError(f"size must be one of {list(SIZES)}; got {size!r}")
    if params not in ("default", "prior"):
        raise ConfigError(f"params must be 'default' or 'prior'; got {params!r}")
    for name, value in (("steps", steps), ("n", n)):
        if value is not None:
            check_int(value, name, ConfigError)
    cfg = dict(SIZES[size])
    cfg["n"] = n if n is not None else cfg["n"]
    sys_ = get_system(system)
    T = sys_.timescale
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    t_grid = torch.linspace(0, 2 * T, cfg["n_times"], dtype=torch.float64)

    _say(f"[1/3] simulating {cfg['n']} trajectories of {sys_.name} into {out / 'data.zarr'}", verbose)
    t0 = time.perf_counter()
    ds = simulate_ensemble(sys_, cfg["n"], t_grid, params=params, store=out / "data.zarr",
                           client=client, seed=seed, progress=progress, overwrite=restart)
    sim_time = time.perf_counter() - t0

    fit_config = dataclasses.replace(cfg["fit"], steps=steps if steps is not None else cfg["fit"].steps,
                                     seed=seed, max_jump=T)
    _say(f"[2/3] training a flow map for {fit_config.steps} steps on {dev}", verbose)
    # params="default": a single parameter set, no parametric range to cover
    fm = FlowMap(sys_, width=cfg["width"], depth=cfg["depth"], param_range=params)
    res = fit(fm, "pairs", ds, fit_config, device=dev, checkpoint_dir=out / "model",
              progress=progress, resume=not restart)
    summary = _evaluate(res.flowmap, out / "report", n_eval=cfg["n_eval"], params=params,
                        seed=seed + 1, training_time=res.wall_time, verbose=verbose, progress=progress)
    summary.update(simulation_seconds=sim_time, training_seconds=res.wall_time,
                   training_steps=fit_config.steps, store=str(out / "data.zarr"),
                   checkpoint=str(out / "model"))
    write(out / "report", summary)
    _say(table(summary), verbose)
    _say(f"report: {out / 'report' / 'report.md'}", verbose)
    return summary


def evaluate(checkpoint: str | os.PathLike, out: str | os.PathLike | None = None, *,
             store: str | os.PathLike | None = None, n_eval: int = 2000, params: str = "prior",
             seed: int = 1, system: ODESystem | None = None, progress: bool = True,
             verbose: bool = True) -> dict[str, Any]:
    """Write the evaluation report (figures, JSON, Markdown) for a trained checkpoint.

    Held-out reference trajectories are solved fresh from the system's prior (initial states
    and, with ``params="prior"``, parameters within the map's trained range).

    Arguments
    ---------
    checkpoint:
        A checkpoint directory written by :func:`flowsim.fit` or :func:`flowsim.save`.
    out:
        Report folder (default: ``<checkpoint>/report``).
    store:
        Evaluate single and composed jumps on the test split of this store (the trajectories
        :func:`flowsim.fit` never trains on) instead of fresh reference solves.
    n_eval:
        Number of held-out states.
    params:
        ``"prior"`` or ``"default"``.
    seed:
        Seed of the held-out states.
    system:
        The ODESystem of the checkpoint, for a system that is not in the catalogue and whose
        import path the checkpoint does not record (e.g. a :func:`~flowsim.from_callable`
        system); checked against the checkpoint.
    progress:
        Show a progress bar over the evaluation's stages.
    verbose:
        Print the results table.

    Returns
    -------
    dict
        The report's numbers.

    Raises
    ------
    CheckpointError
        The checkpoint is missing, corrupted, of an unknown system, or the store holds another
        system.
    ConfigError
        ``n_eval`` is not a positive integer or ``params`` is unknown.
    StoreError
        The store is missing, has the wrong schema, or holds no test trajectories.

    Examples
    --------
    >>> import flowsim
    >>> summary = flowsim.evaluate("runs/fhn-model", "runs/fhn-report")  # doctest: +SKIP
    >>> summary["errors"]  # doctest: +SKIP
    """
    from .errors import CheckpointError
    from .train.checkpoint import load

    check_int(n_eval, "n_eval", ConfigError)
    if params not in ("default", "prior"):
        raise ConfigError(f"params must be 'default' or 'prior'; got {params!r}")
    fm = load(checkpoint, system=system)
    reference = None
    if store is not None:
        from .data import open_store, split_of

        ds = open_store(store)
        if str(ds.attrs.get("system")) != fm.system.name:
            raise CheckpointError(
                f"checkpoint is a flow map of {fm.system.name!r} but the store holds "
                f"{ds.attrs.get('system')!r}; evaluate it on a store of the same system"
            )
        test = np.flatnonzero(split_of(np.arange(ds.sizes["trajectory"])) == 2)[:512]
        if not len(test):  # every trajectory trained or validated the map: not held out
            raise StoreError(
                f"the store {store} has no test trajectories ({ds.sizes['trajectory']} trajectories, "
                "all in the train and validation splits): evaluating on it would measure the map on "
                "its training data. Evaluate without a store (fresh reference solves), or simulate "
                "a store with more trajectories (about one in ten is held out)")
        reference = ds.isel(trajectory=test)
    ck = Path(checkpoint)
    out = Path(out) if out is not None else (ck.parent if ck.is_file() else ck) / "report"
    summary = _evaluate(fm, out, n_eval=n_eval, params=params, seed=seed, training_time=None,
                        verbose=verbose, progress=progress, reference=reference)
    summary["checkpoint"] = str(checkpoint)
    write(out, summary)
    _say(table(summary), verbose)
    return summary


def _held_out(fm: FlowMap, n: int, params: str, seed: int):
    sys_ = fm.system
    g = torch.Generator().manual_seed(10_000 + seed)
    x0 = sys_.sample_initial(n, g)
    lo, hi = fm.param_transform.low.double().cpu(), fm.param_transform.high.double().cpu()
    if params == "prior" and bool((hi > lo).any()):
        p = lo + (hi - lo) * torch.rand(n, sys_.n_params, generator=g, dtype=torch.float64)
    else:
        p = sys_.default_params(n)
    return x0, p


def _evaluate(fm: FlowMap, out: Path, *, n_eval: int, params: str, seed: int,
              training_time: float | None, verbose: bool, progress: bool = False,
              reference: Any = None) -> dict[str, Any]:
    stages = _Stages(4, progress)
    created = not out.exists()
    try:
        return _evaluate_stages(fm, out, n_eval=n_eval, params=params, seed=seed,
                                training_time=training_time, verbose=verbose, reference=reference,
                                stages=stages)
    except BaseException:
        if created:  # a failed evaluation leaves no half-written report behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        stages.close()


def _evaluate_stages(fm: FlowMap, out: Path, *, n_eval: int, params: str, seed: int,
                     training_time: float | None, verbose: bool, reference: Any,
                     stages: _Stages) -> dict[str, Any]:
    sys_ = fm.system
    T, hmax = sys_.timescale, fm.max_jump
    out.mkdir(parents=True, exist_ok=True)
    _say("[3/3] evaluating on held-out states against reference solves", verbose)
    stages.start("reference solves")
    if reference is None:
        x0, p = _held_out(fm, min(n_eval, 512), params, seed)
        t = torch.linspace(0, 2 * hmax, 201, dtype=torch.float64)
        ref = reference_solve(sys_, x0, t, p, solver=SolverOptions.reference(sys_, rtol=1e-10, atol=1e-12))
        n_ref, span = x0.shape[0], 2 * hmax
    else:
        ref = reference
        n_ref = int(ref.sizes["trajectory"])
        span = float(ref["time"].values[-1] - ref["time"].values[0])
    stages.done()
    stages.start("error vs jump")
    dt = span / 200 if reference is None else float(np.diff(ref["time"].values).min())
    hmax = min(hmax, span / 2)
    jumps = [v for v in (0.01 * T, 0.03 * T, 0.1 * T, 0.3 * T, T)
             if dt * (1 - 1e-9) <= v <= hmax * (1 + 1e-9)] or [hmax]
    if reference is not None:  # a stored grid: snap to multiples of its step, none past hmax
        most = math.floor(hmax / dt * (1 + 1e-9))
        if most < 1:
            raise ConfigError(
                f"the store's time step {dt:.4g} is longer than the longest jump the map was "
                f"trained for ({hmax:.4g}); evaluate on a store with a finer time grid, or "
                f"without a store (fresh reference solves)")
        jumps = sorted({min(max(1, round(v / dt)), most) * dt for v in jumps})
    ej = an.error_vs_jump(fm, ref, jumps=jumps)
    an.save_figure(an.plot_error_vs_jump(ej), out / "error_vs_jump.png")
    try:  # the same jumps from the initial states themselves, where transients are
        ej0 = an.error_vs_jump(fm, ref, jumps=[float(h) for h in ej["jump"].values], from_start=True)
        from_start = {float(h): ej0.sel(jump=h) for h in ej0["jump"].values}
    except TimeGridError:  # an irregular stored grid without these gaps from its first time
        from_start = {}
    stages.done()
    stages.start("error vs steps")
    es = an.error_vs_steps(fm, ref, horizon=hmax)
    an.save_figure(an.plot_error_vs_steps(es), out / "error_vs_steps.png")
    stages.done()
    stages.start("work-precision")

    xw, pw = _held_out(fm, n_eval, params, seed + 1)
    load = an.machine_load(0.5)  # timings taken while other processes use the cores lie
    if load.busy:  # said once as it happens (printed, or a Python warning when quiet), and in the report
        if verbose:
            _say(f"warning: {load.warning()}", verbose)
        else:
            warnings.warn(load.warning(), stacklevel=2)
    quick = n_eval < 256
    # the peers a user of this system would use: explicit torch solvers, or for a stiff system
    # scipy's implicit methods (the explicit ones fail there, after a long bisection of failures)
    peers = STIFF_PEERS if sys_.stiff else PEERS
    wp = an.work_precision(fm, sys_, xw, pw, horizon=hmax,
                           tolerances=(1e-3, 1e-5) if quick else (1e-3, 1e-4, 1e-5, 1e-6, 1e-7),
                           rk4_steps=(16, 64) if quick else (8, 16, 32, 64, 128, 256),
                           solvers=peers + (("bosh3",) if not sys_.stiff else ()),
                           training_time=training_time, repeats=1 if quick else 3,
                           max_seconds=30.0 if quick else 60.0)
    an.save_figure(an.plot_work_precision(wp), out / "work_precision.png")
    sp = an.speedup_at_matched_error(wp, peers[0]).to_dict()
    speedups = {f"{solver}_{at}": an.speedup_at_matched_error(wp, solver, at=at).to_dict()
                for solver in peers for at in ("one_jump", "best_speedup")}
    stages.done()

    rows = []
    for h in ej["jump"].values:
        sel = ej.sel(jump=h)
        row = dict(jump=float(h), jump_over_timescale=float(h) / T,
                   median_relative_error=float(sel["median_relative_error"]),
                   median_normalised_error=float(sel["median_normalised_error"]))
        if float(h) in from_start:
            row["median_relative_error_from_start"] = float(from_start[float(h)]["median_relative_error"])
            row["median_normalised_error_from_start"] = float(
                from_start[float(h)]["median_normalised_error"])
        rows.append(row)
    steps = [dict(n_steps=int(k), median_relative_error=float(es["median_relative_error"].sel(n_steps=k)))
             for k in es["n_steps"].values]
    return dict(
        system=sys_.name, timescale=T, time_units=sys_.time_units, max_jump=hmax,
        device=str(fm.device), machine=platform.machine(), torch=torch.__version__,
        n_eval_jumps=n_ref,
        reference="store test split" if reference is not None else "fresh reference solves",
        n_eval_work_precision=int(xw.shape[0]),
        error_vs_jump=rows, error_vs_steps=steps, speedups=speedups, peers=list(peers),
        **({"speedup_vs_dopri5": sp} if peers[0] == "dopri5" else {"speedup_headline": sp}),
        machine_load=load.to_dict(), matched_means=MATCHED_MEANS,
        figures=["error_vs_jump.png", "error_vs_steps.png", "work_precision.png"],
    )
