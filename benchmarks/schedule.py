"""Does a warm-up–stable–decay learning rate beat the cosine decay at equal steps?

A lever of issue 17 tried as a prototype before any library option is built. Today's trainer
warms the learning rate up over 5 % of the steps and then decays it by a cosine to zero. Here it
stays at its peak until the last ``--decay`` share of the steps and then falls linearly
(``--shape linear``) or as ``1 − √f`` (``--shape sqrt``) to zero ("WSD"; Hu et al. 2024, Hägele et
al. 2024): more of the steps at the full rate, a shorter and steeper anneal. Everything else is
``benchmarks/accuracy.py`` with the arguments given after ``--``, recorded under the tag
``ablate-schedule``:

    A="--objectives pairs --steps 12000 --threads 1"
    python benchmarks/schedule.py --decay 0.2 -- $A --systems fitzhugh_nagumo --part ws_fhn.json
    python benchmarks/accuracy.py --merge ws_fhn.json --tag ablate-schedule

It patches the schedule of ``flowsim.train.trainer`` for this process only, for runs with a
fixed ``--steps`` (a prototype: see docs/benchmarks.md for what it gave).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import flowsim.train.trainer as trainer

sys.path.insert(0, str(Path(__file__).parent))
import accuracy  # noqa: E402


def factor(frac: float, warm: float, decay: float, shape: str) -> float:
    """The learning-rate factor a fraction ``frac`` of the way through the run.

    >>> [round(factor(f, 1.0, 0.2, "linear"), 2) for f in (0.5, 0.8, 0.9, 1.0)]
    [1.0, 1.0, 0.5, 0.0]
    >>> round(factor(0.9, 1.0, 0.2, "sqrt"), 3)
    0.293
    """
    f = max(0.0, (frac - (1 - decay)) / decay)
    return warm * (1 - f if shape == "linear" else 1 - math.sqrt(f))


def install(decay: float, shape: str) -> None:
    """Patch the trainer's schedule: the same warm-up, then :func:`factor`."""

    def wsd(cfg, step, elapsed):
        if cfg.time_budget is not None:
            raise SystemExit("the prototype schedules a fixed --steps only")
        frac = step / cfg.steps
        warm = min(1.0, (step + 1) / max(1, int(cfg.warmup * cfg.steps)))
        return factor(frac, warm, decay, shape), frac

    trainer._schedule = wsd


def main(argv=None) -> None:
    own, rest = accuracy.prototype_args(argv, "ablate-schedule")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--decay", type=float, default=0.2, help="share of the steps of the final decay")
    ap.add_argument("--shape", choices=["linear", "sqrt"], default="linear")
    args = ap.parse_args(own)
    if not 0 < args.decay <= 1:
        ap.error(f"--decay must lie in (0, 1]; got {args.decay}")
    install(args.decay, args.shape)
    accuracy.main(rest)


if __name__ == "__main__":
    main()
