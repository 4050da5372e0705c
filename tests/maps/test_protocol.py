"""FlowMapLike: what FlowMap, FlowMapEnsemble and ExactFlowMap share; flowsim.testing helpers."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim import FlowMapLike
from flowsim.maps import check_flowmap_like
from flowsim.testing import ExactFlowMap, assert_flowmap_like, assert_flowmaps_close


class Minimal:
    """A user's wrapper with only what the analysis functions call."""

    def __init__(self):
        self.inner = ExactFlowMap("harmonic_oscillator")
        self.system, self.dtype, self.max_jump = self.inner.system, torch.float64, 1.0

    def forward(self, s, t, x, p):
        return self.inner.forward(s, t, x, p)


@pytest.fixture(scope="module")
def maps():
    fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1)
    ens = flowsim.FlowMapEnsemble([flowsim.FlowMap("lotka_volterra", width=8, depth=1, seed=k)
                                   for k in (0, 1)])
    return [fm, ens, ExactFlowMap("harmonic_oscillator"), ExactFlowMap("lotka_volterra", dtype=torch.float32)]


def test_the_three_maps_are_flowmaplike(maps):
    for m in maps:
        assert isinstance(m, FlowMapLike)
        assert check_flowmap_like(m, complete=True) is m.system
        assert_flowmap_like(m)
    assert flowsim.FlowMapLike is flowsim.maps.FlowMapLike
    assert flowsim.testing.ExactFlowMap is flowsim.analysis.ExactFlowMap


def test_non_maps_are_not_flowmaplike():
    for obj in (object(), torch.nn.Linear(2, 2), Minimal()):
        assert not isinstance(obj, FlowMapLike)
        with pytest.raises(AssertionError):
            assert_flowmap_like(obj)


def test_a_minimal_wrapper_still_works_with_analysis():
    m = Minimal()
    assert check_flowmap_like(m) is m.system  # what analysis needs
    with pytest.raises(flowsim.ConfigError, match="lacks"):
        check_flowmap_like(m, complete=True)
    sho = m.system
    grid = torch.linspace(0, 2, 21, dtype=torch.float64)
    ref = flowsim.reference_solve(sho, sho.sample_initial(6, 0), grid)
    ds = flowsim.analysis.error_vs_steps(m, ref, horizon=1.0, n_steps=[1, 2])
    assert float(ds.median_relative_error.max()) < 1e-6


@pytest.mark.parametrize("attr,value,match", [
    ("system", "harmonic_oscillator", "ODESystem"),
    ("dtype", torch.int64, "dtype"),
    ("max_jump", 0.0, "max_jump"),
    ("max_jump", float("inf"), "max_jump"),
    ("max_jump", "long", "max_jump"),
])
def test_bad_members_raise_config_error(attr, value, match):
    m = Minimal()
    setattr(m, attr, value)
    with pytest.raises(flowsim.ConfigError, match=match):
        check_flowmap_like(m)
    with pytest.raises(flowsim.ConfigError, match=match):
        flowsim.analysis.error_vs_jump(m, None)


def test_assert_flowmaps_close():
    sho = flowsim.get_system("harmonic_oscillator")
    exact = ExactFlowMap(sho, max_jump=0.5)
    x0 = sho.sample_initial(3, generator=1)
    t = torch.tensor([0.0, 0.7, 2.0], dtype=torch.float64)
    assert_flowmaps_close(exact, ExactFlowMap(sho, max_jump=0.3), x0, t, rtol=1e-9, atol=1e-9)
    off = ExactFlowMap(sho, max_jump=0.5, perturbation=lambda s, tt, x, p: 1e-4 * (tt - s)[:, None] * x)
    assert_flowmaps_close(off, exact, x0, t, rtol=1e-3, atol=1e-6)
    with pytest.raises(AssertionError):
        assert_flowmaps_close(off, exact, x0, t, rtol=1e-7, atol=1e-9)
    # a float32 map against float64 one: each gets x0 in its own dtype
    ex32 = ExactFlowMap(sho, dtype=torch.float32)
    assert_flowmaps_close(ex32, exact, x0, t, rtol=1e-5, atol=1e-6)
