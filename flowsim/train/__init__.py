"""Training: objectives, the trainer :func:`fit`, checkpoints."""

from .bank import TrajectoryBank as TrajectoryBank
from .checkpoint import load as load
from .checkpoint import save as save
from .ensemble import EnsembleFitResult as EnsembleFitResult
from .ensemble import fit_ensemble as fit_ensemble
from .objectives import Diagonal as Diagonal
from .objectives import Eulerian as Eulerian
from .objectives import Lagrangian as Lagrangian
from .objectives import Objective as Objective
from .objectives import PairRegression as PairRegression
from .objectives import Rollout as Rollout
from .objectives import Semigroup as Semigroup
from .objectives import make_objectives as make_objectives
from .trainer import FitResult as FitResult
from .trainer import fit as fit

__all__ = [
    "Diagonal", "EnsembleFitResult", "Eulerian", "FitResult", "Lagrangian", "Objective",
    "PairRegression", "Rollout", "Semigroup", "TrajectoryBank", "fit", "fit_ensemble", "load",
    "make_objectives", "save",
]
