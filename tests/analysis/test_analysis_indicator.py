"""The consistency indicator and how well it ranks the true error."""

from __future__ import annotations

import pytest
import torch

from flowsim import ConfigError, ShapeError, TimeGridError
from flowsim.analysis import ExactFlowMap, consistency_indicator, indicator_quality


def test_exact_map_is_consistent(exact, sho):
    x = sho.sample_initial(32, generator=1)
    s = torch.zeros(32, dtype=torch.float64)
    t = torch.linspace(0.1, 6.0, 32, dtype=torch.float64)
    ind = consistency_indicator(exact, x, s, t, {"omega": 0.8})
    assert ind.shape == (32,) and ind.dtype == torch.float64
    assert float(ind.max()) < 1e-12
    nrm = consistency_indicator(exact, x, 0.0, 1.0, metric="normalised_error", sigma=[1.0, 1.0], u=0.3)
    assert float(nrm.max()) < 1e-12


def _jump_dependent(sho, eps=1e-2):
    """Error ε Δ² x: grows with the jump size and varies between states."""
    return ExactFlowMap(sho, perturbation=lambda s, t, x, p: eps * ((t - s) ** 2)[:, None] * x)


def test_indicator_tracks_a_jump_dependent_error(sho, sho_ref):
    fm = _jump_dependent(sho)
    x = sho.sample_initial(16, generator=2)
    small = consistency_indicator(fm, x, 0.0, 0.5)
    large = consistency_indicator(fm, x, 0.0, 4.0)
    assert bool((large > small).all())
    ds = indicator_quality(fm, sho_ref, n_jumps=6)
    assert float(ds.spearman) > 0.5
    assert ds.indicator.dims == ("sample",) and ds.sizes["sample"] == ds.error.size
    assert ds.spearman_by_jump.dims == ("jump_size",)
    assert ds.error.attrs["metric"] == "relative_error"
    ds_n = indicator_quality(fm, sho_ref, n_jumps=4, metric="normalised_error")
    assert float(ds_n.spearman) > 0.5


def test_indicator_bad_inputs(exact, sho):
    x = sho.sample_initial(4, generator=0)
    with pytest.raises(TimeGridError):
        consistency_indicator(exact, x, 1.0, 1.0)
    with pytest.raises(TimeGridError):
        consistency_indicator(exact, x, 0.0, 1.0, u=2.0)
    with pytest.raises(TimeGridError, match="max_jump"):
        consistency_indicator(exact, x, 0.0, 100.0)
    with pytest.raises(ConfigError):
        consistency_indicator(exact, x, 0.0, 1.0, metric="normalised_error")
    with pytest.raises(ConfigError):
        consistency_indicator(exact, x, 0.0, 1.0, metric="rmse")
    with pytest.raises(ShapeError):
        consistency_indicator(exact, torch.zeros(4, 3, dtype=torch.float64), 0.0, 1.0)
    with pytest.raises(ShapeError):
        consistency_indicator(exact, x, torch.zeros(3), 1.0)
