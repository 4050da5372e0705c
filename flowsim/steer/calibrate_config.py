"""What determines a calibration: :class:`CalibrateConfig` (typed, frozen, validated once)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..solve.options import SolverOptions
from .noise import Noise
from .ranges import ON_OUTSIDE

__all__ = ["CalibrateConfig", "CALIBRATE_SOLVER"]

#: The solver of calibration's check, polish and baseline: dopri5 at rtol 1e-7, atol 1e-9.
CALIBRATE_SOLVER = SolverOptions(method="dopri5", rtol=1e-7, atol=1e-9)


def _pairs(name: str, value: Any) -> dict[str, tuple[float, float]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping name -> (a, b); got {type(value).__name__}")
    out = {}
    for k, v in value.items():
        try:
            a, b = (float(x) for x in v)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}[{k!r}] must be a pair of numbers; got {v!r}") from None
        if not (math.isfinite(a) and math.isfinite(b)):
            raise ConfigError(f"{name}[{k!r}] must be finite; got {v!r}")
        out[str(k)] = (a, b)
    return out


@dataclass(frozen=True)
class CalibrateConfig:
    """Every option of :func:`flowsim.steer.calibrate`, validated once.

    Attributes
    ----------
    params:
        Names fitted: parameters and initial states ``"x0.<state>"`` (default: every parameter).
    per_subject:
        ``True`` (default): one estimate per subject; ``False``: one shared by all subjects.
    noise:
        The :class:`~flowsim.steer.Noise` model (default gaussian, σ fitted per subject).
    bounds:
        ``{name: (low, high)}`` of the search box; the rest default to the map's trained range
        (the prior for the solver). Bounds outside the map's range: see ``on_outside``.
    prior:
        ``{name: (mean, sd)}``: a Gaussian prior on those parameters (the estimate is then a
        MAP); none (default): maximum likelihood inside the box.
    fixed:
        Values of the parameters not fitted (default: the system's defaults).
    n_starts:
        Start points per subject (the best of ``n_candidates`` random points in the box).
    n_candidates:
        Random points per subject screened for the starts (one batched evaluation).
    steps:
        Damped-Newton iterations through the model (map or solver).
    polish:
        After a map fit: re-evaluate with the reference solver, then ``polish_steps`` solver
        iterations from the map's optimum (always on unless set ``False``).
    polish_steps:
        Solver iterations of the polish (converged subjects stop early).
    polish_guard:
        Where a subject's polish does not converge inside the box (``at_bound``, ``max_steps``),
        polish it again from the random candidate the solver likes best and keep the better end
        (``polish_from`` says which won): a map optimum in the wrong basin is then caught.
    solver:
        The torchdiffeq :class:`~flowsim.SolverOptions` of the check and the polish, and of a
        calibration through the solver (default :data:`CALIBRATE_SOLVER`: dopri5 at rtol 1e-7,
        atol 1e-9; on the Theoph fits its objective differs from rtol 1e-10's by 2e-8 nats).
    tol:
        Change of the negative log-likelihood (nats) and Newton decrement below which a fit has
        converged (1e-6: the estimate is then within ~1e-3 standard errors of the optimum).
    on_outside:
        Bounds outside the map's trained range: ``"raise"`` (default) or ``"warn"``.
    seed:
        Seed of the random candidates.

    Examples
    --------
    >>> from flowsim.steer import CalibrateConfig
    >>> CalibrateConfig(params=("ka", "ke", "V"), n_starts=4).polish
    True
    """

    params: tuple[str, ...] | None = None
    per_subject: bool = True
    noise: Noise = field(default_factory=Noise)
    bounds: Mapping[str, tuple[float, float]] | None = None
    prior: Mapping[str, tuple[float, float]] | None = None
    fixed: Mapping[str, float] | None = None
    n_starts: int = 4
    n_candidates: int = 64
    steps: int = 40
    polish: bool = True
    polish_steps: int = 40
    polish_guard: bool = True
    solver: SolverOptions | None = None
    tol: float = 1e-6
    on_outside: str = "raise"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.params is not None:
            if isinstance(self.params, str):
                object.__setattr__(self, "params", (self.params,))
            object.__setattr__(self, "params", tuple(str(p) for p in self.params))
            if not self.params:
                raise ConfigError("params must name at least one parameter to fit (or None for all)")
        if not isinstance(self.noise, Noise):
            raise ConfigError(f"noise must be a flowsim.steer.Noise; got {type(self.noise).__name__}")
        object.__setattr__(self, "bounds", _pairs("bounds", self.bounds))
        prior = _pairs("prior", self.prior)
        if any(sd <= 0 for _, sd in prior.values()):
            raise ConfigError(f"prior standard deviations must be positive; got {prior}")
        object.__setattr__(self, "prior", prior)
        fixed = {}
        for k, v in (self.fixed or {}).items():
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ConfigError(f"fixed[{k!r}] must be a finite number; got {v!r}")
            fixed[str(k)] = float(v)
        object.__setattr__(self, "fixed", fixed)
        for name, low in (("n_starts", 1), ("n_candidates", 1), ("steps", 1), ("polish_steps", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"{name} must be an integer >= {low}; got {v!r}")
        if self.n_candidates < self.n_starts:
            raise ConfigError(f"n_candidates ({self.n_candidates}) must be at least n_starts "
                              f"({self.n_starts})")
        if not (isinstance(self.tol, (int, float)) and 0 < self.tol < 1):
            raise ConfigError(f"tol must be in (0, 1); got {self.tol!r}")
        if self.on_outside not in ON_OUTSIDE:
            raise ConfigError(f"on_outside must be one of {list(ON_OUTSIDE)}; got {self.on_outside!r}")
        if self.solver is None:
            object.__setattr__(self, "solver", CALIBRATE_SOLVER)
        if self.solver is not None and (not isinstance(self.solver, SolverOptions)
                                        or self.solver.backend != "torchdiffeq"):
            raise ConfigError("solver must be a SolverOptions with backend='torchdiffeq' (the polish "
                              "differentiates through it)")
        for name in ("per_subject", "polish", "polish_guard"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False; got {getattr(self, name)!r}")
