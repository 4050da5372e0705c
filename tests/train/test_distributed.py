"""Data-parallel training: 2 gloo processes (launched by torchrun) with batch B each train the
same map as 1 process with batch 2B, to rounding, with a JVP objective (LSD) and pairs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import flowsim
from flowsim.errors import ConfigError
from flowsim.train.bank import StateBatch
from flowsim.train.distributed import Ranks, check_batch, init_from_env, shard

SCRIPT = textwrap.dedent("""
    import sys, torch, flowsim
    from flowsim.train.distributed import init_from_env, current
    batch, out, ddp = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "ddp"
    torch.set_num_threads(1)
    if ddp:
        init_from_env("cpu")
    sys_ = flowsim.get_system("lotka_volterra")
    sol = flowsim.reference_solve(sys_, sys_.sample_initial(24, generator=0), torch.linspace(0, 6, 25))
    fm = flowsim.FlowMap(sys_, width=16, depth=2, seed=3)
    res = flowsim.fit(fm, "pairs+lsd", sol, steps=12, batch_size=batch, lr=3e-3, optimizer="adamw",
                      progress=False, checkpoint_dir=out + "/ck", log_every=1)
    if current().rank == 0:
        torch.save({"weights": fm.state_dict(), "loss": [r["loss"] for r in res.history],
                    "world": current().world_size}, out + "/result.pt")
""")


def _run(tmp_path, name: str, launcher: list[str], batch: int, mode: str) -> dict:
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / "train_once.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    proc = subprocess.run([*launcher, str(script), str(batch), str(out), mode], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (out / "ck" / "model.safetensors").exists()
    return torch.load(out / "result.pt")


@pytest.mark.slow
def test_two_processes_with_batch_b_equal_one_process_with_batch_2b(tmp_path):
    single = _run(tmp_path, "single", [sys.executable], 64, "single")
    ddp = _run(tmp_path, "ddp", [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                                 "--master-port", "29581"], 64, "ddp")
    assert (single["world"], ddp["world"]) == (1, 2)
    # rank 0's loss is over its half of the batch: it differs, the averaged gradients do not
    assert abs(single["loss"][0] - ddp["loss"][0]) > 1e-6 * abs(single["loss"][0])
    one, two = single["weights"], ddp["weights"]
    assert one.keys() == two.keys()
    worst = max(float((one[k] - two[k]).abs().max()) for k in one if one[k].is_floating_point())
    moved = max(float(v.abs().max()) for v in one.values() if v.is_floating_point())
    assert worst < 1e-5 * max(1.0, moved), worst


def test_shards_partition_the_global_batch():
    b = StateBatch(s=torch.arange(6.0), t=torch.arange(6.0) + 1, x=torch.arange(12.0).reshape(6, 2),
                   p=torch.zeros(6, 1))
    parts = [shard(b, Ranks(r, 3)) for r in range(3)]
    assert torch.equal(torch.cat([q.x for q in parts]), b.x)
    assert shard(b, Ranks()) is b


def test_bad_distributed_setups(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ConfigError, match="torchrun"):
        init_from_env("cpu")
    with pytest.raises(ConfigError, match="not divisible by the world size 3"):
        check_batch(64, Ranks(0, 3))
    check_batch(64, Ranks(1, 2))
    assert flowsim.train.distributed.current().world_size == 1


def test_cli_ddp_refuses_without_a_launcher_and_with_members(tmp_path, monkeypatch, capsys):
    from flowsim.cli import main

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    base = ["train", "--system", "lotka_volterra", "--out", str(tmp_path / "run"), "--steps", "2", "--ddp"]
    assert main(base) != 0
    assert "torchrun" in capsys.readouterr().err
    assert main([*base, "--members", "2"]) != 0
    assert "--members 1" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.safetensors").exists()
