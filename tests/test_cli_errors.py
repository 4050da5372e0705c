"""Every bad input to the command line ends in one line on stderr that says what to do and exit
status 2 (no traceback unless ``--debug``); an unexpected exception names its type, exit 1."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
import torch

import flowsim
import flowsim.cli.systems
from flowsim.cli import build_parser, main
from flowsim.cli.train import BUDGET_STEPS

ROOT = Path(__file__).resolve().parents[1]
SIM = ["simulate", "fitzhugh_nagumo", "--n", "4", "--t-end", "1", "--n-times", "3", "--sync",
       "--no-progress"]


def fails(capsys, argv, *phrases, code=2) -> str:
    """Run ``flowsim argv``: exit status ``code``, one line on stderr containing ``phrases``."""
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("flowsim"), err
    assert "Traceback" not in err
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


def flowsim_cli(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "flowsim", *argv], capture_output=True, text=True,
                          env=environ, timeout=300)


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("argv, phrase", [
    (["quickstart", "--n", "0"], "--n"),
    (["quickstart", "--n", "-3"], "--n"),
    (["quickstart", "--steps", "0"], "--steps"),
    (["quickstart", "--steps", "-10"], "--steps"),
    (["quickstart", "--steps", "1.5"], "--steps"),
    (["evaluate", "ckpt", "--n-eval", "-5"], "--n-eval"),
    (["evaluate", "ckpt", "--n-eval", "0"], "--n-eval"),
    (["train", "--system", "lotka_volterra", "--out", "x", "--steps", "0"], "--steps"),
    (["train", "--system", "lotka_volterra", "--out", "x", "--steps", "-5"], "--steps"),
    (["train", "--system", "lotka_volterra", "--out", "x", "--minutes", "0"], "--minutes"),
    (["train", "--system", "lotka_volterra", "--out", "x", "--minutes", "-1"], "--minutes"),
    (["train", "--system", "lotka_volterra", "--out", "x", "--batch-size", "0"], "--batch-size"),
    (["train", "--system", "lotka_volterra", "--out", "x", "--members", "0"], "--members"),
    (["train", "--system", "lotka_volterra", "--out", "x", "--initial-fraction", "1.5"],
     "--initial-fraction"),
    (["train", "--system", "lotka_volterra", "--out", "x", "--early-fraction", "-0.1"], "--early-fraction"),
    (["train", "--system", "lotka_volterra", "--out", "x", "--initial-fraction", "nan"],
     "--initial-fraction"),
    (["simulate", "fitzhugh_nagumo", "--n", "0", "--t-end", "1", "--n-times", "3", "--out", "x"], "--n"),
    (["simulate", "fitzhugh_nagumo", "--n", "4", "--t-end", "nan", "--n-times", "3", "--out", "x"],
     "--t-end"),
    (["simulate", "fitzhugh_nagumo", "--n", "4", "--t-end", "inf", "--n-times", "3", "--out", "x"],
     "--t-end"),
    (["simulate", "fitzhugh_nagumo", "--n", "4", "--t-end", "one", "--n-times", "3", "--out", "x"],
     "--t-end"),
    (["simulate", "fitzhugh_nagumo", "--n", "4", "--t-end", "1", "--n-times", "0", "--out", "x"],
     "--n-times"),
    (["simulate", "fitzhugh_nagumo", "--n", "4", "--t-end", "1", "--n-times", "3", "--out", "x",
      "--chunk-size", "0"], "--chunk-size"),
    (["simulate", "fitzhugh_nagumo", "--n", "4", "--t-end", "1", "--n-times", "3", "--out", "x",
      "--rtol", "-1e-6"], "--rtol"),
])
def test_counts_and_numbers_out_of_range(capsys, argv, phrase):
    line = fails(capsys, argv, phrase)
    assert "--help" in line


def test_t_end_before_t_start(capsys, tmp_path):
    fails(capsys, [*SIM[:5], "-1", *SIM[6:], "--out", str(tmp_path / "x.zarr")],
          "--t-end", "greater than --t-start")


def test_the_python_api_refuses_the_same_counts(tmp_path):
    with pytest.raises(flowsim.FlowsimError, match="n must be a positive integer"):
        flowsim.quickstart(out=tmp_path, size="small", n=0)
    with pytest.raises(flowsim.FlowsimError, match="steps must be a positive integer"):
        flowsim.quickstart(out=tmp_path, size="small", steps=-1)
    with pytest.raises(flowsim.FlowsimError, match="n_eval must be a positive integer"):
        flowsim.evaluate(tmp_path / "ckpt", n_eval=-5)


# ----------------------------------------------------------------------------- devices


@pytest.mark.parametrize("command", [["train", "--system", "lotka_volterra", "--out", "x"],
                                     ["quickstart", "--small"]])
def test_unknown_device(capsys, command):
    fails(capsys, [*command, "--device", "bogus"], "'bogus' is not a device", "cpu, cuda")


def test_cuda_without_a_cuda_build(capsys, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: False)
    fails(capsys, ["train", "--system", "lotka_volterra", "--out", "x", "--device", "cuda"],
          "CUDA is not available in this torch build", "--device cpu")


def test_cuda_without_a_device(capsys, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    fails(capsys, ["quickstart", "--device", "cuda"], "no CUDA device", "--device cpu")


def test_cuda_index_out_of_range(capsys, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    fails(capsys, ["train", "--system", "lotka_volterra", "--out", "x", "--device", "cuda:7"],
          "no CUDA device 7", "has 1")


def test_cuda_on_this_machine(capsys):
    """Without monkeypatching: whatever this machine has, cuda:7 is refused in one line
    (a machine with 8 GPUs is not expected here)."""
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    line = fails(capsys, ["train", "--system", "lotka_volterra", "--out", "x", "--device", "cuda:7"])
    assert ("CUDA is not available in this torch build" in line or "no CUDA device" in line), line


# ----------------------------------------------------------------------------- paths


def test_output_path_is_a_regular_file(capsys, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("not a folder")
    fails(capsys, ["train", "--system", "lotka_volterra", "--out", str(f)], "is a file, not a folder")
    fails(capsys, ["quickstart", "--small", "--out", str(f)], "is a file, not a folder")
    fails(capsys, [*SIM, "--out", str(f)], "is a file, not a folder")
    fails(capsys, ["evaluate", str(tmp_path), "--out", str(f)], "is a file, not a folder")
    fails(capsys, [*SIM, "--out", str(f / "below.zarr")], "is a file, so no folder can be made")
    assert f.read_text() == "not a folder"


def test_output_folder_not_writable(capsys, tmp_path, monkeypatch):
    real_access = os.access
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    fails(capsys, ["train", "--system", "lotka_volterra", "--out", str(locked / "run")],
          "cannot write in", "permission denied")
    fails(capsys, [*SIM, "--out", str(locked / "d.zarr")], "cannot write in")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write anywhere")
def test_output_folder_not_writable_for_real(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        fails(capsys, ["quickstart", "--small", "--out", str(locked / "qs")], "cannot write in")
    finally:
        locked.chmod(0o700)


def test_s3_path_without_s3fs(capsys, monkeypatch):
    import fsspec

    def missing(protocol):
        raise ImportError(f"Install s3fs to access {protocol}")

    monkeypatch.setattr(fsspec, "get_filesystem_class", missing)
    fails(capsys, [*SIM, "--out", "s3://bucket/runs/x.zarr"], "install s3fs (pip install s3fs)",
          "s3:// paths")
    fails(capsys, ["info", "s3://bucket/runs/x.zarr"], "install s3fs")
    fails(capsys, ["train", "--store", "s3://bucket/x.zarr", "--out", "x"], "install s3fs")


@pytest.mark.skipif(find_spec("s3fs") is not None, reason="s3fs is installed here")
def test_s3_path_without_s3fs_installed_for_real(capsys):
    fails(capsys, [*SIM, "--out", "s3://bucket/runs/x.zarr"], "install s3fs (pip install s3fs)")


def test_unknown_url_protocol(capsys):
    fails(capsys, ["info", "nosuchproto://bucket/x.zarr"], "unknown protocol nosuchproto://")


# ----------------------------------------------------------------------------- Dask


@pytest.mark.parametrize("address", ["tcp://host", "host", "tcp://10.0.0.1", "tcp://:8786",
                                     "tcp://host:notaport", "tcp://host:0"])
def test_scheduler_address_without_a_port(capsys, tmp_path, address):
    out = str(tmp_path / "x.zarr")
    argv = [a for a in SIM if a != "--sync"]
    fails(capsys, [*argv, "--out", out, "--scheduler", address], "needs a host and a port",
          "tcp://10.0.0.1:8786")
    fails(capsys, ["quickstart", "--small", "--out", str(tmp_path / "q"), "--scheduler", address],
          "needs a host and a port")
    assert not (tmp_path / "x.zarr").exists()


# ----------------------------------------------------------------------------- exceptions


@pytest.mark.parametrize("exc", [RuntimeError("boom"), ValueError("bad value"), OSError(28, "No space left")])
def test_unexpected_exception_is_one_line_exit_1(capsys, monkeypatch, exc):
    def explode(args):
        raise exc

    monkeypatch.setattr(flowsim.cli.systems, "run", explode)
    line = fails(capsys, ["systems"], type(exc).__name__, "rerun with --debug for the traceback", code=1)
    assert str(exc.args[-1]) in line


def test_debug_reraises(monkeypatch):
    def explode(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(flowsim.cli.systems, "run", explode)
    with pytest.raises(RuntimeError, match="boom"):
        main(["--debug", "systems"])
    with pytest.raises(RuntimeError, match="boom"):
        main(["systems", "--debug"])
    with pytest.raises(flowsim.FlowsimError):
        main(["--debug", "train", "--system", "nope", "--out", "x"])


def test_keyboard_interrupt_exits_130(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(flowsim.cli.systems, "run", interrupted)
    fails(capsys, ["systems"], "interrupted", code=130)


def test_multi_line_messages_become_one_line(capsys, monkeypatch):
    def explode(args):
        raise flowsim.errors.ConfigError("first line\nsecond line")

    monkeypatch.setattr(flowsim.cli.systems, "run", explode)
    fails(capsys, ["systems"], "first line second line")


@pytest.mark.slow
def test_no_traceback_in_a_real_process_unless_debug(tmp_path):
    proc = flowsim_cli("quickstart", "--n", "0", "--out", str(tmp_path / "q"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "q").exists()
    proc = flowsim_cli("train", "--system", "lotka_volterra", "--out", str(tmp_path / "t"),
                       "--device", "bogus")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "flowsim: error: --device 'bogus' is not a device; use cpu, cuda, cuda:N or mps"]
    proc = flowsim_cli("--debug", "train", "--system", "lotka_volterra", "--out", str(tmp_path / "t"),
                       "--device", "bogus")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


# ----------------------------------------------------------------------------- help


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_option_has_help():
    for name, parser in _subcommands().items():
        for action in parser._actions:
            assert action.help, f"flowsim {name} {action.option_strings or action.dest} has no help"


def test_help_shows_defaults(capsys):
    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 512)" in out and "(default: 6000)" in out
    assert main(["quickstart", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: fitzhugh_nagumo)" in out and "(default: flowsim-quickstart)" in out
    assert main(["simulate", "--help"]) == 0
    assert "(default: 1e-08)" in " ".join(capsys.readouterr().out.split())


def test_quickstart_help_states_the_sizes_it_runs(capsys):
    from flowsim.report import SIZES

    assert main(["quickstart", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    small, default = SIZES["small"], SIZES["default"]
    assert f"default: {default['fit'].steps}; {small['fit'].steps} with --small" in out
    assert f"default: {default['n']}; {small['n']} with --small" in out
    assert f"{small['n']} trajectories, a {small['width']}x{small['depth']} network" in out


# ----------------------------------------------------------------------------- --minutes


def test_minutes_without_steps_is_not_capped_by_the_default_steps():
    parse = build_parser().parse_args
    args = parse(["train", "--system", "lotka_volterra", "--out", "x", "--minutes", "10"])
    assert args.steps == flowsim.train.RECIPE_128x6.steps and not args.steps_given
    args = parse(["train", "--system", "lotka_volterra", "--out", "x", "--minutes", "10", "--steps", "50"])
    assert args.steps == 50 and args.steps_given


@pytest.mark.slow
def test_minutes_alone_sets_the_budget_not_the_steps(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["train", "--system", "harmonic_oscillator", "--minutes", "0.02", "--width", "8",
                 "--depth", "1", "--batch-size", "32", "--out", str(out), "--no-progress"]) == 0
    record = flowsim.load(out).training_record
    assert record["steps"] == BUDGET_STEPS and record["time_budget"] == pytest.approx(1.2)
    assert 0 < record["steps_done"] < BUDGET_STEPS


# ----------------------------------------------------------------------------- what is shown


@pytest.mark.slow
def test_quickstart_no_progress_still_prints_the_results(tmp_path, capsys):
    assert main(["quickstart", "--small", "--n", "32", "--steps", "20", "--out", str(tmp_path / "q"),
                 "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "[1/3]" in captured.out and "median rel. err" in captured.out and "report:" in captured.out
    assert "it/s" not in captured.err and "step/s" not in captured.err and "%|" not in captured.err


@pytest.mark.slow
def test_evaluate_shows_a_progress_bar_unless_no_progress(tmp_path, capsys):
    ck = flowsim.save(flowsim.FlowMap("harmonic_oscillator", width=8, depth=1), tmp_path / "ck")
    assert main(["evaluate", str(ck), "--n-eval", "8"]) == 0
    captured = capsys.readouterr()
    assert "evaluate" in captured.err and "4/4" in captured.err and "median rel. err" in captured.out
    assert main(["evaluate", str(ck / "model.safetensors"), "--n-eval", "8", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "4/4" not in captured.err and "median rel. err" in captured.out
    assert (ck / "report" / "report.json").exists()


@pytest.mark.slow
def test_ensemble_progress_counts_the_members_steps(tmp_path, capsys):
    assert main(["train", "--system", "harmonic_oscillator", "--members", "2", "--steps", "30",
                 "--width", "8", "--depth", "1", "--batch-size", "32", "--out", str(tmp_path / "e")]) == 0
    err = capsys.readouterr().err
    assert "60/60" in err and "2/2 members done" in err


def test_stacked_ensemble_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "e"
    assert main(["train", "--system", "harmonic_oscillator", "--members", "2", "--stacked", "--steps", "20",
                 "--width", "8", "--depth", "1", "--batch-size", "32", "--out", str(out),
                 "--no-progress"]) == 0
    ens = flowsim.load(out)
    assert len(ens) == 2 and ens.training_record["stacked"] is True
    for argv, msg in ([["--stacked"], "--members 2"], [["--members", "2", "--stacked", "--workers", "2"],
                                                        "drop --workers"]):
        assert main(["train", "--system", "harmonic_oscillator", "--out", str(tmp_path / "x"), *argv]) == 2
        assert msg in capsys.readouterr().err


def test_simulate_refuses_one_time_point_and_speaks_of_its_own_flags(tmp_path, capsys):
    out = str(tmp_path / "fhn.zarr")
    base = [a for a in SIM if a not in ("--n-times", "3")]
    fails(capsys, [*base, "--n-times", "1", "--out", out], "--n-times must be at least 2")
    assert not (tmp_path / "fhn.zarr").exists()
    assert main([*SIM, "--out", out]) == 0
    capsys.readouterr()
    err = fails(capsys, [*base, "--n-times", "4", "--out", out], "--overwrite")
    assert "overwrite=True" not in err
    assert "t: stored float64 values of shape (3,)" in err and "now float64 values of shape (4,)" in err


def test_a_checkpoint_or_a_file_where_a_store_belongs_and_a_mistyped_checkpoint(tmp_path, capsys):
    ck = flowsim.save(flowsim.FlowMap("fitzhugh_nagumo", width=8, depth=1), tmp_path / "m")
    fails(capsys, ["info", str(ck)], "is a flow-map checkpoint, not a store")
    f = tmp_path / "gs.py"
    f.write_text("x = 1\n")
    fails(capsys, [*SIM, "--out", str(f)], "is a file, not a folder")
    with pytest.raises(flowsim.StoreError, match="is a file, not a zarr store"):
        flowsim.data.simulate_ensemble("lotka_volterra", 4, torch.linspace(0, 1, 3), store=f,
                                       client="sync", progress=False)
    with pytest.raises(flowsim.StoreError, match="is a file, not a zarr store"):
        flowsim.open_store(f)
    with pytest.raises(flowsim.ConfigError, match="client='synch' is neither 'sync' nor a scheduler"):
        flowsim.data.simulate_ensemble("lotka_volterra", 4, torch.linspace(0, 1, 3),
                                       store=tmp_path / "typo.zarr", client="synch", progress=False)
    assert not (tmp_path / "typo.zarr").exists()  # refused before anything is written
    assert f.read_text() == "x = 1\n"
    fails(capsys, ["calibrate", str(tmp_path / "m-typo"), "--data", str(f), "--out",
                   str(tmp_path / "cal")], "neither a checkpoint folder (no such path) nor a system")


def test_errors_name_the_commands_options_not_the_python_keywords(capsys, tmp_path):
    # resuming with another network: a short diff of the tensors, and the option that starts over
    out = str(tmp_path / "m")
    base = ["train", "--system", "van_der_pol", "--steps", "3", "--depth", "1", "--out", out,
            "--no-progress"]
    assert main([*base, "--width", "8"]) == 0
    err = fails(capsys, [*base, "--width", "16"], "another network", "checkpoint (8, ", "--restart")
    assert "resume=False" not in err and "size mismatch" not in err
    assert main([*base, "--width", "16", "--restart"]) == 0
    err = fails(capsys, ["train", "--system", "van_der_pol", "--objective", "pairs", "--steps", "3",
                         "--out", str(tmp_path / "p"), "--no-progress"], "--store", "--objective physics")
    assert "data=" not in err
    fails(capsys, ["info", str(tmp_path / "none.zarr")], "`flowsim simulate`")


def test_quickstart_restart_starts_over_where_a_rerun_with_other_settings_is_refused(capsys, tmp_path):
    out = str(tmp_path / "qs")
    small = ["quickstart", "--small", "--n", "16", "--steps", "3", "--out", out, "--no-progress"]
    assert main(small) == 0
    capsys.readouterr()
    err = fails(capsys, [*small[:-3], "--steps", "4", "--out", out, "--no-progress"], "--restart")
    assert "resume=False" not in err
    assert main([*small[:-3], "--steps", "4", "--out", out, "--no-progress", "--restart"]) == 0
    assert flowsim.load(Path(out) / "model").training_record["steps"] == 4
