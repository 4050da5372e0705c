"""Train an ensemble of flow maps, one member per process: :func:`fit_ensemble`."""

from __future__ import annotations

import copy
import dataclasses
import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, as_completed, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cloudpickle
import torch

from ..data.cluster import unguarded_script, warn_unguarded
from ..errors import ConfigError
from ..maps.ensemble import FlowMapEnsemble
from ..maps.flowmap import FlowMap
from . import checkpoint as ckpt
from .config import FitConfig
from .objectives import Objective
from .prepare import prepare
from .progress import MemberProgress, init_worker, worker_reporter
from .stacked import fit_stacked
from .trainer import FitResult, fit
from .validation import jump_errors

__all__ = ["EnsembleFitResult", "fit_ensemble"]


@dataclass
class EnsembleFitResult:
    """What :func:`fit_ensemble` returns.

    Attributes
    ----------
    ensemble:
        The trained :class:`~flowsim.FlowMapEnsemble`, in eval mode.
    members:
        Each member's :class:`~flowsim.train.FitResult` (history, metrics, steps).
    metrics:
        The ensemble's validation errors, as :attr:`FitResult.metrics` gives a single map's.
    checkpoint_dir:
        Where the ensemble was saved (``None`` if not checkpointing).
    wall_time:
        Seconds spent in this call.

    Examples
    --------
    >>> from flowsim.train import EnsembleFitResult
    >>> sorted(EnsembleFitResult.__dataclass_fields__)
    ['checkpoint_dir', 'ensemble', 'members', 'metrics', 'wall_time']
    """

    ensemble: FlowMapEnsemble
    members: list[FitResult] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint_dir: Path | None = None
    wall_time: float = 0.0


