"""One writer per store (two real processes), stale locks, and a full disk (a small tmpfs in a
private mount namespace; skipped where it cannot be mounted) — issue 18."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from flowsim.data import from_arrays, open_store, simulate_ensemble, store_summary
from flowsim.errors import StoreError

from .conftest import FHN, assert_same_bytes, read_arrays

ROOT = Path(__file__).resolve().parents[2]
LOCK = ".flowsim-writer.lock"

#: a slow ensemble: a 1-state decay whose right-hand side sleeps, 6 chunks of 1 trajectory
SLOW = textwrap.dedent("""
    import sys, time, torch
    from flowsim.data import simulate_ensemble
    from flowsim.systems import from_callable

    def f(t, x, p):
        time.sleep(float(sys.argv[2]))
        return -p[:, :1] * x

    system = from_callable(f, name="slow_decay", state_names=["x"], params={"k": 1.0},
                           initial_box=[(0.5, 1.0)], autonomous=True, timescale=1.0)
    try:
        simulate_ensemble(system, 6, torch.linspace(0, 1, 5), store=sys.argv[1], chunk_size=1,
                          client="sync", progress=False, method="rk4", step_size=0.25)
    except Exception as err:
        print(type(err).__name__ + ": " + str(err))
        sys.exit(3)
    print("done")
