"""``flowsim simulate`` and ``flowsim info`` through the subcommands added by ``flowsim.cli.data``."""

from __future__ import annotations

import argparse
import json

import pytest

from flowsim.cli.data import add_parser
from flowsim.data import open_store
from flowsim.errors import ConfigError, FlowsimError, StoreError

from .conftest import assert_same_bytes, read_arrays

pytestmark = pytest.mark.filterwarnings("error")


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="flowsim")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return args.func(args)


SIM = ("simulate", "fitzhugh_nagumo", "--n", "24", "--t-end", "10", "--n-times", "11", "--chunk-size", "8",
       "--params", "prior", "--seed", "2", "--rtol", "1e-6", "--atol", "1e-8", "--no-progress")


@pytest.mark.slow
def test_simulate_then_info(tmp_path, capsys, dask_client):
    out = tmp_path / "cli.zarr"
    assert run(*SIM, "--out", str(out), "--sync") == 0
    printed = capsys.readouterr().out
    assert "fitzhugh_nagumo" in printed and "24 x 11 times" in printed and "3/3" in printed
    ds = open_store(out, "fitzhugh_nagumo")
    assert ds.attrs["params_mode"] == "prior" and float(ds.time[-1]) == 10.0

    assert run("info", str(out), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_trajectories"] == 24 and summary["status"] == {"OK": 24}

    # the same ensemble on a running Dask scheduler, by address
    other = tmp_path / "sched.zarr"
    assert run(*SIM, "--out", str(other), "--scheduler", dask_client.scheduler.address) == 0
    assert_same_bytes(read_arrays(other), read_arrays(out))


def test_bad_input_raises_flowsim_errors(tmp_path):
    with pytest.raises(StoreError, match="no store"):
        run("info", str(tmp_path / "missing.zarr"))
    with pytest.raises(ConfigError, match="--t-end"):
        run("simulate", "fitzhugh_nagumo", "--n", "4", "--t-end", "-1", "--n-times", "3",
            "--out", str(tmp_path / "x.zarr"), "--sync")
    with pytest.raises(FlowsimError, match="no system named"):
        run("simulate", "no_such_system", "--n", "4", "--t-end", "1", "--n-times", "3",
            "--out", str(tmp_path / "x.zarr"), "--sync")
    with pytest.raises(SystemExit):  # argparse: a required option is missing
        run("simulate", "fitzhugh_nagumo", "--n", "4")