def fit_ensemble(
    flowmap: FlowMap,
    objectives: str | list[Objective] = "pairs",
    data: Any = None,
    config: FitConfig | None = None,
    *,
    members: int = 2,
    workers: int | None = None,
    validation: Any = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
    stacked: bool | None = None,
    **fit_kwargs: Any,
) -> EnsembleFitResult:
    """Train ``members`` flow maps like ``flowmap`` independently and average them.

    Member ``k`` has its own initial weights and its own draws of the data (seed ``seed + k``)
    and is trained by :func:`flowsim.fit` with ``config`` and ``fit_kwargs``. The members train
    in ``workers`` processes at once, each with an equal share of the CPU threads, so on a machine whose
    cores one small network cannot keep busy (on a 2-core CPU each of two single-threaded
    trainings side by side took 0.8–1.0× the steps of one training on both cores) an ensemble
    costs about as much wall-clock time as one map. Averaging lowers the error: on
    FitzHugh–Nagumo, two members trained for 10 minutes side by side on the 2-core CPU
    (61,168 and 63,022 steps) reached a worst median error of 9.0e-4 over jumps up to one
    timescale, against 1.15e-3 and 1.14e-3 for each alone
    (``benchmarks/accuracy.py --members 2``, ``docs/benchmarks.md``). The members'
    disagreement tells how far each jump can be trusted (:meth:`FlowMapEnsemble.jump_with_spread`).

    Worker processes are started with ``spawn``, and the members' tasks are sent with
    cloudpickle (as Dask sends its tasks), so a :func:`~flowsim.from_callable` system whose
    right-hand side is a lambda, a closure or a function of a notebook or script travels too.
    In a script, call this under ``if __name__ == "__main__":`` (as for a Dask
    ``LocalCluster``): called from a script's unguarded top level, where spawned workers would
    run the script again, it trains the members one after another in this process
    (``workers=1``) and says so with a ``UserWarning``.

    Arguments
    ---------
    flowmap:
        A :class:`~flowsim.FlowMap` giving the architecture and settings of every member (its
        system, size, transforms, parameter range, device and dtype); its weights are not used
        and it is not modified.
    objectives, data, config:
        As for :func:`flowsim.fit`. The data are prepared once
        (:func:`~flowsim.train.prepare`): without ``validation``, trajectory data (not a
        streamed store) are split once, 10 % held out, and every member trains on the same 90 %
        and is judged, like the ensemble, on the same 10 %.
    members:
        Number of members (at least two).
    workers:
        Processes training members at once (default: ``min(members, CPUs available)``); ``1``
        trains them one after another in this process (needed for systems that even
        cloudpickle cannot send, e.g. one holding an open file or a lock). With fewer
        workers than members, a ``time_budget`` holds per member: the later ones wait their turn.
    validation:
        Held-out trajectories for every member and the ensemble (as for :func:`flowsim.fit`).
    checkpoint_dir:
        Where to save: member ``k`` checkpoints to ``checkpoint_dir/member-<k>`` as
        :func:`flowsim.fit` does (so ``resume`` works member by member), and the ensemble is
        saved to ``checkpoint_dir`` (:func:`flowsim.load` gives it back) once every member is
        done; until then ``checkpoint_dir`` holds no ensemble (an earlier one there is removed
        first), so a killed run never loads as a mix of old and new members.
    progress:
        Show a progress bar of the members' steps (and how many members are done).
    stacked:
        Train the members as one batched network in this process
        (:func:`~flowsim.train.stacked.fit_stacked`: their weights stacked, every step one
        ``torch.vmap`` call, one launch per layer for all members), instead of one process per
        member. Each member is still the one :func:`flowsim.fit` trains alone with seed
        ``seed + k`` (equal to rounding). Default ``None``: stacked on a GPU (unless ``workers``
        is given), where one member leaves the device idle, and the process pool on a CPU;
        ``docs/performance.md`` has the measured comparison. With ``checkpoint_dir``, the
        stacked run's trainer state is ``checkpoint_dir/trainer_state.pt`` (resume continues
        it) and the members are saved to ``member-<k>`` at the end.
    **fit_kwargs:
        :class:`~flowsim.train.FitConfig` fields (``steps``, ``batch_size``, ``lr``,
        ``time_budget``, ``seed``: member ``k`` uses ``seed + k`` for its weights and its data,
        …) and :func:`flowsim.fit`'s ``device`` and ``resume``, for every member. ``progress``
        of the members is off.

    Returns
    -------
    EnsembleFitResult

    Raises
    ------
    ConfigError
        Fewer than two members, bad ``workers``, a ``flowmap`` that is not a FlowMap, one that
        cannot be sent to worker processes, a worker process that died, or any error
        :func:`flowsim.fit` raises.

    Examples
    --------
    >>> import torch, flowsim
    >>> from flowsim.train import fit_ensemble
    >>> sys = flowsim.get_system("lotka_volterra")
    >>> sol = flowsim.reference_solve(sys, sys.sample_initial(64, 0), torch.linspace(0, 15, 61))
    >>> res = fit_ensemble(flowsim.FlowMap(sys, width=16, depth=2), "pairs", sol, workers=1,
    ...                    steps=20, batch_size=64, progress=False)
    >>> len(res.ensemble), [m.steps for m in res.members]
    (2, [20, 20])
    """
    t0 = time.perf_counter()
    if not isinstance(flowmap, FlowMap):
        raise ConfigError(f"fit_ensemble trains copies of a flowsim.FlowMap; got "
                          f"{type(flowmap).__name__}")
    if not isinstance(members, int) or members < 2:
        raise ConfigError(f"members must be an integer of at least 2; got {members!r}")
    cpus = _cpus()
    n_workers = min(members, cpus) if workers is None else workers
    if not isinstance(n_workers, int) or n_workers < 1:
        raise ConfigError(f"workers must be a positive integer; got {workers!r}")
    n_workers = min(n_workers, members)
    if stacked is not None and not isinstance(stacked, bool):
        raise ConfigError(f"stacked must be None (by device), True or False; got {stacked!r}")
    if stacked is None:
        stacked = torch.device(fit_kwargs.get("device") or flowmap.device).type == "cuda" and workers is None
    if n_workers > 1 and not stacked and unguarded_script():
        warn_unguarded("fit_ensemble", "training the members one after another in this process "
                       "(workers=1)")
        n_workers = 1
    run_kw = {k: fit_kwargs.pop(k) for k in ("device", "resume") if k in fit_kwargs}
    config = FitConfig.from_options(config, **fit_kwargs)
    seed = config.seed
    data, validation, val_bank, val_jumps = _shared_data(flowmap, data, config, validation)
    device = run_kw.get("device") or flowmap.device
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckdir is not None:  # no ensemble loads from here until every member is done
        (ckdir / ckpt.ENSEMBLE).unlink(missing_ok=True)
    jobs = []
    for k in range(members):
        member = _fresh_copy(flowmap, seed + k)
        kw = dict(run_kw, config=dataclasses.replace(config, seed=seed + k), validation=validation,
                  progress=False, checkpoint_dir=ckpt.member_dir(ckdir, k) if ckdir is not None else None)
        jobs.append((member, kw))

    if stacked:
        return _fit_stacked(jobs, objectives, data, config, validation, val_bank, val_jumps, ckdir,
                            run_kw.get("resume", True), progress, device, t0)
    bar = MemberProgress(members, config, f"fit_ensemble {flowmap.config.system} ({members} members, "
                         f"{n_workers} at a time)") if progress else None
    results: list[FitResult | None] = [None] * members
    try:
        if n_workers == 1:
            for k, (member, kw) in enumerate(jobs):
                results[k] = fit(member, objectives, data,
                                 **dict(kw, progress=bar.reporter(k) if bar is not None else False))
                if bar is not None:
                    bar.finish(k, results[k].steps)
        else:
            threads = max(1, cpus // n_workers)
            try:  # cloudpickle, as Dask: closures and functions of __main__ travel by value
                tasks = [cloudpickle.dumps((k, member, objectives, data, kw, threads))
                         for k, (member, kw) in enumerate(jobs)]
            except Exception as err:  # noqa: BLE001 - any pickling failure means the same
                raise ConfigError(
                    f"the flow map, objectives or data cannot be sent to worker processes ({err}); "
                    "pass workers=1 to train the members one after another in this process"
                ) from None
            for k, result in _run_in_workers(tasks, n_workers, bar):
                results[k] = result
                if bar is not None:
                    bar.finish(k, result.steps)
    finally:
        if bar is not None:
            bar.close()
    done = [r for r in results if r is not None]
    for r in done:  # workers send their members back on the CPU
        r.flowmap.to(device)
    ens = FlowMapEnsemble([r.flowmap for r in done]).eval()
    metrics = {}
    if val_jumps:
        metrics = jump_errors(ens, val_bank, val_jumps)
    ens.training_record = {"members": [r.flowmap.training_record for r in done],
                           "final_metrics": metrics, "workers": n_workers, "seed": seed}
    if ckdir is not None:  # each member's checkpoint is already there, written by fit
        ckpt.write_ensemble_index(ckdir, members, ens.config.system,
                                  {"final_metrics": metrics, "workers": n_workers, "seed": seed})
    return EnsembleFitResult(ensemble=ens, members=done, metrics=metrics, checkpoint_dir=ckdir,
                             wall_time=time.perf_counter() - t0)


def _fit_stacked(jobs: list, objectives: Any, data: Any, config: FitConfig, validation: Any, val_bank: Any,
                 val_jumps: Any, ckdir: Path | None, resume: bool, progress: bool, device: Any,
                 t0: float) -> EnsembleFitResult:
    """``fit_ensemble(stacked=True)``: the members of ``jobs`` trained by :func:`fit_stacked`."""
    members = [member.to(device) for member, _ in jobs]
    results = fit_stacked(members, objectives, data, config, validation=validation,
                          checkpoint_dir=ckdir, resume=resume, progress=progress)
    ens = FlowMapEnsemble([r.flowmap for r in results]).eval()
    metrics = jump_errors(ens, val_bank, val_jumps) if val_jumps else {}
    ens.training_record = {"members": [r.flowmap.training_record for r in results],
                           "final_metrics": metrics, "stacked": True, "seed": config.seed}
    if ckdir is not None:
        for k, r in enumerate(results):
            ckpt.write_checkpoint(r.flowmap, ckpt.member_dir(ckdir, k), training=r.flowmap.training_record)
            r.checkpoint_dir = ckpt.member_dir(ckdir, k)
        ckpt.write_ensemble_index(ckdir, len(results), ens.config.system,
                                  {"final_metrics": metrics, "stacked": True, "seed": config.seed})
    return EnsembleFitResult(ensemble=ens, members=results, metrics=metrics, checkpoint_dir=ckdir,
                             wall_time=time.perf_counter() - t0)


def _cpus() -> int:
    """CPUs this process may run on (its affinity, which containers and ``taskset`` limit)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run_in_workers(tasks: list[bytes], n_workers: int, bar: MemberProgress | None = None):
    """Yield ``(k, FitResult)`` as members finish in ``n_workers`` spawned processes.

    An error in a member is raised here as itself; a worker that dies (killed, out of memory,
    or unable to unpickle its task) is a :class:`ConfigError`. Either way, and on an
    interrupt, the other workers are stopped rather than left training. With ``bar``, the
    members' steps are reported to it as they train."""
    ctx = get_context("spawn")
    steps_queue = ctx.Queue() if bar is not None else None
    pool = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=init_worker if bar else None,
                               initargs=(steps_queue,) if bar else ())
    try:
        futures = [pool.submit(_train_member, task) for task in tasks]
        for fut in _as_completed(futures, bar, steps_queue):
            try:
                yield cloudpickle.loads(fut.result())
            except BrokenProcessPool:
                raise ConfigError(
                    "a worker process training an ensemble member died (killed, out of memory, "
                    "or unable to unpickle its task, e.g. a right-hand side that refers to a "
                    "module the worker cannot import); pass workers=1 to train the members in "
                    "this process"
                ) from None
    except BaseException:
        for proc in list(getattr(pool, "_processes", {}).values()):  # stop the other members
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _as_completed(futures: list, bar: MemberProgress | None, steps_queue: Any):
    """``as_completed(futures)``, showing the steps the workers report on ``bar`` meanwhile."""
    if bar is None:
        yield from as_completed(futures)
        return
    pending = set(futures)
    while pending:
        done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
        bar.drain(steps_queue)
        yield from done


