"""A user's first script, without ``if __name__ == "__main__":``: Dask ensembles and ensemble
training run in the script's own process with a one-line notice, instead of spawning workers
that run the script again ("Nanny failed to start", bootstrapping errors, pages of tracebacks)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTICE = 'called at the top level of a script without `if __name__ == "__main__":`'


def _run(script: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=timeout, cwd=script.parent, env=env)


@pytest.mark.slow
def test_unguarded_script_runs_an_ensemble_and_trains_members(tmp_path):
    script = tmp_path / "first_script.py"
    script.write_text(textwrap.dedent("""\
        import torch
        import flowsim

        sys = flowsim.get_system("lotka_volterra")
        ds = flowsim.simulate_ensemble(sys, 32, torch.linspace(0, 2, 11), store="lv.zarr",
                                       chunk_size=8, progress=False)
        print("ensemble", tuple(ds.x.shape), int((ds.status != 0).sum()))
        res = flowsim.fit_ensemble(flowsim.FlowMap(sys, width=8, depth=1), "pairs", ds,
                                   members=2, workers=2, steps=5, batch_size=16, progress=False)
        print("members", [m.steps for m in res.members])
        loader = flowsim.data.PairSampler("lv.zarr", batch_size=16, split=None).loader(num_workers=2)
        print("loader", loader.num_workers, len(next(iter(loader))["s"]))
        """))
    proc = _run(script)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ensemble (32, 11, 2) 0" in proc.stdout
    assert "members [5, 5]" in proc.stdout
    assert "loader 0 16" in proc.stdout  # a DataLoader's workers would rerun the script too
    assert "Traceback" not in proc.stderr and "Nanny" not in proc.stderr, proc.stderr[-3000:]
    notices = [line for line in proc.stderr.splitlines() if NOTICE in line]
    assert len(notices) == 3, proc.stderr
    assert "simulate_ensemble" in notices[0] and "first_script.py:5" in notices[0]
    assert "fit_ensemble" in notices[1] and "workers=1" in notices[1]


@pytest.mark.slow
def test_which_calls_count_as_unguarded(tmp_path):
    """Module level outside the guard, and functions called from there, are unguarded; the guard,
    functions called under it, and code that is not a script file (python -c) are not."""
    script = tmp_path / "probe.py"
    script.write_text(textwrap.dedent("""\
        from flowsim.data.cluster import unguarded_script

        def probe():
            return unguarded_script()

        print("top", unguarded_script())
        print("top-function", probe())
        if __name__ == '__main__':
            print("guard", unguarded_script())
            print("guard-function", probe())
        if True:
            print("other-if", probe())
        """))
    proc = _run(script, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split() for line in proc.stdout.splitlines())
    assert lines == {"top": "True", "top-function": "True", "guard": "False",
                     "guard-function": "False", "other-if": "True"}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", "from flowsim.data.cluster import unguarded_script;"
                           "print(unguarded_script())"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr
