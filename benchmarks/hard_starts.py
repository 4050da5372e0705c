"""Does drawing the trajectories a map gets most wrong from their initial states more often help?

A lever of issue 17 ("error-driven sampling of hard starts"), tried as a prototype before any
library option is built: every ``--every`` pair batches, the map in training jumps from each
training trajectory's initial state to 0.03 T, 0.3 T and 1 T; its error there (in the map's
normalised coordinates, summed over the three jumps) sets the trajectory's weight, and a fraction
``--fraction`` of each pair batch's trajectories is drawn in proportion to it (the rest
uniformly). Everything else is ``benchmarks/accuracy.py`` with the arguments given after ``--``,
recorded under the tag ``ablate-hard-starts``:

    A="--objectives pairs --steps 12000 --threads 1"
    python benchmarks/hard_starts.py --fraction 0.5 -- $A --systems fitzhugh_nagumo --part hs_fhn.json
    python benchmarks/hard_starts.py --fraction 0.5 -- $A --systems van_der_pol --part hs_vdp.json
    python benchmarks/accuracy.py --merge hs_fhn.json hs_vdp.json --tag ablate-hard-starts

It patches the pair draw of ``flowsim.data.sampling`` and ``flowsim.train.batches`` for this
process only (a prototype: the lever did not pay, see docs/benchmarks.md, so it is not a
library option).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import flowsim.data.sampling as sampling
import flowsim.train.batches as batches

sys.path.insert(0, str(Path(__file__).parent))
import accuracy  # noqa: E402


@torch.no_grad()
def start_weights(fm, bank, fraction: float) -> torch.Tensor:
    """Per-trajectory draw weights: ``1 - fraction`` uniform, ``fraction`` in proportion to the
    map's error from the trajectory's initial state (jumps of 0.03, 0.3 and 1 timescale)."""
    t, T = bank.t[0], fm.system.timescale
    dev, dt = fm.device, fm.dtype
    x0, s, p = bank.x[:, 0].to(dev, dt), bank.t[:, 0].to(dev, dt), bank.p.to(dev, dt)
    enc = fm.state_transform.encode
    err = torch.zeros(len(bank), dtype=torch.float64)
    for h in (0.03 * T, 0.3 * T, T):
        j = min(int(torch.searchsorted(t, t[0] + h)), t.numel() - 1)
        pred = fm(s, bank.t[:, j].to(dev, dt), x0, p).double()
        err += (enc(pred) - enc(bank.x[:, j].to(pred.device))).norm(dim=-1).cpu()
    err = torch.nan_to_num(err, nan=float(err.nanmean()))
    return (1 - fraction) / err.numel() + fraction * err / err.sum()


def install(fraction: float, every: int) -> None:
    """Patch the pair draw: rows by the current weights, refreshed every ``every`` batches."""
    weights: dict[str, torch.Tensor | None] = {"w": None}
    rows, pairs = sampling._rows, batches.BatchSampler.pairs

    def weighted_rows(grid, n, g, ok):
        w = weights["w"]
        if w is not None and grid.n_rows == w.numel():  # the training bank, not the held-out one
            return torch.multinomial(w, n, replacement=True, generator=g)
        return rows(grid, n, g, ok)

    def refreshed_pairs(self):
        count = getattr(self, "_hard_count", 0)
        self._hard_count = count + 1
        if count and count % every == 0:
            was = self.fm.training
            weights["w"] = start_weights(self.fm, self.bank, fraction)
            self.fm.train(was)
        return pairs(self)

    sampling._rows = weighted_rows
    batches.BatchSampler.pairs = refreshed_pairs


def main(argv=None) -> None:
    own, rest = accuracy.prototype_args(argv, "ablate-hard-starts")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.5)
    ap.add_argument("--every", type=int, default=500)
    args = ap.parse_args(own)
    install(args.fraction, args.every)
    accuracy.main(rest)


if __name__ == "__main__":
    main()
