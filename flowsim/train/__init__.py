"""Training: the configuration, data preparation, objectives, the trainer :func:`fit`, checkpoints."""

from .bank import TrajectoryBank as TrajectoryBank
from .batches import BatchKind as BatchKind
from .batches import BatchSampler as BatchSampler
from .batches import batch_kind as batch_kind
from .batches import check_needs as check_needs
from .checkpoint import load as load
from .checkpoint import save as save
from .config import FitConfig as FitConfig
from .config import RECIPE_128x6 as RECIPE_128x6
from .config import warn_if_tf32 as warn_if_tf32
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
from .prepare import PreparedData as PreparedData
from .prepare import as_bank as as_bank
from .prepare import prepare as prepare
from .trainer import FitResult as FitResult
from .trainer import fit as fit

__all__ = [
    "BatchKind", "BatchSampler", "Diagonal", "EnsembleFitResult", "Eulerian", "FitConfig", "RECIPE_128x6",
    "FitResult", "Lagrangian", "Objective", "PairRegression", "PreparedData", "Rollout",
    "Semigroup", "TrajectoryBank", "as_bank", "batch_kind", "check_needs", "fit", "fit_ensemble",
    "load", "make_objectives", "prepare", "save", "warn_if_tf32",
]
