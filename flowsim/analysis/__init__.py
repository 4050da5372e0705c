"""Evaluation of flow maps: how far to trust each jump, and what it buys against solvers.

Every analysis returns an :class:`xarray.Dataset` that reports both error metrics (relative
and normalised, see :data:`METRICS`; defined once in :mod:`flowsim.metrics`) and says which
is which in its ``attrs``; each has a ``plot_…`` companion returning a matplotlib Figure,
and :func:`save_figure` writes a PNG. The functions take a :class:`flowsim.FlowMapLike` — a
:class:`flowsim.FlowMap`, a :class:`flowsim.FlowMapEnsemble`, an :class:`ExactFlowMap` or your
own object; they call only ``forward(s, t, x, p)``, ``system``, ``dtype`` and ``max_jump``.
"""

from ..metrics import METRICS as METRICS
from ..metrics import normalised_error as normalised_error
from ..metrics import relative_error as relative_error
from ..metrics import state_std as state_std
from .chaos import valid_prediction_time as valid_prediction_time
from .distances import c2st as c2st
from .distances import energy_distance as energy_distance
from .distances import mmd as mmd
from .distances import mode_coverage as mode_coverage
from .distances import sliced_wasserstein as sliced_wasserstein
from .exact import ExactFlowMap as ExactFlowMap
from .indicator import consistency_indicator as consistency_indicator
from .indicator import indicator_quality as indicator_quality
from .invariants import invariant_drift as invariant_drift
from .jumps import error_vs_jump as error_vs_jump
from .machine import MachineLoad as MachineLoad
from .machine import machine_load as machine_load
from .plots import plot_error_vs_jump as plot_error_vs_jump
from .plots import plot_error_vs_steps as plot_error_vs_steps
from .plots import plot_indicator_quality as plot_indicator_quality
from .plots import plot_invariant_drift as plot_invariant_drift
from .plots import plot_valid_prediction_time as plot_valid_prediction_time
from .plots import plot_work_precision as plot_work_precision
from .plots import save_figure as save_figure
from .speedup import MAX_MATCHED_ERROR as MAX_MATCHED_ERROR
from .speedup import MatchedSpeedup as MatchedSpeedup
from .speedup import break_even_trajectories as break_even_trajectories
from .speedup import speedup_at_matched_error as speedup_at_matched_error
from .steps import error_vs_steps as error_vs_steps
from .work_precision import SOLVERS as SOLVERS
from .work_precision import Sweep as Sweep
from .work_precision import work_precision as work_precision

__all__ = [
    "METRICS",
    "SOLVERS",
    "Sweep",
    "ExactFlowMap",
    "MAX_MATCHED_ERROR",
    "MachineLoad",
    "MatchedSpeedup",
    "break_even_trajectories",
    "consistency_indicator",
    "error_vs_jump",
    "error_vs_steps",
    "indicator_quality",
    "invariant_drift",
    "machine_load",
    "normalised_error",
    "plot_error_vs_jump",
    "plot_error_vs_steps",
    "plot_indicator_quality",
    "plot_invariant_drift",
    "plot_valid_prediction_time",
    "plot_work_precision",
    "relative_error",
    "save_figure",
    "speedup_at_matched_error",
    "state_std",
    "valid_prediction_time",
    "work_precision",
    "energy_distance",
    "mmd",
    "sliced_wasserstein",
    "c2st",
    "mode_coverage",
]
