"""`flowsim calibrate`: the report folder (fits, table, solver check, corner plot) and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

import flowsim
from flowsim.cli import main
from flowsim.steer import load_theoph


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "theoph2.csv"
    df = load_theoph()
    df[df["Subject"].isin([1, 7])].to_csv(path, index=False)
    return path


def test_map_calibration_report_with_posterior(tmp_path, two_subjects):
    fm = flowsim.steer.train_theoph_map(steps=400, width=16, n_trajectories=128)
    flowsim.save(fm, tmp_path / "ckpt")
    out = tmp_path / "report"
    rc = main(["calibrate", str(tmp_path / "ckpt"), "--data", str(two_subjects), "--params", "ka,ke,V",
               "--out", str(out), "--posterior", "--posterior-steps", "150"])
    assert rc == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["corner.png", "fits.png", "parameters.csv", "report.json", "report.md"]
    rep = json.loads((out / "report.json").read_text())
    assert rep["subjects"] == ["1", "7"] and rep["params"] == ["ka", "ke", "V"]
    assert rep["solver_check"]["model"] == "map" and rep["solver_check"]["polished"]
    assert set(rep["polish_from"]) <= {"map", "candidate"} and len(rep["polish_from"]) == 2
    # after the polish the estimates are the solver's own (scipy agrees within 1 %)
    ref = flowsim.steer.scipy_fit(flowsim.steer.theoph_observations().select([1, 7]), ("ka", "ke", "V"))
    np.testing.assert_allclose(np.array(rep["estimate"]), ref["estimate"].values, rtol=0.01)
    md = (out / "report.md").read_text()
    assert "## Solver check" in md and "standard errors" in md and "## Posterior" in md
    assert "r_hat" in rep["posterior"]


def test_solver_calibration_with_expressions(tmp_path, two_subjects):
    out = tmp_path / "r"
    rc = main(["calibrate", "theophylline", "--data", str(two_subjects), "--params", "ka,V",
               "--out", str(out), "--subject", "Subject", "--time", "Time", "--covariates", "Wt,Dose",
               "--observe", "conc=A_central/V", "--initial", "A_gut=Dose*Wt", "--starts", "2"])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["solver_check"]["model"] == "solver" and rep["params"] == ["ka", "V"]
    assert "nothing to check" in (out / "report.md").read_text()


@pytest.mark.parametrize(("extra", "match"), [
    (["--params", "ka,CL"], "unknown parameter 'CL'"),
    (["--observe", "conc=__import__('os')"], "names, numbers"),
    (["--observe", "conc=A_central/Vd"], "unknown name 'Vd'"),
    (["--initial", "A_liver=Dose"], "not states"),
    (["--subject", "ID"], "lack the column"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, two_subjects, capsys, extra, match):
    out = tmp_path / "r"
    rc = main(["calibrate", "theophylline", "--data", str(two_subjects), "--out", str(out), "--starts", "1",
               *extra])
    assert rc == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1
    assert not out.exists() or not any(out.iterdir())


def test_missing_data_and_used_out_folder(tmp_path, two_subjects, capsys):
    assert main(["calibrate", "theophylline", "--data", str(tmp_path / "none.csv"), "--out",
                 str(tmp_path / "r")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("x")
    used = str(tmp_path / "used")
    assert main(["calibrate", "theophylline", "--data", str(two_subjects), "--out", used]) == 2
    assert "not empty" in capsys.readouterr().err
