"""`flowsim evaluate --store` on a stored grid whose step does not divide the map's longest jump."""

from __future__ import annotations

import json

import pytest

import flowsim
from flowsim.cli import main


@pytest.fixture(scope="module")
def coarse(tmp_path_factory):
    """A FitzHugh–Nagumo store on a grid of step 1 (timescale 39.5) and a map trained on it."""
    d = tmp_path_factory.mktemp("grid")
    assert main(["simulate", "fitzhugh_nagumo", "--n", "48", "--t-end", "80", "--n-times", "81",
                 "--out", str(d / "coarse.zarr"), "--sync", "--no-progress"]) == 0
    assert main(["train", "--store", str(d / "coarse.zarr"), "--steps", "20", "--width", "8",
                 "--depth", "1", "--out", str(d / "m"), "--no-progress"]) == 0
    return d


def test_jumps_snap_down_to_the_trained_range(coarse, tmp_path):
    # 39.5 rounds to 40 on the grid, past the trained range: it must become 39, not fail
    fm = flowsim.load(coarse / "m")
    assert fm.max_jump == pytest.approx(39.5)
    rep = tmp_path / "rep"
    assert main(["evaluate", str(coarse / "m"), "--store", str(coarse / "coarse.zarr"), "--out",
                 str(rep), "--n-eval", "16", "--no-progress"]) == 0
    jumps = [r["jump"] for r in json.loads((rep / "report.json").read_text())["error_vs_jump"]]
    assert max(jumps) == pytest.approx(39.0) and all(j <= fm.max_jump for j in jumps)


def test_a_grid_coarser_than_the_longest_jump_is_refused_and_leaves_no_report(coarse, tmp_path, capsys):
    fine = tmp_path / "fine.zarr"
    assert main(["simulate", "fitzhugh_nagumo", "--n", "32", "--t-end", "2", "--n-times", "41",
                 "--out", str(fine), "--sync", "--no-progress"]) == 0
    assert main(["train", "--store", str(fine), "--steps", "5", "--width", "8", "--depth", "1",
                 "--max-jump", "0.5", "--out", str(tmp_path / "short"), "--no-progress"]) == 0
    rep = tmp_path / "rep"
    rc = main(["evaluate", str(tmp_path / "short"), "--store", str(coarse / "coarse.zarr"),
               "--out", str(rep), "--n-eval", "16", "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "finer time grid" in err and "0.5" in err
    assert not rep.exists()


def test_a_store_without_test_trajectories_is_refused_not_used_as_held_out(coarse, tmp_path, capsys):
    # 8 trajectories: the 80/10/10 split leaves none for testing; the map's own training data
    # must not be reported as the "store test split"
    small = tmp_path / "small.zarr"
    assert main(["simulate", "fitzhugh_nagumo", "--n", "8", "--t-end", "80", "--n-times", "81",
                 "--out", str(small), "--sync", "--no-progress"]) == 0
    assert int((flowsim.data.split_of(range(8)) == 2).sum()) == 0
    rep = tmp_path / "rep"
    rc = main(["evaluate", str(coarse / "m"), "--store", str(small), "--out", str(rep),
               "--n-eval", "16", "--no-progress"])
    assert rc == 2
    assert "no test trajectories" in capsys.readouterr().err
    assert not rep.exists()
