"""The text of a report: report.json (non-finite numbers as null), report.md and the printed table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ._utils import atomic_path

__all__ = ["clean", "table", "write"]


def clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [clean(v) for v in obj]
    return obj


def table(s: dict[str, Any]) -> str:
    units = f" {s['time_units']}" if s.get("time_units") else ""
    lines = [f"flow map for {s['system']} (timescale {s['timescale']:.4g}{units})",
             f"{'jump':>10} {'jump/T':>8} {'median rel. err':>16} {'median norm. err':>17} "
             f"{'from x0: rel.':>14} {'norm.':>9}"]
    for r in s["error_vs_jump"]:
        start = f"{'—':>14} {'—':>9}"
        if "median_relative_error_from_start" in r:
            start = (f"{r['median_relative_error_from_start']:14.2e} "
                     f"{r['median_normalised_error_from_start']:9.2e}")
        lines.append(f"{r['jump']:10.4g} {r['jump_over_timescale']:8.3g} "
                     f"{r['median_relative_error']:16.2e} {r['median_normalised_error']:17.2e} {start}")
    sp = s.get("speedups")
    if sp is None:  # a report from before the one-jump / best-count figures
        old = s["speedup_vs_dopri5"]
        lines.append(old.get("summary") or old.get("note", ""))
        return "\n".join(lines)
    first, second = s.get("peers") or ("dopri5", "rk4")  # reports before stiff peers: dopri5, rk4
    n_wp = s.get("n_eval_work_precision")
    if n_wp:  # the speed-ups' errors are their own: other states than the table's
        lines.append(f"speed-ups at matched error, one jump of {s.get('max_jump', 0):.4g} from "
                     f"{n_wp} fresh initial states (their errors, not the table's):")
    lines.append(f"one jump: {sp[f'{first}_one_jump']['summary']}")
    lines.append(f"best jump count: {sp[f'{first}_best_speedup']['summary']}")
    other, head = sp[f"{second}_best_speedup"], sp[f"{first}_best_speedup"]
    if other.get("matched") and (not head.get("matched")
                                 or other["solver_wall_time"] < head["solver_wall_time"]):
        lines.append(f"{second} is the faster solver here: {other['summary']}")
    warn = s.get("machine_load", {}).get("warning")
    if warn:
        lines.append(f"WARNING: {warn}")
    return "\n".join(lines)


def write(out: Path, summary: dict[str, Any]) -> None:
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(clean(summary), indent=2))
    md = [f"# flowsim report: {summary['system']}", "", "```", table(summary), "```", ""]
    md += [f"![{f}]({f})" for f in summary["figures"]]
    md += ["", f"*Matched error*: {summary['matched_means']}"]
    md += ["", "Errors are medians over jumps from random times along held-out trajectories and, under "
           "*from x0*, from their initial states (where transients are); *relative* is "
           "‖X−X_ref‖/‖X_ref‖, *normalised* is ‖(X−X_ref)/σ‖/√dim (σ: per-state standard deviation)."]
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text("\n".join(md) + "\n")
