"""The report folder of a calibration (``flowsim calibrate``): figures, a parameter table, the solver check.

:func:`calibration_report` writes, into one folder (built aside and moved into place, so a
failed run leaves nothing half-written):

- ``fits.png``: each subject's data with the fitted curve (reference solver at the estimate)
  and, for a map calibration, the map's curve at its own optimum;
- ``parameters.csv``: estimate, standard error, the map's estimate and the polish's shift;
- ``report.json`` (every number) and ``report.md`` (the table and the solver check in words);
- ``corner.png`` when a posterior (:class:`~flowsim.steer.PosteriorResult`) is given.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..errors import ConfigError
from .forward import SolverPredictor
from .observations import Observations

__all__ = ["calibration_report", "fitted_curves"]


def fitted_curves(fit: xr.Dataset, observations: Observations, *, which: str = "estimate",
                  n_points: int = 200) -> xr.DataArray:
    """The observables ``(subject, time, observable)`` predicted by the reference solver at a
    calibration's ``estimate`` (or ``estimate_map``), with the parameters it held fixed
    (``fit["fixed"]``), on ``n_points`` times from each subject's start to its last sample.

    Arguments
    ---------
    fit:
        A result of :func:`~flowsim.steer.calibrate`.
    observations:
        The observations it was fitted to.
    which:
        ``"estimate"`` or ``"estimate_map"``.
    n_points:
        Times per subject.

    Examples
    --------
    >>> import flowsim
    >>> obs = flowsim.steer.theoph_observations().select([1])
    >>> fit = flowsim.steer.calibrate("theophylline", obs, n_starts=1, n_candidates=4, steps=15)
    >>> flowsim.steer.fitted_curves(fit, obs, n_points=50).shape
    (1, 50, 1)
    """
    system = observations.system
    pad = observations.padded()
    est = torch.as_tensor(fit[which].values, dtype=torch.float64)
    if est.shape[0] == 1 and len(observations.subjects) > 1:            # a shared fit
        est = est.expand(len(observations.subjects), -1)
    names = [str(v) for v in fit["param"].values]
    base = dict(system.defaults)
    if "fixed" in fit:  # the parameters held fixed in the fit (calibrate(fixed=…))
        base.update({str(k): float(v) for k, v in zip(fit["fixed_param"].values, fit["fixed"].values)})
    p = torch.tensor([base[n] for n in system.param_names], dtype=torch.float64)
    p = p.expand(est.shape[0], -1).clone()
    x0 = pad.x0.clone()
    for j, name in enumerate(names):
        if name.startswith("x0."):
            x0[:, system.state_names.index(name[3:])] = est[:, j]
        else:
            p[:, system.param_names.index(name)] = est[:, j]
    frac = torch.linspace(0, 1, n_points, dtype=torch.float64)
    end = pad.times.max(1).values
    times = pad.t0[:, None] + (end - pad.t0)[:, None] * frac
    with torch.no_grad():
        x = SolverPredictor(system)(x0, pad.t0, times, p)
        y = observations.observe(x, p).double().numpy()
    return xr.DataArray(y, dims=("subject", "time_index", "observable"),
                        coords={"subject": list(observations.subjects),
                                "observable": list(observations.observables),
                                "time": (("subject", "time_index"), times.numpy())}, name=which)


def calibration_report(fit: xr.Dataset, observations: Observations, out: str | os.PathLike, *,
                       posterior: Any = None, extra: dict[str, Any] | None = None) -> Path:
    """Write the report folder of ``fit`` (from :func:`~flowsim.steer.calibrate`) to ``out``.

    ``out`` must not exist or be an empty folder. Returns its path.

    Arguments
    ---------
    fit:
        A result of :func:`~flowsim.steer.calibrate`.
    observations:
        The observations it was fitted to.
    out:
        The report folder (new, or empty).
    posterior:
        A :class:`~flowsim.steer.PosteriorResult` to plot as ``corner.png``.
    extra:
        More entries for ``report.json``.

    Examples
    --------
    >>> import tempfile, flowsim
    >>> obs = flowsim.steer.theoph_observations().select([1])
    >>> fit = flowsim.steer.calibrate("theophylline", obs, n_starts=1, n_candidates=4, steps=15)
    >>> out = flowsim.steer.calibration_report(fit, obs, tempfile.mkdtemp() + "/report")
    >>> sorted(p.name for p in out.iterdir())
    ['fits.png', 'parameters.csv', 'report.json', 'report.md']
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not an empty folder; give a new --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        summary = _summary(fit, extra)
        summary["n_subjects"] = len(observations.subjects)
        _plot_fits(fit, observations, tmp / "fits.png")
        _table(fit).to_csv(tmp / "parameters.csv", index=False)
        if posterior is not None:
            _corner(posterior, tmp / "corner.png")
            summary["posterior"] = _posterior_summary(posterior)
        (tmp / "report.json").write_text(json.dumps(summary, indent=2, default=_jsonable))
        (tmp / "report.md").write_text(_markdown(fit, summary))
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def _table(fit: xr.Dataset) -> Any:
    import pandas as pd

    rows = []
    for s in fit["subject"].values:
        for p in fit["param"].values:
            sel = fit.sel(subject=s, param=p)
            rows.append({"subject": str(s), "param": str(p), "estimate": float(sel["estimate"]),
                         "std_error": float(sel["std_error"]), "estimate_map": float(sel["estimate_map"]),
                         "rel_shift": float(sel["rel_shift"]), "status": str(sel["status"].values)})
    return pd.DataFrame(rows)


