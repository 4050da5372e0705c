"""Steering through a surrogate: calibration to data, posteriors and reward optimisation.

Every answer computed through a flow map is checked with the reference solver before it is
reported. The forward model both share is a :class:`Predictor` (:mod:`flowsim.steer.forward`).
"""

from .forward import MapPredictor, Predictor, SolverPredictor, predictor

__all__ = ["Predictor", "MapPredictor", "SolverPredictor", "predictor"]
