"""flowsim.metrics: the one definition of the error metrics, used by training and analysis alike."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import flowsim
import flowsim.analysis.metrics
from flowsim import metrics
from flowsim.metrics import normalised_error, relative_error, state_std, summarise_errors

F64 = torch.float64


def test_relative_error_by_hand():
    ref = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=F64)
    x = torch.tensor([[3.0, 4.5], [1.0, 0.1]], dtype=F64)
    assert relative_error(x, ref).tolist() == pytest.approx([0.5 / 5.0, 0.1])
    # batched over any leading shape, float32 inputs computed in float64
    out = relative_error(x.float()[None].expand(3, 2, 2), ref[None].expand(3, 2, 2))
    assert out.shape == (3, 2) and out.dtype == F64


def test_relative_error_near_and_at_zero():
    # a state passing near zero: tiny absolute error, huge relative error, ordinary normalised error
    ref = torch.tensor([[1e-8, 0.0]], dtype=F64)
    x = torch.tensor([[1e-8 + 1e-6, 0.0]], dtype=F64)
    assert float(relative_error(x, ref)) == pytest.approx(100.0)
    assert float(normalised_error(x, ref, [1.0, 1.0])) == pytest.approx(1e-6 / math.sqrt(2))
    # an exactly zero reference: the clamp (smallest normal float64) keeps it finite, not NaN
    zero = torch.zeros(1, 2, dtype=F64)
    assert float(relative_error(zero, zero)) == 0.0
    big = float(relative_error(torch.tensor([[1e-3, 0.0]], dtype=F64), zero))
    assert math.isfinite(big) and big == pytest.approx(1e-3 / torch.finfo(F64).tiny)
    # every reference norm above the clamp is used unchanged (the clamp never touches real data)
    sub = torch.tensor([[1e-150, 0.0]], dtype=F64)  # (its square must not underflow)
    assert float(relative_error(2 * sub, sub)) == pytest.approx(1.0)


def test_normalised_error_by_hand():
    x = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=F64)
    ref = torch.zeros(2, 2, dtype=F64)
    assert normalised_error(x, ref, [1.0, 2.0]).tolist() == pytest.approx([1.0, 0.0])
    assert normalised_error(x, ref, torch.tensor([2.0, 2.0])).tolist() == pytest.approx(
        [math.sqrt(0.25 + 1.0) / math.sqrt(2), 0.0])


def test_state_std_by_hand_and_its_floor():
    x = torch.tensor([[0.0, 1.0], [2.0, 1.0]], dtype=F64)
    sd = state_std(x)
    assert sd[0] == pytest.approx(math.sqrt(2.0))  # unbiased (n - 1) standard deviation
    assert sd[1] == pytest.approx(math.sqrt(2.0) * metrics.SIGMA_MIN_REL)  # relative floor
    # the floor is relative, so it does not depend on the units: 1e-13-sized states keep their σ
    small = x * 1e-13
    assert state_std(small)[0] == pytest.approx(math.sqrt(2.0) * 1e-13)
    # every state constant: σ = 1
    assert state_std(torch.ones(4, 3)).tolist() == [1.0, 1.0, 1.0]
    # non-finite rows are left out; leading shapes are flattened
    y = torch.tensor([[[0.0, 0.0], [float("nan"), 5.0]], [[2.0, 2.0], [float("inf"), 1.0]]])
    assert state_std(y).tolist() == pytest.approx([math.sqrt(2.0)] * 2)


def test_summarise_errors_counts_failures_as_inf():
    assert summarise_errors(torch.tensor([1.0, 2.0, 3.0, 4.0]), (0.5,)) == (2.5, [2.5])
    med, (q9,) = summarise_errors(torch.tensor([1.0, float("nan"), 3.0]), (0.9,))
    assert med == 3.0 and q9 == math.inf
    med, qs = summarise_errors(torch.tensor([]), (0.1, 0.9))
    assert math.isnan(med) and all(math.isnan(v) for v in qs)


@pytest.mark.parametrize("call", [
    lambda: relative_error(torch.ones(2, 2), torch.ones(2, 3)),
    lambda: relative_error(torch.tensor(1.0), torch.tensor(1.0)),
    lambda: normalised_error(torch.ones(2, 2), torch.ones(2, 3), [1.0, 1.0]),
    lambda: normalised_error(torch.ones(2, 2), torch.ones(2, 2), [1.0]),
    lambda: normalised_error(torch.ones(2, 2), torch.ones(2, 2), [1.0, 0.0]),
    lambda: normalised_error(torch.ones(2, 2), torch.ones(2, 2), [1.0, float("inf")]),
    lambda: state_std(torch.ones(1, 2)),
    lambda: state_std(torch.tensor([[1.0, float("nan")], [2.0, 1.0]])),
    lambda: state_std(torch.tensor(3.0)),
], ids=["rel-shape", "rel-0d", "norm-shape", "sigma-shape", "sigma-zero", "sigma-inf", "std-one-row",
        "std-one-finite-row", "std-0d"])
def test_bad_shapes_raise_shape_error(call):
    with pytest.raises(flowsim.ShapeError):
        call()


@pytest.mark.parametrize("call", [
    lambda: metrics.metric_attrs("rmse"),
    lambda: metrics.check_quantiles([0.5, 1.0]),
    lambda: metrics.check_quantiles([]),
    lambda: metrics.check_quantiles("abc"),
])
def test_bad_options_raise_config_error(call):
    with pytest.raises(flowsim.ConfigError):
        call()


def test_the_analysis_names_are_the_same_objects():
    for name in ("relative_error", "normalised_error", "state_std", "METRICS"):
        assert getattr(flowsim.analysis, name) is getattr(metrics, name)
        assert getattr(flowsim.analysis.metrics, name) is getattr(metrics, name)
    assert flowsim.metrics is metrics


@pytest.mark.parametrize("system", ["fitzhugh_nagumo", "harmonic_oscillator"])
def test_training_validation_and_analysis_give_the_same_numbers(system):
    sys_ = flowsim.get_system(system)
    T = sys_.timescale
    sol = flowsim.reference_solve(sys_, sys_.sample_initial(10, generator=2),
                                  torch.linspace(0, 2 * T, 41, dtype=F64))
    bank = flowsim.train.TrajectoryBank.from_solution(sol)
    fm = flowsim.FlowMap(sys_, width=16, depth=1, seed=1)
    jumps = [0.1 * T, 0.5 * T, T]
    val = flowsim.train.validation.jump_errors(fm, bank, jumps, from_start=True)
    ds = flowsim.analysis.error_vs_jump(fm, sol, jumps, from_start=True)
    assert np.allclose(ds.jump.values, jumps)
    for h, rel, nrm in zip(jumps, ds.median_relative_error.values, ds.median_normalised_error.values):
        assert val[f"rel@{h:.4g}"] == pytest.approx(float(rel), rel=1e-12)
        assert val[f"norm@{h:.4g}"] == pytest.approx(float(nrm), rel=1e-12)
    assert ds.attrs["sigma"] == pytest.approx(state_std(bank.x).tolist(), rel=1e-15)
