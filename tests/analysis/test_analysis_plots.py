"""Every plot renders headless to a non-empty PNG."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from flowsim import ConfigError  # noqa: E402
from flowsim.analysis import (  # noqa: E402
    ExactFlowMap,
    error_vs_jump,
    error_vs_steps,
    indicator_quality,
    invariant_drift,
    plot_error_vs_jump,
    plot_error_vs_steps,
    plot_indicator_quality,
    plot_invariant_drift,
    plot_valid_prediction_time,
    plot_work_precision,
    save_figure,
    valid_prediction_time,
    work_precision,
)


def _noisy(sho):
    return ExactFlowMap(sho, perturbation=lambda s, t, x, p: 1e-3 * ((t - s) ** 2)[:, None] * x)


def test_all_plots_render_to_png(tmp_path, sho, sho_ref, lorenz, lorenz_ref):
    fm = _noisy(sho)
    figs = {
        "jump": plot_error_vs_jump(error_vs_jump(fm, sho_ref, n_jumps=5)),
        "jump_normalised": plot_error_vs_jump(error_vs_jump(fm, sho_ref, n_jumps=3),
                                              metric="normalised_error"),
        "steps": plot_error_vs_steps(error_vs_steps(fm, sho_ref, horizon=3.0, n_steps=(1, 2, 4))),
        "drift": plot_invariant_drift(invariant_drift(fm, sho, sho.sample_initial(4, 0), n_steps=(1, 2, 4))),
        "indicator": plot_indicator_quality(indicator_quality(fm, sho_ref, n_jumps=3)),
        "vpt": plot_valid_prediction_time(valid_prediction_time(ExactFlowMap(lorenz), lorenz_ref)),
    }
    wp = work_precision(fm, sho, sho.sample_initial(4, 1), horizon=2.0, n_jumps=(1, 2),
                        tolerances=(1e-3, 1e-5), rk4_steps=(8,), solvers=("dopri5", "rk4"), repeats=1)
    figs["wp"] = plot_work_precision(wp)
    figs["wp_nfe"] = plot_work_precision(wp, x="nfe", metric="normalised_error")
    for name, fig in figs.items():
        assert isinstance(fig, Figure)
        path = save_figure(fig, tmp_path / "figs" / f"{name}.png")
        assert path.exists() and path.stat().st_size > 1000, name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # units of the system's time are on the axes
    assert "[s]" in figs["jump"].axes[0].get_xlabel()
    assert figs["jump"].axes[0].get_xscale() == "log" and figs["jump"].axes[0].get_yscale() == "log"
    assert "relative error" in figs["jump"].axes[0].get_ylabel()
    assert "normalised error" in figs["jump_normalised"].axes[0].get_ylabel()
    assert not list(tmp_path.glob("figs/.*.tmp"))  # nothing half-written left behind


def test_plot_onto_given_axes_and_bad_inputs(tmp_path, exact, sho_ref):
    ds = error_vs_jump(exact, sho_ref, n_jumps=3)
    fig = Figure()
    ax = fig.add_subplot()
    assert plot_error_vs_jump(ds, ax=ax) is fig
    with pytest.raises(ConfigError):
        plot_error_vs_jump(ds, metric="max_error")
    with pytest.raises(ConfigError):
        plot_error_vs_jump(ds, ax="not an axes")
    with pytest.raises(ConfigError):
        save_figure("not a figure", tmp_path / "x.png")


def test_figures_show_themselves_in_notebooks(sho, sho_ref, exact):
    """No pyplot, no %matplotlib inline: IPython still gets a PNG from ``_repr_png_``."""
    fig = plot_error_vs_jump(error_vs_jump(exact, sho_ref))
    png = fig._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