def _summary(fit: xr.Dataset, extra: dict[str, Any] | None) -> dict[str, Any]:
    rel = np.abs(fit["rel_shift"].values)
    check = {
        "model": fit.attrs["model"], "polished": bool(fit.attrs["polished"]),
        "max_abs_rel_shift": float(rel.max()) if rel.size else 0.0,
        "median_abs_rel_shift": float(np.median(rel)) if rel.size else 0.0,
        "loss_map": fit["loss_map"].values.tolist(),
        "loss_before_polish": fit["loss_before_polish"].values.tolist(),
        "loss_after_polish": fit["loss_after_polish"].values.tolist(),
        "shift_in_std_errors": np.nanmax(np.abs(fit["shift"].values / fit["std_error"].values), initial=0.0),
        "gradient_cosine": fit["gradient_cosine"].values.tolist(),
        "gradient_rel_error": fit["gradient_rel_error"].values.tolist(),
    }
    return {"system": fit.attrs["system"], "params": [str(p) for p in fit["param"].values],
            "subjects": [str(s) for s in fit["subject"].values], "attrs": dict(fit.attrs),
            "estimate": fit["estimate"].values.tolist(), "std_error": fit["std_error"].values.tolist(),
            "estimate_map": fit["estimate_map"].values.tolist(), "status": fit["status"].values.tolist(),
            "polish_from": fit["polish_from"].values.tolist(),
            "sigma": fit["sigma"].values.tolist(), "solver_check": check, **(extra or {})}


