"""Saving and loading teachers and generative flow maps: bit-identical samples in a new process,
conditional models, refused corrupt, swapped or foreign folders, nothing left behind on failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import flowsim
from flowsim.generative import GenerativeFlowMap, Teacher, distill, train_teacher

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def models():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g) * torch.tensor([1.0, 3.0]) + 2.0
    teacher = train_teacher(x, steps=30, width=16, depth=1, batch_size=64)
    gen = distill(teacher, width=16, depth=1, steps=20, batch_size=64, backward=True)
    c = torch.rand(200, generator=g)
    cond = distill(train_teacher(x + c[:, None], c, steps=30, width=16, depth=1, batch_size=64),
                   width=16, depth=1, steps=20, batch_size=64)
    return teacher, gen, cond


def test_round_trip_gives_bit_identical_samples_in_a_new_process(models, tmp_path):
    teacher, gen, cond = models
    teacher.save(tmp_path / "teacher")
    gen.save(tmp_path / "gen")
    cond.save(tmp_path / "cond")
    script = (
        "import sys, torch\n"
        "from flowsim.generative import GenerativeFlowMap, Teacher\n"
        "d = sys.argv[1]\n"
        "te = Teacher.load(d + '/teacher'); ge = GenerativeFlowMap.load(d + '/gen')\n"
        "co = GenerativeFlowMap.load(d + '/cond')\n"
        "torch.save({'heun': te.sample(50, 'heun', 4, generator=3)[0],\n"
        "            'dopri5': te.sample(50, 'dopri5', generator=3)[0],\n"
        "            'one': ge.sample(50, 1, generator=3), 'four': ge.sample(50, 4, generator=3),\n"
        "            'enc': ge.encode(torch.ones(5, 2)),\n"
        "            'cond': co.sample(50, 2, condition=torch.tensor([0.4]), generator=3)}, d + '/out.pt')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env=env, timeout=120)
    out = torch.load(tmp_path / "out.pt")
    assert torch.equal(out["heun"], teacher.sample(50, "heun", 4, generator=3)[0])
    assert torch.equal(out["dopri5"], teacher.sample(50, "dopri5", generator=3)[0])
    assert torch.equal(out["one"], gen.sample(50, 1, generator=3))
    assert torch.equal(out["four"], gen.sample(50, 4, generator=3))
    assert torch.equal(out["enc"], gen.encode(torch.ones(5, 2)))
    assert torch.equal(out["cond"], cond.sample(50, 2, condition=torch.tensor([0.4]), generator=3))
    # and the samples do depend on the seed (the comparison above can fail)
    assert not torch.equal(out["one"], gen.sample(50, 1, generator=4))


def test_loaded_model_keeps_what_it_needs(models, tmp_path):
    _, _, cond = models
    back = GenerativeFlowMap.load(cond.save(tmp_path / "cond"))
    assert (back.dim, back.n_cond, back.teacher.config) == (2, 1, cond.teacher.config)
    assert back.teacher.interpolant == cond.teacher.interpolant
    for name in ("x_mean", "x_std", "c_low", "c_high"):
        assert torch.equal(getattr(back.teacher, name), getattr(cond.teacher, name))
    assert torch.equal(back.teacher.samples.c, cond.teacher.samples.c)
    assert back.flowmap.training_record["steps_done"] == 20
    with pytest.raises(flowsim.ConfigError, match="conditional"):
        back.sample(3)
    # a loaded teacher can be distilled again; one saved without samples says what is missing
    again = distill(back.teacher, width=8, depth=1, steps=2, batch_size=16)
    assert again.sample(2, condition=torch.tensor([0.5])).shape == (2, 2)
    c = torch.tensor([0.2, 0.4, 0.6])  # one condition value: an (n,) vector gives each sample its own
    assert torch.equal(again.sample(3, condition=c, generator=1),
                       again.sample(3, condition=c[:, None], generator=1))
    bare = Teacher.load(cond.teacher.save(tmp_path / "bare", samples=False))
    assert bare.samples is None
    with pytest.raises(flowsim.ConfigError, match="samples"):
        distill(bare, steps=2)
    # saving again over the same folder replaces it
    cond.save(tmp_path / "cond")
    assert GenerativeFlowMap.load(tmp_path / "cond").n_cond == 1


def test_corrupt_swapped_or_foreign_folders_are_refused(models, tmp_path):
    teacher, gen, cond = models
    with pytest.raises(flowsim.CheckpointError, match="no config.json"):
        Teacher.load(tmp_path / "missing")
    path = teacher.save(tmp_path / "teacher")
    blob = bytearray((path / "teacher.safetensors").read_bytes())
    blob[-3] ^= 0xFF
    (path / "teacher.safetensors").write_bytes(bytes(blob))
    with pytest.raises(flowsim.CheckpointError, match="checksum"):
        Teacher.load(path)
    meta = json.loads((teacher.save(tmp_path / "t2") / "config.json").read_text())
    meta["teacher"]["width"] = 32  # an edited config
    (tmp_path / "t2" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(flowsim.CheckpointError, match="modified"):
        Teacher.load(tmp_path / "t2")
    # a plain FlowMap checkpoint, a generative map, and a teacher given to the wrong loader
    plain = flowsim.save(gen.flowmap, tmp_path / "plain")
    with pytest.raises(flowsim.CheckpointError, match="flowsim.load"):
        Teacher.load(plain)
    gpath = gen.save(tmp_path / "gen")
    with pytest.raises(flowsim.CheckpointError, match="GenerativeFlowMap.load"):
        Teacher.load(gpath)
    with pytest.raises(flowsim.CheckpointError, match="Teacher.load"):
        GenerativeFlowMap.load(tmp_path / "t2")
    with pytest.raises(flowsim.CheckpointError):
        flowsim.load(tmp_path / "t2")
    ens = flowsim.save(flowsim.FlowMapEnsemble([gen.flowmap, gen.flowmap]), tmp_path / "ens")
    with pytest.raises(flowsim.CheckpointError, match="FlowMapEnsemble"):
        GenerativeFlowMap.load(ens)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{not json")
    with pytest.raises(flowsim.CheckpointError, match="corrupted"):
        Teacher.load(tmp_path / "bad")
    # a part swapped for another model's
    cpath = cond.save(tmp_path / "cond")
    for sub in ("teacher",):
        (cpath / sub / "config.json").write_text((gpath / sub / "config.json").read_text())
        (cpath / sub / "teacher.safetensors").write_bytes((gpath / sub / "teacher.safetensors").read_bytes())
    with pytest.raises(flowsim.CheckpointError, match="not the part saved"):
        GenerativeFlowMap.load(cpath)


def test_a_failed_save_leaves_nothing_behind(models, tmp_path):
    teacher, gen, _ = models
    target = tmp_path / "taken"
    target.write_text("keep me")
    for obj in (teacher, gen):
        with pytest.raises(flowsim.CheckpointError, match="not a folder"):
            obj.save(target)
    assert target.read_text() == "keep me"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(flowsim.CheckpointError, match="non-empty"):
        gen.save(foreign)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    # a failure half-way (the teacher written, then the map refused): neither the target nor a
    # temporary folder remains, and an earlier save at that path is kept whole
    gen.save(tmp_path / "gen")
    broken = GenerativeFlowMap(teacher, "not a flow map")
    with pytest.raises(flowsim.CheckpointError, match="FlowMap"):
        broken.save(tmp_path / "new")
    with pytest.raises(flowsim.CheckpointError, match="FlowMap"):
        broken.save(tmp_path / "gen")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign", "gen", "taken"]
    assert torch.equal(GenerativeFlowMap.load(tmp_path / "gen").sample(5, generator=0),
                       gen.sample(5, generator=0))