""")


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _start(tmp_path, store, sleep):
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    return subprocess.Popen([sys.executable, str(script), str(store), str(sleep)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(path, proc, timeout=120.0):
    t0 = time.time()
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the writer ended before taking the lock: {proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            pytest.fail("the writer never took the lock")
        time.sleep(0.05)


def test_a_second_writer_is_refused_while_the_first_writes(tmp_path):
    store = tmp_path / "shared.zarr"
    first = _start(tmp_path, store, 0.15)
    try:
        _wait_for(store / LOCK, first)
        owner = json.loads((store / LOCK).read_text())
        assert owner["pid"] == first.pid and owner["host"] == socket.gethostname()
        second = _start(tmp_path, store, 0.0)
        out, _ = second.communicate(timeout=300)
        assert second.returncode == 3, out
        assert f"StoreError: {store} is being written by another process (pid {first.pid}" in out
        out, _ = first.communicate(timeout=300)
        assert first.returncode == 0 and "done" in out, out
    finally:
        first.kill()
    assert not (store / LOCK).exists()  # released on exit
    ds = open_store(store)
    assert int((ds.status == 0).sum()) == 6


def test_a_dead_writers_lock_is_taken_over(tmp_path):
    store = tmp_path / "killed.zarr"
    first = _start(tmp_path, store, 0.15)
    _wait_for(store / LOCK, first)
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.wait(60)
    assert (store / LOCK).exists()  # SIGKILL: no chance to clean up
    rerun = _start(tmp_path, store, 0.0)
    out, _ = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and "done" in out, out
    assert not (store / LOCK).exists()
    assert int((open_store(store).status == 0).sum()) == 6


@pytest.mark.filterwarnings("error")  # flowsim's readers are not bothered by the lock file
def test_lock_is_released_on_an_exception_and_foreign_locks_are_kept(tmp_path, fhn, fhn_store):
    store = tmp_path / "s.zarr"
    shutil.copytree(fhn_store, store)
    with pytest.raises(StoreError, match="different ensemble"):  # another seed: refused
        simulate_ensemble(fhn, store=store, client="sync", **{**FHN, "seed": 99})
    assert not (store / LOCK).exists()
    # a lock of a live process on another host is respected, not broken
    (store / LOCK).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "t0", "token": "x"}))
    with pytest.raises(StoreError, match="pid 1 on elsewhere"):
        simulate_ensemble(fhn, store=store, client="sync", **FHN)
    with pytest.raises(StoreError, match="being written by another process"):
        simulate_ensemble(fhn, store=store, client="sync", overwrite=True, **FHN)
    with pytest.raises(StoreError, match="being written by another process"):
        from_arrays("fitzhugh_nagumo", np.zeros((2, 3, 2)), np.arange(3.0), store=store, overwrite=True)
    assert (store / LOCK).exists()
    open_store(store)  # readers are not blocked by a writer's lock
    assert store_summary(store)["complete"]


def test_a_finished_store_is_opened_without_the_writer_lock(tmp_path, fhn, fhn_store):
    """Two trainings that call ``simulate_ensemble`` on the same finished store at once must not
    refuse each other: with nothing to write, the store's directory is not touched — no lock
    file is made there (a live writer's lock still refuses, as above)."""
    store = tmp_path / "s.zarr"
    shutil.copytree(fhn_store, store)
    before = os.stat(store).st_mtime_ns
    time.sleep(0.01)
    ds = simulate_ensemble(fhn, store=store, client="sync", **FHN)
    assert ds.sizes["trajectory"] == FHN["n"]
    assert os.stat(store).st_mtime_ns == before  # no lock file created and removed
    (store / "x" / "c" / "1" / "0" / "0").unlink()  # a chunk lost: solved again, under the lock
    assert simulate_ensemble(fhn, store=store, client="sync", **FHN).sizes["trajectory"] == FHN["n"]
    assert (store / "x" / "c" / "1" / "0" / "0").exists() and not (store / LOCK).exists()
    assert os.stat(store).st_mtime_ns != before  # that call did take (and release) the lock


# -- full disk ---------------------------------------------------------------------------------

FULL = textwrap.dedent("""
    import json, os, sys, numpy as np, torch
    import flowsim
    from flowsim.data import from_arrays, open_store, simulate_ensemble, store_summary
    from flowsim.errors import FlowsimError
    d = sys.argv[1]
    out = {}
    rng = np.random.default_rng(0)
    # a small store that fits, then one that does not: the first stays loadable
    from_arrays("fitzhugh_nagumo", rng.normal(size=(4, 5, 2)), np.arange(5.0), store=d + "/small.zarr")
    big = rng.normal(size=(4000, 50, 2))
    for name, call in [
        ("from_arrays", lambda: from_arrays("fitzhugh_nagumo", big, np.arange(50.0), store=d + "/big.zarr",
                                            compressors=[])),
        ("overwrite", lambda: from_arrays("fitzhugh_nagumo", big, np.arange(50.0), store=d + "/small.zarr",
                                          compressors=[], overwrite=True)),
        ("ensemble", lambda: simulate_ensemble("fitzhugh_nagumo", 4000, torch.linspace(0, 5, 60),
                                               store=d + "/ens.zarr", chunk_size=500, client="sync",
                                               progress=False, compressors=[], method="rk4", step_size=0.1)),
    ]:
        try:
            call()
            out[name] = "no error"
        except FlowsimError as err:
            out[name] = type(err).__name__ + ": " + str(err)
        except Exception as err:
            out[name] = "RAW " + type(err).__name__ + ": " + str(err)
    out["small_ok"] = open_store(d + "/small.zarr").x.shape == (4, 5, 2)
    out["leftovers"] = sorted(n for n in os.listdir(d) if n.startswith("."))
    # checkpoints: a first save fits; a second, of a much larger map, does not
    for f in os.listdir(d):
        if f != "small.zarr":
            os.system(f"rm -rf {d}/{f}")
    fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1)
    flowsim.save(fm, d + "/ck")
    filler = d + "/filler"
    with open(filler, "wb") as f:
        try:
            f.write(b"0" * (4 << 20))
        except OSError:
            pass
    try:
        flowsim.save(flowsim.FlowMap("lotka_volterra", width=256, depth=4), d + "/ck", overwrite=True)
        out["checkpoint"] = "no error"
    except FlowsimError as err:
        out["checkpoint"] = type(err).__name__ + ": " + str(err)
    except Exception as err:
        out["checkpoint"] = "RAW " + type(err).__name__ + ": " + str(err)
    out["checkpoint_ok"] = flowsim.load(d + "/ck").config.width == 8
    print("RESULT" + json.dumps(out))
""")


def _in_small_tmpfs(tmp_path, script):
    """Run ``script DIR`` with DIR a 2 MiB tmpfs in a private mount namespace (vanishes with it)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not available")
    mnt = tmp_path / "small"
    mnt.mkdir()
    path = tmp_path / "full.py"
    path.write_text(script)
    inner = f"mount -t tmpfs -o size=2m tmpfs {mnt} && exec {sys.executable} {path} {mnt}"
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        proc = subprocess.run([*prefix, "sh", "-c", inner], env=_env(), capture_output=True, text=True,
                              timeout=600)
        if "RESULT" in proc.stdout:
            return json.loads(proc.stdout.split("RESULT", 1)[1])
        if "mount" not in proc.stderr and "unshare" not in proc.stderr:
            pytest.fail(f"the full-disk script failed: {proc.stdout}\n{proc.stderr}")
    pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


def test_full_disk_gives_a_clear_error_and_keeps_what_was_complete(tmp_path):
    out = _in_small_tmpfs(tmp_path, FULL)
    for case in ("from_arrays", "overwrite", "ensemble"):
        assert out[case].startswith("StoreError: no space left on the device while writing"), out[case]
    assert "/big.zarr" in out["from_arrays"] and "nothing was left behind" in out["from_arrays"]
    assert "an existing store there is unchanged" in out["overwrite"]
    assert "/ens.zarr" in out["ensemble"] and "run the same call again to resume" in out["ensemble"]
    assert out["small_ok"] is True
    assert out["leftovers"] == []  # no half-written temporary store
    assert out["checkpoint"].startswith("CheckpointError: no space left on the device while writing")
    assert "model.safetensors" in out["checkpoint"] and "previous model.safetensors is unchanged" \
        in out["checkpoint"]
    assert out["checkpoint_ok"] is True


def test_resume_after_a_clean_run_rewrites_nothing(tmp_path, fhn, fhn_store, fhn_arrays):
    store = tmp_path / "s.zarr"
    shutil.copytree(fhn_store, store)
    stats = {}
    simulate_ensemble(fhn, store=store, client="sync", stats=stats, **FHN)
    assert stats["chunks_run"] == 0
    assert_same_bytes(read_arrays(store), fhn_arrays)
    from_arrays("fitzhugh_nagumo", np.zeros((2, 3, 2)), np.arange(3.0), store=tmp_path / "o.zarr")
    assert not (tmp_path / "o.zarr" / LOCK).exists()
