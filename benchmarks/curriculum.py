"""Does a curriculum over the jump size help a map's long jumps and its jumps from the initial states?

A lever of issue 17 ("curriculum over jump size"), tried as a prototype before any library option
is built: the longest pair gap drawn in training starts at ``--start`` times the recipe's
``max_jump`` and grows linearly (or geometrically, ``--shape geometric``) to it over the first
``--ramp`` of the steps; the draw is otherwise the recipe's (log-uniform and uniform gaps, early
and initial starts). Everything else is ``benchmarks/accuracy.py`` with the arguments given after
``--``, recorded under the tag ``ablate-curriculum``:

    A="--objectives pairs --steps 12000 --threads 1"
    python benchmarks/curriculum.py --start 0.05 --ramp 0.5 -- $A --systems fitzhugh_nagumo --part cu_fhn.json
    python benchmarks/curriculum.py --start 0.05 --ramp 0.5 -- $A --systems van_der_pol --part cu_vdp.json
    python benchmarks/accuracy.py --merge cu_fhn.json cu_vdp.json --tag ablate-curriculum

It patches the pair draw of ``flowsim.train.batches`` for this process only (a prototype: see
docs/benchmarks.md for what it gave).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import flowsim.train.batches as batches

sys.path.insert(0, str(Path(__file__).parent))
import accuracy  # noqa: E402


def limit(k: int, total: int, start: float, ramp: float, shape: str) -> float:
    """The fraction of ``max_jump`` allowed at batch ``k`` of ``total``.

    >>> [round(limit(k, 100, 0.1, 0.5, "linear"), 2) for k in (0, 25, 50, 99)]
    [0.1, 0.55, 1.0, 1.0]
    >>> [round(limit(k, 100, 0.01, 0.5, "geometric"), 2) for k in (0, 25, 50)]
    [0.01, 0.1, 1.0]
    """
    f = min(1.0, k / max(1.0, ramp * total))
    return start + (1 - start) * f if shape == "linear" else start ** (1 - f)


def install(total: int, start: float, ramp: float, shape: str) -> None:
    """Patch the pair draw: the longest gap follows :func:`limit` over the batches drawn."""
    pairs = batches.BatchSampler.pairs

    def curriculum_pairs(self):
        k = getattr(self, "_curriculum_count", 0)
        self._curriculum_count = k + 1
        if not hasattr(self, "_curriculum_hi"):
            if self.hi is None:
                raise SystemExit("the curriculum needs the recipe's max_jump (accuracy.py sets it)")
            self._curriculum_hi = self.hi
        full, lo = self._curriculum_hi, self.lo or 0.0
        self.hi = max(lo * 1.5, full * limit(k, total, start, ramp, shape))
        try:
            return pairs(self)
        finally:
            self.hi = full

    batches.BatchSampler.pairs = curriculum_pairs


def main(argv=None) -> None:
    own, rest = accuracy.prototype_args(argv, "ablate-curriculum")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", type=float, default=0.05, help="first longest gap, as a fraction of max_jump")
    ap.add_argument("--ramp", type=float, default=0.5,
                    help="share of the steps over which it grows to max_jump")
    ap.add_argument("--shape", choices=["linear", "geometric"], default="linear")
    args = ap.parse_args(own)
    if not (0 < args.start <= 1 and 0 < args.ramp <= 1):
        ap.error(f"--start and --ramp must lie in (0, 1]; got {args.start} and {args.ramp}")
    if "--steps" not in rest:
        ap.error("give accuracy.py a fixed --steps after '--': the curriculum is laid over them")
    install(int(rest[rest.index("--steps") + 1]), args.start, args.ramp, args.shape)
    accuracy.main(rest)


if __name__ == "__main__":
    main()
