"""A user's own system on the command line: ``--system mypkg.models:make_system``, recorded in
the store and the checkpoint so that later commands (in other processes) rebuild it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import flowsim
from flowsim.cli import main
from flowsim.errors import FlowsimError, SystemNotFoundError
from flowsim.systems.imports import rebuild_system, resolve_system, system_spec

ROOT = Path(__file__).resolve().parents[1]

MODULE = textwrap.dedent('''
    import torch
    import flowsim


    def _rhs(t, x, p):
        return torch.stack([x[:, 1], -p[:, 0] * x[:, 0]], dim=-1)


    def make_system():
        return flowsim.from_callable(_rhs, name="my_oscillator", state_names=["q", "v"],
                                     params={"k": 1.0}, timescale=1.0, autonomous=True)


    SYSTEM = make_system()
    NOT_A_SYSTEM = 42


    def returns_a_number():
        return 3.0


    def raises():
        raise RuntimeError("my factory is broken")
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``my_models_<id>`` (a unique name: sys.modules caches modules) in tmp_path/src, importable here."""
    name = f"my_models_{abs(hash(str(tmp_path))) % 10**8}"
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(src))
    yield name, src
    sys.modules.pop(name, None)


def run(*argv: str, pythonpath: list[Path] | None = None) -> subprocess.CompletedProcess:
    path = os.pathsep.join(str(p) for p in [ROOT, *(pythonpath or [])])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "flowsim", *argv], capture_output=True, text=True,
                          env=env, timeout=600)


def test_resolve_system_forms(user_module):
    name, _ = user_module
    for attr in ("make_system", "SYSTEM"):
        system = resolve_system(f"{name}:{attr}")
        assert system.name == "my_oscillator" and system_spec(system) == f"{name}:{attr}"
        assert system.describe()["import_path"] == f"{name}:{attr}"
    cls = resolve_system("flowsim.systems.biology:FitzHughNagumo")
    assert cls.name == "fitzhugh_nagumo"
    assert "import_path" not in flowsim.get_system("fitzhugh_nagumo").describe()


@pytest.mark.parametrize("attr, phrase", [
    ("NOT_A_SYSTEM", "is a int, not an ODESystem"),
    ("returns_a_number", "returned a float, not an ODESystem"),
    ("raises", "RuntimeError: my factory is broken"),
    ("no_such_name", "AttributeError"),
])
def test_resolve_system_errors(user_module, attr, phrase):
    name, _ = user_module
    with pytest.raises(SystemNotFoundError, match=phrase):
        resolve_system(f"{name}:{attr}")


def test_import_errors_say_what_to_do():
    with pytest.raises(SystemNotFoundError, match="could not import no_such_pkg.models:f recorded in "
                       "the store: ModuleNotFoundError.*PYTHONPATH"):
        resolve_system("no_such_pkg.models:f", recorded_in="the store")
    with pytest.raises(SystemNotFoundError, match="module.path:attribute"):
        resolve_system("justamodule:")


def test_rebuild_system_prefers_the_recorded_path(user_module):
    name, _ = user_module
    assert rebuild_system("lotka_volterra").name == "lotka_volterra"
    assert rebuild_system("my_oscillator", {}, f"{name}:make_system").name == "my_oscillator"
    with pytest.raises(SystemNotFoundError, match="now gives the system 'my_oscillator'"):
        rebuild_system("renamed", {}, f"{name}:make_system")


def test_cli_errors_for_a_bad_import_path(capsys):
    assert main(["simulate", "no_such_pkg.models:make_system", "--n", "4", "--t-end", "1",
                 "--n-times", "3", "--out", "x.zarr", "--sync"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not import no_such_pkg.models:make_system" in err[0]
    assert not Path("x.zarr").exists()


def test_evaluate_takes_the_system(tmp_path):
    """A from_callable system saved without an import path: flowsim.evaluate(system=…)."""
    def rhs(t, x, p):
        return -p[:, :1] * x

    system = flowsim.from_callable(rhs, name="decay_here", state_names=["x"], params={"k": 1.0},
                                   autonomous=True)
    path = flowsim.save(flowsim.FlowMap(system, width=8, depth=1), tmp_path / "ck")
    with pytest.raises(FlowsimError, match="pass system="):
        flowsim.evaluate(path, n_eval=8, progress=False, verbose=False)
    summary = flowsim.evaluate(path, tmp_path / "rep", n_eval=8, system=system, progress=False,
                               verbose=False)
    assert summary["system"] == "decay_here" and (tmp_path / "rep" / "report.json").exists()


@pytest.mark.slow
def test_own_system_end_to_end_in_separate_processes(user_module, tmp_path):
    """simulate → info → train --store → evaluate, each a fresh process that rebuilds the system
    from the import path recorded in the store and the checkpoint."""
    name, src = user_module
    spec = f"{name}:make_system"
    store, model = tmp_path / "data.zarr", tmp_path / "model"
    proc = run("simulate", spec, "--n", "32", "--t-end", "4", "--n-times", "21", "--out", str(store),
               "--sync", "--no-progress", pythonpath=[src])
    assert proc.returncode == 0, proc.stderr
    assert "my_oscillator" in proc.stdout
    import zarr

    assert json.loads(zarr.open_group(str(store)).attrs["system_json"])["import_path"] == spec

    proc = run("info", str(store), "--json")  # no PYTHONPATH needed: info reads the attrs
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["system"] == "my_oscillator"

    proc = run("train", "--store", str(store), "--steps", "20", "--width", "16", "--depth", "1",
               "--out", str(model), "--no-progress", pythonpath=[src])
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((model / "config.json").read_text())
    assert meta["system"]["import_path"] == spec

    proc = run("evaluate", str(model), "--store", str(store), "--n-eval", "16", "--out",
               str(tmp_path / "rep"), "--no-progress", pythonpath=[src])
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "rep" / "report.json").read_text())["system"] == "my_oscillator"
    assert "median rel. err" in proc.stdout  # results are printed under --no-progress

    # an ensemble: its worker processes rebuild the system too
    proc = run("train", "--store", str(store), "--steps", "10", "--width", "8", "--depth", "1",
               "--members", "2", "--out", str(tmp_path / "ens"), "--no-progress", pythonpath=[src])
    assert proc.returncode == 0, proc.stderr
    assert isinstance(flowsim.load(tmp_path / "ens"), flowsim.FlowMapEnsemble)

    # the module gone from the path: one line saying what to do, in every later command
    for argv in (["train", "--store", str(store), "--steps", "5", "--out", str(tmp_path / "m2")],
                 ["evaluate", str(model), "--n-eval", "8", "--no-progress"]):
        proc = run(*argv)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert f"could not import {spec}" in lines[0] and "PYTHONPATH" in lines[0]
        assert "ModuleNotFoundError" in lines[0]
    # … or the system named explicitly
    x = torch.zeros(1, 2)
    assert flowsim.load(model, system=resolve_system(spec)).jump(x, 0.0, 0.5).shape == (1, 2)
