"""The command line, run as a user would."""

from __future__ import annotations

import subprocess
import sys

import flowsim
from flowsim.cli import main


def test_systems_table(capsys):
    assert main(["systems"]) == 0
    out = capsys.readouterr().out
    for name in flowsim.list_systems():
        assert name in out
    assert "stiff" in out and "invariants" in out
    assert len(flowsim.list_systems()) >= 17


def test_systems_verbose(capsys):
    assert main(["systems", "-v"]) == 0
    assert "Robertson" in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "flowsim", "systems"], capture_output=True,
                         text=True, check=True)
    assert "fitzhugh_nagumo" in out.stdout
