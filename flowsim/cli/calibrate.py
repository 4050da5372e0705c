"""``flowsim calibrate``: fit a model to measured data and write a report (fits, table, solver check).

``MODEL`` is a trained checkpoint (calibration through the map, checked and polished with the
solver) or a system (catalogue name or import path: through the solver alone). The data are a
CSV in tidy form (``subject, time, observable, value``) or wide (one column per observable);
small expressions say how states become observables and what each subject's initial state is::

    flowsim calibrate theophylline --data theoph.csv --out fit          # the Theoph preset
    flowsim calibrate ckpt/ --data my.csv --params k,V --observe "conc=A/V" --initial "A=Dose*Wt"
"""

from __future__ import annotations

import argparse
import ast
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SystemNotFoundError
from ._checks import check_output, get_cli_system, positive_int

__all__ = ["add_parser", "run", "PRESETS", "parse_assignments"]

#: Column layout and expressions used when a system is calibrated without naming them.
PRESETS: dict[str, dict[str, str]] = {
    "theophylline": {"subject": "Subject", "time": "Time", "observables": "conc", "covariates": "Wt,Dose",
                     "initial": "A_gut=Dose*Wt,A_central=0", "observe": "conc=A_central/V"},
}

_OPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)


def parse_assignments(text: str, option: str) -> list[tuple[str, ast.Expression]]:
    """``"a=expr,b=expr"`` → ``[(a, compiled expr)]``; expressions use names, numbers and
    ``+ - * / **`` only (nothing is executed but arithmetic).

    Examples
    --------
    >>> [name for name, _ in parse_assignments("conc=A_central/V", "--observe")]
    ['conc']
    """
    out = []
    for part in [p for p in text.split(",") if p.strip()]:
        name, eq, expr = part.partition("=")
        if not eq or not name.strip().isidentifier():
            raise ConfigError(f"{option}: {part!r} must read name=expression (e.g. conc=A_central/V)")
        try:
            tree = ast.parse(expr.strip(), mode="eval")
        except SyntaxError:
            raise ConfigError(f"{option}: cannot read the expression {expr.strip()!r}") from None
        for node in ast.walk(tree):
            if isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Load, *_OPS)):
                continue
            if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
                continue
            raise ConfigError(f"{option}: {expr.strip()!r} may use names, numbers and + - * / ** only")
        out.append((name.strip(), tree))
    if not out:
        raise ConfigError(f"{option} is empty; give name=expression pairs separated by commas")
    return out


def _evaluate(tree: ast.Expression, names: dict[str, Any], option: str) -> Any:
    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise ConfigError(f"{option}: unknown name {node.id!r}; the names are {sorted(names)}")
            return names[node.id]
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        a, b = ev(node.left), ev(node.right)
        op = node.op
        return (a + b if isinstance(op, ast.Add) else a - b if isinstance(op, ast.Sub) else
                a * b if isinstance(op, ast.Mult) else a / b if isinstance(op, ast.Div) else a ** b)
    return ev(tree)


