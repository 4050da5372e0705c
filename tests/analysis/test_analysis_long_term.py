"""invariant_drift and valid_prediction_time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from flowsim import ConfigError, TimeGridError
from flowsim.analysis import ExactFlowMap, invariant_drift, valid_prediction_time

EPS = 1e-4


def test_exact_map_conserves_energy(exact, sho):
    x0 = sho.sample_initial(16, generator=5)
    ds = invariant_drift(exact, sho, x0, {"omega": 1.3}, horizon=2 * math.pi, n_steps=(1, 4, 16))
    assert ds.invariant.values.tolist() == ["energy"]
    assert float(ds.final_relative_drift.max()) < 1e-10
    assert float(ds.final_absolute_drift.max()) < 1e-10
    assert ds.relative_drift.dims == ("invariant", "n_steps", "step")
    assert np.isnan(ds.relative_drift.sel(n_steps=1).values[0, 2:]).all()  # only N + 1 states exist


def test_scaled_map_drifts_by_the_known_amount(sho):
    """X = (1 + ε) X_exact scales the (quadratic) energy by (1 + ε)² per jump."""
    fm = ExactFlowMap(sho, perturbation=lambda s, t, x, p: EPS * ExactFlowMap(sho)(s, t, x, p))
    ds = invariant_drift(fm, None, sho.sample_initial(8, generator=6), horizon=2.0, n_steps=(1, 2, 8))
    expected = (1 + EPS) ** (2 * ds.n_steps.values) - 1
    np.testing.assert_allclose(ds.final_relative_drift.values[0], expected, rtol=1e-6)
    along = ds.relative_drift.sel(n_steps=8).values[0]
    np.testing.assert_allclose(along, (1 + EPS) ** (2 * np.arange(9)) - 1, rtol=1e-6, atol=1e-15)
    np.testing.assert_allclose(ds.jump.values, 2.0 / ds.n_steps.values)


def test_invariant_drift_needs_invariants(lorenz):
    with pytest.raises(ConfigError, match="conserved"):
        invariant_drift(ExactFlowMap(lorenz), lorenz, lorenz.sample_initial(2, 0), horizon=0.1)


def test_exact_map_reaches_the_horizon(lorenz, lorenz_ref):
    ds = valid_prediction_time(ExactFlowMap(lorenz), lorenz_ref)
    lam = lorenz.lyapunov_exponent
    assert bool(ds.reached_horizon.all())
    np.testing.assert_allclose(ds.valid_prediction_time.values, 1.0)
    np.testing.assert_allclose(ds.valid_prediction_time_lyapunov.values, lam)
    assert float(ds.median_valid_prediction_time_lyapunov) == pytest.approx(lam)
    assert float(ds.median_normalised_error.max()) < 1e-6
    assert ds.attrs["threshold"] == 0.4 and ds.attrs["lyapunov_exponent"] == lam


def test_a_bad_map_loses_validity_early(lorenz, lorenz_ref):
    """An offset of ~3σ per jump crosses the threshold within the first stored gap."""
    fm = ExactFlowMap(lorenz, perturbation=lambda s, t, x, p: 20.0 + 0 * x)
    ds = valid_prediction_time(fm, lorenz_ref, horizon=0.5)
    assert not bool(ds.reached_horizon.any())
    assert float(ds.valid_prediction_time.max()) <= 0.1 + 1e-12
    assert ds.attrs["horizon"] == 0.5 and ds.sizes["lead_time"] == 6


def test_vpt_needs_a_lyapunov_exponent(exact, sho_ref):
    with pytest.raises(ConfigError, match="Lyapunov"):
        valid_prediction_time(exact, sho_ref)
    ds = valid_prediction_time(exact, sho_ref, lyapunov_exponent=1.0, horizon=1.0)
    assert bool(ds.reached_horizon.all())


@pytest.mark.parametrize("horizon", [0.0, -1.0, float("nan")])
def test_non_positive_horizon_is_refused(exact, sho, lorenz, lorenz_ref, horizon):
    with pytest.raises(TimeGridError):
        invariant_drift(exact, sho, sho.sample_initial(2, 0), horizon=horizon)
    with pytest.raises(TimeGridError):
        valid_prediction_time(ExactFlowMap(lorenz), lorenz_ref, horizon=horizon)


def test_drift_jumps_beyond_max_jump_are_refused(sho):
    fm = ExactFlowMap(sho, max_jump=1.0)
    with pytest.raises(TimeGridError, match="max_jump"):
        invariant_drift(fm, sho, sho.sample_initial(2, 0), horizon=4.0, n_steps=(1, 8))
