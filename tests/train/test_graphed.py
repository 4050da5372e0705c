"""The CUDA-graph training step's CPU behaviour (its GPU equality test is in tests/cuda)."""

from __future__ import annotations

import pytest
import torch

import flowsim
from flowsim.train import FitConfig


def test_cuda_graph_on_cpu_warns_and_trains_the_same_run():
    sysm = flowsim.get_system("lotka_volterra")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(16, 0), torch.linspace(0, 10, 21))
    kw = dict(steps=12, batch_size=32, progress=False)
    eager = flowsim.fit(flowsim.FlowMap(sysm, width=16, depth=2), "pairs", sol, **kw)
    with pytest.warns(UserWarning, match="CUDA graphs need a CUDA device"):
        asked = flowsim.fit(flowsim.FlowMap(sysm, width=16, depth=2), "pairs", sol, cuda_graph=True, **kw)
    for a, b in zip(eager.flowmap.parameters(), asked.flowmap.parameters()):
        assert torch.equal(a, b)


def test_cuda_graph_option_is_validated_and_may_change_on_resume(tmp_path):
    with pytest.raises(flowsim.ConfigError, match="cuda_graph must be True or False"):
        FitConfig(cuda_graph="yes")
    assert FitConfig.from_dict(FitConfig(cuda_graph=True).to_dict()).cuda_graph is True
    sysm = flowsim.get_system("lotka_volterra")
    sol = flowsim.reference_solve(sysm, sysm.sample_initial(16, 0), torch.linspace(0, 10, 21))
    flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, steps=4, batch_size=16,
                checkpoint_dir=tmp_path, progress=False)
    # the finished run's checkpoint is accepted (not refused as "other settings")
    res = flowsim.fit(flowsim.FlowMap(sysm, width=8, depth=1), "pairs", sol, steps=4, batch_size=16,
                      checkpoint_dir=tmp_path, progress=False, cuda_graph=True)
    assert res.steps == 4
