"""The error metrics, re-exported from :mod:`flowsim.metrics` (their one definition).

Kept so ``flowsim.analysis.relative_error`` and friends, and imports from this module, keep
working; new code imports :mod:`flowsim.metrics`.
"""

from ..metrics import METRICS as METRICS
from ..metrics import SIGMA_MIN_REL as SIGMA_MIN_REL
from ..metrics import check_quantiles as check_quantiles
from ..metrics import metric_attrs as metric_attrs
from ..metrics import normalised_error as normalised_error
from ..metrics import relative_error as relative_error
from ..metrics import state_std as state_std
from ..metrics import summarise_errors as summarise_errors

__all__ = [
    "METRICS",
    "SIGMA_MIN_REL",
    "check_quantiles",
    "metric_attrs",
    "normalised_error",
    "relative_error",
    "state_std",
    "summarise_errors",
]
