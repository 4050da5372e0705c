"""Are torchode's "successful" Robertson samples right? (A check behind docs/benchmarks.md.)

torchode dopri5 at rtol = atol = 1e-3 returns on the stiff Robertson system in seconds, with a
few samples flagged as failed. This solves 2,000 prior states over one timescale, reruns the
samples it called successful without the failed ones, and compares 50 of them with scipy Radau
at 1e-10: the median relative error says whether "successful" means "solved".

    python benchmarks/robertson_torchode.py          # needs: pip install torchode
"""

from __future__ import annotations

import time

import torch
import torchode as to

import flowsim


def solve(system, x0, p, tol):
    term = to.ODETerm(lambda t, y: system.vector_field(t, y, p))
    ctrl = to.IntegralController(atol=tol, rtol=tol, term=term)
    t_eval = torch.tensor([0.0, system.timescale], dtype=torch.float64).expand(len(x0), 2)
    return to.solve_ivp(term, x0, t_eval, method="dopri5", controller=ctrl, max_steps=20_000)


def main() -> None:
    system = flowsim.get_system("robertson")
    g = torch.Generator().manual_seed(2024)
    x0, p = system.sample_initial(2000, g), system.sample_params(2000, g)
    t0 = time.perf_counter()
    first = solve(system, x0, p, 1e-3)
    status = torch.as_tensor(first.status)
    ok = status == 0
    print(f"torchode rtol=atol=1e-3: {time.perf_counter() - t0:.1f} s, status counts "
          f"{torch.bincount(status.long()).tolist()} (0 = success)")
    again = solve(system, x0[ok], p[ok], 1e-3)
    m = 50
    grid = torch.tensor([0.0, system.timescale], dtype=torch.float64)
    ref = flowsim.reference_solve(system, x0[ok][:m], grid, p[ok][:m], backend="scipy", method="Radau",
                                  rtol=1e-10, atol=1e-14)
    for name, sol in (("with the failed samples in the batch", first.ys[ok]), ("without them", again.ys)):
        err = (sol[:m, -1] - ref.x[:, -1]).norm(dim=-1) / ref.x[:, -1].norm(dim=-1)
        print(f"  'successful' samples, {name}: median relative error {err.median():.2g} vs Radau 1e-10")


if __name__ == "__main__":
    main()
