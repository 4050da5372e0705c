"""Does a bigger batch in the anneal beat more steps, in the same training time?

A lever of issue 17 tried as a prototype before any library option is built. The map's error is
made in the anneal of the learning rate (docs/benchmarks.md: a schedule that anneals later is
1.4–1.8× worse), where the gradient's noise, not its direction, limits the steps. Here the pair
batch grows by ``--factor`` once ``--after`` of the run is done (of the steps, or of the time
budget with ``--minutes``): fewer, less noisy steps in the anneal. Compare in equal *time*
(``--minutes``, two one-thread processes side by side), not equal steps. Everything else is
``benchmarks/accuracy.py`` with the arguments given after ``--``, recorded under the tag
``ablate-batch-ramp``:

    A="--objectives pairs --minutes 10 --threads 1 --systems fitzhugh_nagumo"
    python benchmarks/batch_ramp.py --after 0.6 --factor 4 -- $A --part br.json &
    python benchmarks/accuracy.py $A --part br_base.json
    python benchmarks/accuracy.py --merge br_base.json br.json --tag ablate-batch-ramp

It patches the pair draw of ``flowsim.train.batches`` for this process only (a prototype: see
docs/benchmarks.md for what it gave).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import flowsim.train.batches as batches

sys.path.insert(0, str(Path(__file__).parent))
import accuracy  # noqa: E402


def size(done: float, base: int, after: float, factor: int) -> int:
    """The pair batch once a fraction ``done`` of the run is over.

    >>> [size(d, 512, 0.6, 4) for d in (0.0, 0.59, 0.6, 1.0)]
    [512, 512, 2048, 2048]
    """
    return base * factor if done >= after else base


def install(after: float, factor: int, steps: int | None, seconds: float | None) -> None:
    """Patch the pair draw: the batch follows :func:`size` over the steps or the time budget."""
    pairs = batches.BatchSampler.pairs

    def ramped_pairs(self):
        k = getattr(self, "_ramp_count", 0)
        self._ramp_count = k + 1
        if not hasattr(self, "_ramp_base"):
            self._ramp_base, self._ramp_t0 = self.n, time.perf_counter()
        done = k / steps if steps else (time.perf_counter() - self._ramp_t0) / seconds
        self.n = size(done, self._ramp_base, after, factor)
        return pairs(self)

    batches.BatchSampler.pairs = ramped_pairs


def main(argv=None) -> None:
    own, rest = accuracy.prototype_args(argv, "ablate-batch-ramp")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--after", type=float, default=0.6, help="share of the run before the batch grows")
    ap.add_argument("--factor", type=int, default=4, help="how many times larger it grows")
    args = ap.parse_args(own)
    if not (0 <= args.after < 1 and args.factor >= 1):
        ap.error(f"--after must lie in [0, 1) and --factor be ≥ 1; got {args.after}, {args.factor}")
    run = accuracy.parser().parse_args(rest)
    if run.members > 1:
        ap.error("the prototype patches one process's sampler; drop --members")
    install(args.after, args.factor, run.steps, None if run.steps else 60 * run.minutes)
    accuracy.main(rest)


if __name__ == "__main__":
    main()