def _train_member(task: bytes) -> bytes:
    """Member ``k``, in a worker process with ``threads`` intra-op threads; ``(k, FitResult)``
    comes back cloudpickled (its system may hold a closure) with the map on the CPU (a CUDA
    tensor sent between processes lives only as long as its sender)."""
    k, member, objectives, data, kw, threads = cloudpickle.loads(task)
    torch.set_num_threads(threads)
    kw = dict(kw, progress=worker_reporter(k))  # the members' steps, to the parent's bar
    res = fit(member, objectives, data, **kw)
    res.flowmap.cpu()
    return cloudpickle.dumps((k, res))


def _fresh_copy(template: FlowMap, seed: int) -> FlowMap:
    """A copy of ``template`` with new initial weights drawn from ``seed`` (zero head, as
    :class:`FlowMap` starts: the identity map), drawn on the CPU so that no device's random
    state changes."""
    device = template.device
    member = copy.deepcopy(template).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in member.net.modules():
            if module is not member.net and hasattr(module, "reset_parameters"):
                module.reset_parameters()
    with torch.no_grad():
        member.net.head.weight.zero_()
        member.net.head.bias.zero_()
    return member.to(device).train()


def _shared_data(fm: FlowMap, data: Any, config: FitConfig, validation: Any):
    """``(data for every member, validation for every member, bank to judge the ensemble on,
    validation jumps)``, from :func:`prepare` once.

    Trajectories split here go to every member as they are (so all train on the same split and
    are judged on the same held-out trajectories); a store with its own split, or streamed, goes
    as it is (each member reads or streams its training split, the same for all) and the
    ensemble is judged on its validation split (a bounded sample of it when streamed)."""
    prep = prepare(fm, data, config, validation)
    if prep.split_by_store or prep.stream is not None:
        return data, validation, prep.validation, prep.val_jumps
    return prep.train, prep.validation, prep.validation, prep.val_jumps