def add_parser(subparsers: Any) -> None:
    """Add ``calibrate`` to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "calibrate", help="fit a model's parameters to measured data (map + solver check)",
        description="Fit parameters to measured data (one estimate per subject, or shared) through a "
                    "trained map or the reference solver, check the map's answer with the solver, and "
                    "write a report: fits.png, parameters.csv, report.json, report.md (corner.png with "
                    "--posterior).")
    p.add_argument("model", help="checkpoint directory of a trained map, or a system (catalogue name or "
                                 "import path mypkg.models:make_system) to calibrate through the solver")
    p.add_argument("--data", required=True, help="CSV file of measurements")
    p.add_argument("--params", default=None, help="comma-separated names to fit (parameters, or x0.<state>)"
                                                  "; default: every parameter")
    p.add_argument("--out", default="calibration", help="report folder (must be new or empty)")
    p.add_argument("--subject", default=None, help="subject column (default 'subject')")
    p.add_argument("--time", default=None, help="time column (default 'time')")
    p.add_argument("--observables", default=None,
                   help="comma-separated observable names; for a wide table, its value columns")
    p.add_argument("--covariates", default=None, help="comma-separated per-subject covariate columns")
    p.add_argument("--observe", default=None,
                   help="observables from states and parameters, e.g. 'conc=A_central/V' (default: the "
                        "observables are states)")
    p.add_argument("--initial", default=None,
                   help="initial states from covariates, e.g. 'A_gut=Dose*Wt,A_central=0' (default: the "
                        "system's default_x0)")
    p.add_argument("--noise", choices=["gaussian", "proportional", "lognormal"], default="gaussian",
                   help="measurement noise: additive gaussian, proportional to the value, or log-normal")
    p.add_argument("--sigma", type=float, default=None, help="noise level (default: fitted per subject)")
    p.add_argument("--shared", action="store_true", help="one estimate shared by all subjects")
    p.add_argument("--starts", type=positive_int, default=4, help="start points per subject")
    p.add_argument("--no-polish", action="store_true", help="skip the solver polish (the check still runs "
                                                            "in report.json only if polished)")
    p.add_argument("--on-outside", choices=["raise", "warn"], default="raise",
                   help="bounds outside the map's trained range: refuse, or warn and go on")
    p.add_argument("--posterior", action="store_true",
                   help="also sample one subject's posterior with emcee (corner.png)")
    p.add_argument("--posterior-subject", default=None, help="that subject (default: the first)")
    p.add_argument("--posterior-steps", type=positive_int, default=2000, help="emcee steps")
    p.set_defaults(func=run)


def _observations(args: argparse.Namespace, system: Any) -> Any:
    import pandas as pd

    from ..steer import Observations

    preset = dict(PRESETS.get(system.name, {}))
    if args.observe or args.initial or args.observables:  # the user's own layout: keep only the columns
        preset = {k: v for k, v in preset.items() if k in ("subject", "time", "covariates")}
    pick = lambda key: getattr(args, key) or preset.get(key)  # noqa: E731
    if not os.path.isfile(args.data):
        raise ConfigError(f"--data {args.data}: no such file; give a CSV of measurements")
    try:
        frame = pd.read_csv(args.data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError(f"--data {args.data}: cannot read it as CSV ({err})") from None
    observables = tuple(v.strip() for v in pick("observables").split(",")) if pick("observables") else None
    covariates = tuple(v.strip() for v in pick("covariates").split(",")) if pick("covariates") else ()
    columns = {k: pick(k) for k in ("subject", "time") if pick(k)}
    observe = _observe(pick("observe"), system, observables) if pick("observe") else None
    if observe is not None:
        observables = tuple(observe.names)
    initial = _initial(pick("initial"), system) if pick("initial") else None
    return Observations.from_dataframe(frame, system, columns=columns, observables=observables,
                                       covariates=covariates, observe=observe, initial=initial)


def _observe(text: str, system: Any, observables: Any) -> Any:
    import torch

    pairs = parse_assignments(text, "--observe")

    def observe(x: Any, p: Any) -> Any:
        names = {s: x[..., i] for i, s in enumerate(system.state_names)}
        shape = (-1, *([1] * (x.ndim - 2)))
        names.update({q: p[:, j].reshape(shape) for j, q in enumerate(system.param_names)})
        outs = [_evaluate(tree, names, "--observe") for _, tree in pairs]
        return torch.stack([o if torch.is_tensor(o) else torch.full_like(x[..., 0], o) for o in outs], -1)

    observe.names = [n for n, _ in pairs]
    if observables and set(observables) != set(observe.names):
        raise ConfigError(f"--observe defines {observe.names} but --observables names {list(observables)}")
    return observe


def _initial(text: str, system: Any) -> Any:
    pairs = dict(parse_assignments(text, "--initial"))
    unknown = sorted(set(pairs) - set(system.state_names))
    if unknown:
        raise ConfigError(f"--initial names {unknown}, not states of {system.name} "
                          f"{list(system.state_names)}")

    def initial(cov: dict) -> list[float]:
        return [float(_evaluate(pairs[s], cov, "--initial")) if s in pairs else float(d)
                for s, d in zip(system.state_names, system.default_x0)]

    return initial


def _model(text: str) -> Any:
    from ..train.checkpoint import load

    path = Path(text)
    if path.exists():
        return load(path)
    try:
        return get_cli_system(text)
    except SystemNotFoundError as err:  # a mistyped checkpoint folder reads as a system name
        raise SystemNotFoundError(f"{text!r} is neither a checkpoint folder (no such path) nor a "
                                  f"system: {err}") from None


def run(args: argparse.Namespace) -> int:
    """Calibrate and write the report folder (:func:`flowsim.steer.calibration_report`)."""
    import torch

    from ..steer import LogLikelihood, Noise, calibrate, calibration_report, sample_posterior

    check_output(args.out)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {args.out} exists and is not empty; give a new folder")
    model = _model(args.model)
    system = model.system if hasattr(model, "system") else model
    obs = _observations(args, system)
    params = tuple(v.strip() for v in args.params.split(",")) if args.params else None
    noise = Noise(args.noise, sigma=args.sigma)
    fit = calibrate(model, obs, params=params, noise=noise, per_subject=not args.shared,
                    n_starts=args.starts, polish=not args.no_polish, on_outside=args.on_outside)
    post = None
    if args.posterior:
        subject = args.posterior_subject or obs.subjects[0]
        one = obs.select([subject])
        names = [str(v) for v in fit["param"].values]
        row = fit.sel(subject=str(subject)) if not args.shared else fit.isel(subject=0)
        fixed = {str(k): float(v) for k, v in zip(fit["fixed_param"].values, fit["fixed"].values)}
        sigma = args.sigma
        if not sigma:  # this subject's fitted level per observable, at the estimate
            ll = LogLikelihood(model, one, params=names, noise=noise, fixed=fixed, on_outside="warn")
            pad = ll.padded
            level = noise.sigma_hat(pad.values, ll.predict(torch.as_tensor(row["estimate"].values)[None]),
                                    pad.mask)
            sigma = tuple(float(v) for v in level.reshape(-1))
        post = sample_posterior(model, one, params=names, fixed=fixed,
                                noise=Noise(args.noise, sigma=sigma), steps=args.posterior_steps)
    calibration_report(fit, obs, out, posterior=post,
                       extra={"command": "flowsim calibrate " + args.model, "data": os.fspath(args.data)})
    print(f"wrote {out}/report.md", flush=True)
    return 0