def _markdown(fit: xr.Dataset, summary: dict[str, Any]) -> str:
    c = summary["solver_check"]
    lines = [f"# Calibration of {fit.attrs['system']}", "",
             (f"{len(summary['subjects'])} subject(s)" if fit.attrs.get("per_subject", 1) else
              f"one parameter vector shared by {summary.get('n_subjects', '?')} subject(s)")
             + f", parameters {', '.join(summary['params'])}; "
             f"noise {fit.attrs['noise']} (sigma {fit.attrs['noise_sigma']}); through the "
             f"{fit.attrs['model']}.", "",
             "| subject | parameter | estimate | std. error | map estimate | polish shift | status |",
             "|---|---|---|---|---|---|---|"]
    for _, r in _table(fit).iterrows():
        lines.append(f"| {r.subject} | {r.param} | {r.estimate:.5g} | {r.std_error:.3g} | "
                     f"{r.estimate_map:.5g} | {100 * r.rel_shift:+.2f} % | {r.status} |")
    lines += ["", "## Solver check", ""]
    if c["polished"]:
        worst = c["shift_in_std_errors"]
        verdict = ("the map's answer can be trusted to within its uncertainty" if worst < 0.5 else
                   "the map's answer was biased by more than half a standard error: use the polished one, "
                   "and retrain the map (wider prior, more steps) if you need its answer alone")
        guard = [str(v) for v, o in zip(fit["subject"].values, fit["polish_from"].values) if o != "map"]
        if guard:
            lines.append(f"Subject(s) {', '.join(guard)}: the map's optimum lay in another basin than the "
                         "solver's; the polish from the best random candidate won there. ")
        lines.append(f"The objective was re-evaluated with the reference solver at the map's optimum and "
                     f"polished with the solver ({fit.attrs['polish_iterations']} iterations, "
                     f"{fit.attrs['seconds_polish']:.1f} s; the map fit took "
                     f"{fit.attrs['seconds_fit']:.1f} s). The polish moved the estimates by at most "
                     f"{100 * c['max_abs_rel_shift']:.2f} % (median "
                     f"{100 * c['median_abs_rel_shift']:.2f} %), {worst:.2f} standard errors at most: "
                     f"{verdict}. The map's sensitivities of the predicted data to the fitted "
                     f"parameters match the solver's with cosine >= "
                     f"{np.nanmin(fit['gradient_cosine'].values):.4f} (relative error <= "
                     f"{np.nanmax(fit['gradient_rel_error'].values):.2g}) at the map's optimum.")
    elif fit.attrs["model"] == "map":
        lines.append("No solver polish was run (polish=False): the map's answer is unchecked.")
    else:
        lines.append("Calibrated through the reference solver itself: nothing to check.")
    if "posterior" in summary:
        lines += ["", "## Posterior", "", "`corner.png`: " + summary["posterior"]["text"]]
    lines += ["", "Figures: `fits.png` (data and fitted curves)" +
              (", `corner.png` (posterior)." if "posterior" in summary else "."), ""]
    return "\n".join(lines)


def _plot_fits(fit: xr.Dataset, obs: Observations, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    curves = fitted_curves(fit, obs)
    map_curves = fitted_curves(fit, obs, which="estimate_map") if fit.attrs["model"] == "map" else None
    n = len(obs.subjects)
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharex=True)
    frame = obs.frame
    for i, s in enumerate(obs.subjects):
        ax = axes[i // cols][i % cols]
        for k, o in enumerate(obs.observables):
            d = frame[(frame["subject"] == s) & (frame["observable"] == o)]
            ax.plot(d["time"], d["value"], "o", ms=3.5, color=f"C{k}", label=f"{o} data")
            t = curves["time"].values[i]
            ax.plot(t, curves.values[i, :, k], "-", color=f"C{k}", lw=1.4, label="fit (solver)")
            if map_curves is not None:
                ax.plot(t, map_curves.values[i, :, k], "--", color="0.4", lw=1.0, label="map optimum")
        ax.set_title(f"subject {s}", fontsize=9)
        ax.tick_params(labelsize=8)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize=7)
    fig.supxlabel(f"time ({obs.system.time_units or 'time units'})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _posterior_summary(post: Any) -> dict[str, Any]:
    s = post.summary
    text = ("posterior means " + ", ".join(f"{p} {float(s['mean'].sel(param=p).mean()):.4g} ± "
                                            f"{float(s['sd'].sel(param=p).mean()):.2g}"
                                            for p in s["param"].values)
            + f"; max R-hat {float(s['r_hat'].max()):.3f}, min bulk ESS {float(s['ess_bulk'].min()):.0f}.")
    return {"text": text, "mean": s["mean"].values.tolist(), "sd": s["sd"].values.tolist(),
            "r_hat": s["r_hat"].values.tolist(), "ess_bulk": s["ess_bulk"].values.tolist(),
            "info": {k: v for k, v in post.info.items() if k != "flat_draws"}}


def _corner(post: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    draws = np.asarray(post.draws())
    names = [str(p) for p in post.summary["param"].values]
    if draws.shape[1] != len(names):
        names = [f"θ{j}" for j in range(draws.shape[1])]
    d = draws.shape[1]
    fig, axes = plt.subplots(d, d, figsize=(2.2 * d, 2.2 * d), squeeze=False)
    for i in range(d):
        for j in range(d):
            ax = axes[i][j]
            if j > i:
                ax.axis("off")
            elif i == j:
                ax.hist(draws[:, i], bins=40, color="C0", histtype="stepfilled", alpha=0.7)
            else:
                ax.plot(draws[:, j], draws[:, i], ",", alpha=0.3, color="C0")
            if i == d - 1:
                ax.set_xlabel(names[j], fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=8)
            ax.tick_params(labelsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
