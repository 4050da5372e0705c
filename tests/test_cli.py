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


def test_train_and_quickstart_take_their_defaults_from_one_config():
    from flowsim.cli import build_parser
    from flowsim.report import SIZES
    from flowsim.train import RECIPE_128x6

    args = build_parser().parse_args(["train", "--system", "lotka_volterra", "--out", "x"])
    assert (args.steps, args.batch_size, args.lr, args.seed, args.jump_margin, args.optimizer) == (
        RECIPE_128x6.steps, RECIPE_128x6.batch_size, RECIPE_128x6.lr, RECIPE_128x6.seed,
        RECIPE_128x6.jump_margin, RECIPE_128x6.optimizer)
    assert SIZES["default"]["fit"] == RECIPE_128x6
    assert (args.early_fraction, args.initial_fraction) == (1.0, 0.3) == (
        RECIPE_128x6.early_fraction, RECIPE_128x6.initial_fraction)


def test_train_passes_the_start_draw_to_the_config():
    """``--initial-fraction`` / ``--early-fraction`` reach the FitConfig that ``flowsim train`` fits
    with (a stiff system's users raise the first to 0.5)."""
    from flowsim.cli import build_parser
    from flowsim.cli.train import fit_config

    args = build_parser().parse_args(["train", "--system", "lotka_volterra", "--out", "x",
                                      "--initial-fraction", "0.5", "--early-fraction", "0.25"])
    cfg = fit_config(args)
    assert (cfg.initial_fraction, cfg.early_fraction) == (0.5, 0.25)


def test_train_decay_and_backbone_flags_reach_the_checkpoint(tmp_path):
    """``flowsim train`` builds the default map (the start state's learned decay, the residual
    backbone); ``--no-decay`` and ``--tangent`` build the plain one, ``--backbone mlp`` the MLP,
    ``--relax on`` the relaxing decay."""
    for extra, decay, backbone in (([], True, "resnet"), (["--no-decay"], False, "resnet"),
                                   (["--tangent"], False, "resnet"),
                                   (["--backbone", "mlp"], True, "mlp")):
        out = tmp_path / ("m" + "".join(extra))
        assert main(["train", "--system", "lotka_volterra", "--steps", "2", "--batch-size", "8",
                     "--width", "8", "--depth", "1", "--no-progress", "--out", str(out)] + extra) == 0
        fm = flowsim.load(out)
        assert fm.config.decay is decay and fm.config.tangent is (extra == ["--tangent"])
        assert fm.config.backbone == backbone == type(fm.net).__name__.lower()
        assert not fm.config.relax  # Lotka–Volterra is not stiff
    out = tmp_path / "relaxed"
    assert main(["train", "--system", "lotka_volterra", "--steps", "2", "--batch-size", "8",
                 "--width", "8", "--depth", "1", "--no-progress", "--out", str(out),
                 "--relax", "on"]) == 0
    assert flowsim.load(out).config.relax
