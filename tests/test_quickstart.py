"""`flowsim quickstart --small`, `flowsim train` and `flowsim evaluate`, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import flowsim
from flowsim.cli import main


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("qs")
    proc = subprocess.run(
        [sys.executable, "-m", "flowsim", "quickstart", "--small", "--out", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc


@pytest.mark.slow
def test_quickstart_writes_every_report_file(quick):
    out, proc = quick
    assert "[1/3]" in proc.stdout and "[3/3]" in proc.stdout
    assert "median rel. err" in proc.stdout
    report = out / "report"
    for name in ["report.json", "report.md", "error_vs_jump.png", "error_vs_steps.png",
                 "work_precision.png"]:
        assert (report / name).stat().st_size > 0, name
    data = json.loads((report / "report.json").read_text())
    assert data["system"] == "fitzhugh_nagumo"
    errs = [r["median_relative_error"] for r in data["error_vs_jump"]]
    assert len(errs) >= 3 and all(e is not None and e > 0 for e in errs)
    # the same jumps from the held-out initial states, beside them
    assert "from x0" in proc.stdout
    assert all(r["median_relative_error_from_start"] > 0 for r in data["error_vs_jump"])
    assert (out / "model" / "model.safetensors").exists()
    assert (out / "data.zarr").exists()
    assert flowsim.load(out / "model").config.system == "fitzhugh_nagumo"


@pytest.mark.slow
def test_evaluate_checkpoint_on_store(quick, tmp_path):
    out, _ = quick
    rc = main(["evaluate", str(out / "model"), "--store", str(out / "data.zarr"), "--out",
               str(tmp_path / "rep"), "--n-eval", "64", "--no-progress"])
    assert rc == 0
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert data["reference"] == "store test split"
    assert all(r["median_normalised_error_from_start"] > 0 for r in data["error_vs_jump"])


@pytest.mark.slow
def test_evaluate_refuses_store_of_another_system(quick, tmp_path, capsys):
    out, _ = quick
    other = tmp_path / "lv.zarr"
    assert main(["simulate", "lotka_volterra", "--n", "16", "--t-end", "2", "--n-times", "5",
                 "--out", str(other), "--no-progress"]) == 0
    rc = main(["evaluate", str(out / "model"), "--store", str(other), "--no-progress"])
    assert rc == 2
    assert "lotka_volterra" in capsys.readouterr().err


@pytest.mark.slow
def test_train_command_from_store_and_physics(quick, tmp_path):
    out, _ = quick
    assert main(["train", "--store", str(out / "data.zarr"), "--steps", "20", "--width", "16",
                 "--depth", "1", "--out", str(tmp_path / "m1"), "--no-progress"]) == 0
    assert flowsim.load(tmp_path / "m1").config.system == "fitzhugh_nagumo"
    assert main(["train", "--system", "harmonic_oscillator", "--steps", "10", "--width", "16",
                 "--depth", "2", "--batch-size", "64", "--out", str(tmp_path / "m2"),
                 "--optimizer", "muon", "--no-progress"]) == 0
    assert flowsim.load(tmp_path / "m2").training_record["optimizer"] == "muon"
    # a wall-clock budget stops a run long before its step count; the margin is recorded
    assert main(["train", "--store", str(out / "data.zarr"), "--steps", "1000000", "--minutes",
                 "0.02", "--jump-margin", "0", "--width", "16", "--depth", "1",
                 "--out", str(tmp_path / "m3"), "--no-progress"]) == 0
    record = flowsim.load(tmp_path / "m3").training_record
    assert record["steps_done"] < 1000000 and record["jump_margin"] == 0


@pytest.mark.slow
def test_train_and_evaluate_an_ensemble_from_the_command_line(quick, tmp_path):
    out, _ = quick
    assert main(["train", "--store", str(out / "data.zarr"), "--steps", "20", "--width", "16",
                 "--depth", "1", "--members", "2", "--out", str(tmp_path / "ens"),
                 "--no-progress"]) == 0
    ens = flowsim.load(tmp_path / "ens")
    assert isinstance(ens, flowsim.FlowMapEnsemble) and len(ens) == 2
    assert [r["steps_done"] for r in ens.training_record["members"]] == [20, 20]
    rc = main(["evaluate", str(tmp_path / "ens"), "--store", str(out / "data.zarr"), "--out",
               str(tmp_path / "rep"), "--n-eval", "64", "--no-progress"])
    assert rc == 0
    data = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert all(r["median_normalised_error"] > 0 for r in data["error_vs_jump"])


def test_train_command_bad_input(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "x")]) == 2
    assert main(["train", "--system", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "known systems" in capsys.readouterr().err
    assert main(["train", "--system", "harmonic_oscillator", "--members", "0",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--members" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_report_states_speedups_in_words_and_warns_on_a_busy_machine(quick, tmp_path):
    """evaluate again while every core spins in other processes: the report says so."""
    import os

    out, proc = quick
    data = json.loads((out / "report" / "report.json").read_text())
    for key in ("dopri5_one_jump", "dopri5_best_speedup", "rk4_one_jump", "rk4_best_speedup"):
        summary = data["speedups"][key]["summary"]
        assert "0.0x" not in summary and ("faster" in summary or "slower" in summary
                                          or "no speed-up" in summary)
    assert "one jump:" in proc.stdout and "best jump count:" in proc.stdout
    assert "failed on none" in data["matched_means"]
    spin = "import time\nt = time.time()\nwhile time.time() - t < 120: pass\n"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(os.cpu_count() or 1)]
    try:
        with pytest.warns(UserWarning, match="timings are unreliable"):
            flowsim.evaluate(out / "model", tmp_path / "rep", n_eval=64, progress=False, verbose=False)
    finally:
        for s in spinners:
            s.kill()
    busy = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert busy["machine_load"]["busy"] and busy["machine_load"]["others_cpu_fraction"] > 0.5
    assert "WARNING: timings are unreliable" in (tmp_path / "rep" / "report.md").read_text()


def test_a_stiff_systems_report_races_scipys_implicit_solvers(tmp_path):
    """Robertson: the explicit torch solvers fail on every state after a long bisection of their
    failures (minutes); the report races scipy's LSODA and BDF instead, in seconds."""
    import time

    t0 = time.perf_counter()
    s = flowsim.quickstart("robertson", tmp_path / "qs", size="small", steps=3, n=16,
                           progress=False, verbose=False)
    assert time.perf_counter() - t0 < 120
    assert s["peers"] == ["scipy_lsoda", "scipy_bdf"] and "speedup_vs_dopri5" not in s
    assert set(s["speedups"]) == {f"{p}_{at}" for p in s["peers"] for at in ("one_jump", "best_speedup")}
    text = (tmp_path / "qs" / "report" / "report.md").read_text()
    assert "scipy_lsoda" in text and "dopri5" not in text.split("*Matched error*")[0]
