"""Steering through a surrogate: calibration to data, posteriors and reward optimisation.

Every answer computed through a flow map is checked with the reference solver before it is
reported. The forward model both share is a :class:`Predictor` (:mod:`flowsim.steer.forward`).
"""

from .calibrate_config import CALIBRATE_SOLVER, CalibrateConfig
from .calibrate_fit import calibrate
from .calibrate_report import calibration_report, fitted_curves
from .calibrate_scipy import scipy_fit
from .controls import Control, Variables
from .datasets import THEOPH_CSV, load_theoph, theoph_observations, train_theoph_map
from .forward import MapPredictor, Predictor, SolverPredictor, predictor
from .gradients import gradient_check, sensitivities
from .likelihood import LogLikelihood, log_likelihood
from .noise import Noise
from .observations import Observations, PaddedObservations
from .optimise import OptimiseConfig, optimise
from .posterior import PosteriorConfig, PosteriorResult, sample_posterior
from .posterior_check import posterior_map_check
from .ranges import check_range, resolve_bounds, trained_range

__all__ = ["Predictor", "MapPredictor", "SolverPredictor", "predictor",
           "Observations", "PaddedObservations", "Noise", "LogLikelihood", "log_likelihood",
           "load_theoph", "theoph_observations", "THEOPH_CSV", "trained_range", "check_range",
           "resolve_bounds", "calibrate", "CalibrateConfig", "scipy_fit", "train_theoph_map",
           "calibration_report", "fitted_curves", "CALIBRATE_SOLVER",
           "Control", "Variables", "OptimiseConfig", "optimise", "gradient_check", "sensitivities",
           "PosteriorConfig", "PosteriorResult", "sample_posterior", "posterior_map_check"]
