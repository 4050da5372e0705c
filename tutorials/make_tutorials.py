"""Write tutorials 02–05 as Jupyter notebooks (outputs stripped), reproducibly.

    python tutorials/make_tutorials.py           # (re)write the notebooks next to this file
    python tutorials/make_tutorials.py --check   # exit 1 if a notebook differs from this script

The notebooks are the product; this script is how they are edited: change a cell here, run it,
then re-render the site's executed copies with ``python docs/render_tutorials.py``. Cell ids are
derived from the notebook name and the cell's position, so rewriting gives identical bytes.
Tutorials 01 and 06 are edited as notebooks directly.

Every notebook reads ``FLOWSIM_TUTORIAL_FAST=1`` (set by the test suite) to shrink its sizes to
a smoke run; the default sizes are what the documentation site shows.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def _cells(name: str, spec: list[tuple[str, str]]) -> list:
    out = []
    for i, (kind, text) in enumerate(spec):
        src = text.strip("\n")
        cell = nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src)
        cell["id"] = hashlib.sha1(f"{name}:{i}".encode()).hexdigest()[:8]
        out.append(cell)
    return out


def notebook(name: str, spec: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = _cells(name, spec)
    nb.metadata = {"kernelspec": dict(KERNELSPEC)}
    return nb


# ---------------------------------------------------------------------------------------------
# 2. Biology, parametric
# ---------------------------------------------------------------------------------------------
T02 = [
    ("md", r"""
# 2. One flow map for a whole parameter prior: sweeping a neuron model

A parameter sweep with an ODE solver integrates every parameter set anew. A flow map
`X(s, t, x; p)` takes the parameters `p` as network inputs, so **one** training run over a
parameter range answers every query inside it, and a sweep becomes a batch of jumps.

We train one map of the FitzHugh–Nagumo neuron over the prior of all four of its parameters,
then sweep two of them — the applied current `I_ext` and the recovery offset `a` — from many
initial states each, and compare with torchdiffeq: how long the sweep takes, and how far the
map's answer is from the solver's.

Set `FLOWSIM_TUTORIAL_FAST=1` to shrink everything to a smoke run (the test suite does).
"""),
    ("code", r"""
%matplotlib inline
import os, time
import numpy as np, torch, flowsim
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from flowsim import analysis as an

FAST = os.environ.get('FLOWSIM_TUTORIAL_FAST') == '1'
torch.manual_seed(0)
sys = flowsim.get_system('fitzhugh_nagumo')
T = sys.timescale
print(sys.description, '| period ≈', T)
for q in sys.parameters:
    print(f'  {q.name:6s} default {q.default:<5g} prior {q.prior}   {q.description}')
"""),
    ("md", r"""
## Simulate over the prior

`params='prior'` draws each trajectory's parameters uniformly from the prior box (reproducibly,
from the seed and the chunk), and initial states from the system's initial-state box. The store
keeps each trajectory's parameters in `params(trajectory, param)`, which is what lets the trainer
pair every jump with the parameters that produced it.
"""),
    ("code", r"""
n = 300 if FAST else 2000
t0 = time.perf_counter()
ds = flowsim.simulate_ensemble(sys, n, torch.linspace(0, 2 * T, 81 if FAST else 321), params='prior',
                               store='tutorial-fhn-prior.zarr', client='sync', overwrite=True, progress=False)
t_data = time.perf_counter() - t0
print(f'{n} trajectories in {t_data:.1f} s')
ds.params.to_pandas().describe().loc[['min', 'mean', 'max']]
"""),
    ("md", r"""
## Train one map for the whole prior

Nothing changes compared with tutorial 1 except the data: the map normalises each parameter from
its prior range onto [-1, 1] (`fm.param_transform`) and sees it as an input. Pair regression
learns `X(t_i, t_j, x_i; p) ≈ x_j` from stored states at all gaps.

Single jumps are capped at a quarter period (`max_jump=T/4`): short jumps are easier to learn,
and longer intervals are covered by composing jumps, which `odeint` does for us. The network is
small (64 wide, 3 layers) on purpose: the sweep below evaluates it 20 times on 12,800 states,
and its cost per evaluation is what the sweep's speed comes down to.
"""),
    ("code", r"""
fm = flowsim.FlowMap(sys, width=64, depth=3)
res = flowsim.fit(fm, 'pairs', ds, steps=300 if FAST else 8000, batch_size=512, lr=5e-3,
                  max_jump=T / 4, progress=False)
print(f'trained in {res.wall_time:.0f} s; parameter range it accepts:')
print('  low ', [round(v, 3) for v in fm.param_transform.low.tolist()])
print('  high', [round(v, 3) for v in fm.param_transform.high.tolist()])
res.metrics
"""),
    ("md", r"""
## Is it equally good over the whole prior?

`error_vs_jump(..., per_param=True)` reports the median single-jump error in bins of each
parameter (one parameter at a time), on held-out trajectories with parameters drawn from the
prior. A map that had quietly learned only the middle of the box would show it here, at the
edges. The figure is at the end; the table is the longest jump.
"""),
    ("code", r"""
g = torch.Generator().manual_seed(7)
m_test = 64 if FAST else 256
t_test = torch.linspace(0, 2 * T, 161, dtype=torch.float64)
test = flowsim.reference_solve(sys, sys.sample_initial(m_test, g), t_test, sys.sample_params(m_test, g),
                               rtol=1e-9, atol=1e-11)
ej = an.error_vs_jump(fm, test, per_param=True)
longest = ej.isel(jump=-1)
print(f'median relative error of a jump of {float(longest.jump):.2f} time units, per parameter bin:')
for k, name in enumerate(longest.param.values):
    vals = '  '.join(f'{v:.3g}: {e:.1e}' for v, e in zip(longest.param_value.values[k],
                                                        longest.median_relative_error_by_param.values[k]))
    print(f'  {name:6s} {vals}')
"""),
    ("md", r"""
## The sweep: where does the neuron fire?

A grid over `I_ext` × `a` (the other two parameters at their defaults), with `m` random initial
states per grid cell. The swept quantity is the **oscillation amplitude** of the voltage `v` over
the second period, `t ∈ [T, 2T]`: about 3.8 where the neuron fires repeatedly, near 0 where it
settles to rest. The boundary between the two is a Hopf bifurcation, and it runs through the prior.

The amplitude is measured on 17 output times in `[T, 2T]`, the same for solver and map. Both
start at `t = 0`; the map covers `[0, T]` in four jumps of `T/4`, then one jump per output time:
20 network evaluations per trajectory.
"""),
    ("code", r"""
nI, nA, m = (12, 12, 4) if FAST else (40, 40, 8)
names = list(sys.param_names)
I_grid = torch.linspace(*sys.parameters[names.index('I_ext')].prior, nI, dtype=torch.float64)
a_grid = torch.linspace(*sys.parameters[names.index('a')].prior, nA, dtype=torch.float64)
GI, GA = torch.meshgrid(I_grid, a_grid, indexing='ij')
P = sys.default_params(nI * nA * m)                        # (trajectories, 4): defaults ...
P[:, names.index('I_ext')] = GI.reshape(-1).repeat_interleave(m)   # ... with the two swept columns
P[:, names.index('a')] = GA.reshape(-1).repeat_interleave(m)
x0 = sys.sample_initial(nI * nA * m, generator=3)
t_out = torch.cat([torch.zeros(1), torch.linspace(T, 2 * T, 17)]).double()
print(f'{nI} x {nA} parameter cells x {m} initial states = {len(x0)} trajectories')
"""),
    ("md", r"""
Both run in this process on the same CPU. The solver runs at a typical working tolerance
(`rtol=1e-6`), far tighter than the map's error, so it serves as the truth here; tutorial 5
compares the two at *matched* error instead. The map is warmed up once on a few states first
(the first call of any torch model pays one-off set-up costs).
"""),
    ("code", r"""
t0 = time.perf_counter()
ref = flowsim.reference_solve(sys, x0, t_out, P, rtol=1e-6, atol=1e-8)
t_ref = time.perf_counter() - t0

x0f, Pf, tf = x0.float(), P.float(), t_out.float()
with torch.no_grad():
    fm.odeint(x0f[:64], tf, Pf[:64])                       # warm-up
    t0 = time.perf_counter()
    traj = fm.odeint(x0f, tf, Pf)                          # (time, batch, dim), torchdiffeq's layout
    t_map = time.perf_counter() - t0
print(f'torchdiffeq dopri5 (rtol 1e-6): {t_ref:.2f} s, {ref.n_failed} failed')
print(f'flow map:                       {t_map * 1e3:.0f} ms  ->  {t_ref / t_map:.0f}x faster')
"""),
    ("code", r"""
def amplitude(v):
    '''Mean over initial states of max(v) - min(v) in the window; v is (trajectories, times).'''
    return (v.amax(1) - v.amin(1)).reshape(nI, nA, m).mean(-1)

amp_ref = amplitude(ref.x[:, 1:, 0])
amp_map = amplitude(traj[1:, :, 0].T.double())
err = (amp_map - amp_ref).abs()
final = an.relative_error(traj[-1].double(), ref.x[:, -1])
print(f'amplitude error per cell: median {err.median():.3f}, 90 % {err.quantile(0.9):.3f}, '
      f'max {err.max():.2f}  (a firing neuron: {amp_ref.max():.2f})')
wrong = int(((amp_map > 1.9) != (amp_ref > 1.9)).sum())
print(f'cells on the wrong side of amplitude 1.9 (firing or not): {wrong} of {nI * nA}')
print(f'state at t = 2T after 20 jumps: median relative error {final.median():.1e}')
"""),
    ("md", r"""
Was training worth it? The map cost the ensemble plus the training run once; each sweep of this
size then saves the difference between the two timings above. (Counting honestly: the ensemble
itself was solved with the same solver.)
"""),
    ("code", r"""
cost = t_data + res.wall_time
saved = t_ref - t_map
print(f'one-off cost {cost:.0f} s (ensemble {t_data:.0f} s + training {res.wall_time:.0f} s); '
      f'each sweep saves {saved:.1f} s -> pays off after {cost / saved:.0f} sweeps of this size')
"""),
    ("md", r"""
## Pictures

The amplitude maps from the solver and from the flow map, and their difference. The error is not
spread evenly: it sits on the bifurcation boundary, where a small error in the state decides
between settling down and firing, and where the amplitude still changes during the transient.
Away from the boundary, the map reproduces the solver to a few hundredths.
"""),
    ("code", r"""
extent = [float(a_grid[0]), float(a_grid[-1]), float(I_grid[0]), float(I_grid[-1])]
fig = Figure(figsize=(13, 3.8), layout='constrained')
axs = fig.subplots(1, 3)
for ax, data, title in ((axs[0], amp_ref, f'torchdiffeq: {t_ref:.1f} s'),
                        (axs[1], amp_map, f'flow map: {t_map * 1e3:.0f} ms')):
    im = ax.imshow(data.numpy(), origin='lower', extent=extent, aspect='auto', cmap='viridis',
                   vmin=0, vmax=float(amp_ref.max()))
    ax.set_title(title)
fig.suptitle(f'oscillation amplitude of v over [T, 2T], {nI} x {nA} parameter cells x {m} initial states')
fig.colorbar(im, ax=axs[:2], label='amplitude max v − min v')
im = axs[2].imshow(err.numpy(), origin='lower', extent=extent, aspect='auto', cmap='magma_r',
                   norm=LogNorm(1e-3, 4))
fig.colorbar(im, ax=axs[2], label='|flow map − torchdiffeq|')
axs[2].set_title('error of the flow map')
for ax in axs:
    ax.set_xlabel('recovery offset a'); ax.set_ylabel('applied current I_ext')
fig
"""),
    ("md", r"""
Voltage traces at two grid points — one on each side of the boundary — from the solver (lines)
and from the map (dots, one per jump of `T/16`):
"""),
    ("code", r"""
fig = Figure(figsize=(12, 3.4), layout='constrained')
axs = fig.subplots(1, 2, sharey=True)
t_fine = torch.linspace(0, 2 * T, 33).double()
for ax, (I_val, a_val) in zip(axs, ((0.4, 0.85), (0.8, 0.6))):
    p = sys.default_params(6)
    p[:, names.index('I_ext')], p[:, names.index('a')] = I_val, a_val
    xs = sys.sample_initial(6, generator=11)
    sol = flowsim.reference_solve(sys, xs, torch.linspace(0, 2 * T, 400), p)
    with torch.no_grad():
        fx = fm.odeint(xs.float(), t_fine.float(), p.float())
    for k in range(6):
        ax.plot(sol.t, sol.x[k, :, 0], color=f'C{k}', lw=1)
        ax.plot(t_fine, fx[:, k, 0], 'o', color=f'C{k}', ms=3)
    ax.set_title(f'I_ext = {I_val}, a = {a_val}')
    ax.set_xlabel('t')
axs[0].set_ylabel('voltage v')
fig
"""),
    ("md", r"""
The single-jump error in bins of each parameter, at a short, a medium and the longest jump: flat
lines mean the map is about as good everywhere in the prior.
"""),
    ("code", r"""
fig = Figure(figsize=(13, 3.2), layout='constrained')
axs = fig.subplots(1, len(names), sharey=True)
picks = sorted({0, len(ej.jump) // 2, len(ej.jump) - 1})
for k, (ax, name) in enumerate(zip(axs, names)):
    for j in picks:
        ax.semilogy(ej.param_value.values[k], ej.median_relative_error_by_param.values[j, k], 'o-',
                    label=f'jump {float(ej.jump[j]):.2g}')
    ax.set_xlabel(name)
axs[0].set_ylabel('median relative error')
axs[0].legend(frameon=False)
fig
"""),
]


# ---------------------------------------------------------------------------------------------
# 3. Physics and invariants
# ---------------------------------------------------------------------------------------------
T03 = [
    ("md", r"""
# 3. Physics: conserved energy, jump size and composed jumps

The pendulum `θ' = ω, ω' = −(g/L) sin θ` conserves its energy per unit mass
`E = ½ L² ω² + g L (1 − cos θ)`. A solver conserves it up to its tolerance. A flow map is not
built to conserve anything: each jump makes a small error, and the error shows as a drift of `E`.

This tutorial measures that drift against the two things you choose when you use a map — how long
each jump is, and how many jumps you compose — with `flowsim.analysis.invariant_drift`, and puts it
beside the state error from `error_vs_jump` and `error_vs_steps`. For contrast, two classical
one-step integrators, RK4 and the symplectic leapfrog, go through the very same analysis.

Set `FLOWSIM_TUTORIAL_FAST=1` to shrink everything to a smoke run (the test suite does).
"""),
    ("code", r"""
%matplotlib inline
import os
import torch, flowsim
from matplotlib.figure import Figure
from flowsim import analysis as an

FAST = os.environ.get('FLOWSIM_TUTORIAL_FAST') == '1'
torch.manual_seed(0)
sys = flowsim.get_system('pendulum')
T = sys.timescale
print(sys.description)
print('conserved:', sys.invariant_names, '| small-amplitude period', round(T, 3), sys.time_units)
"""),
    ("md", r"""
## Data and training

Reference trajectories over two periods with `g` and `L` drawn from their priors, so the map
covers pendulums from 0.5 m to 2 m. The solver's own energy error is the floor every later
number should be compared with: `sys.invariants(x, p)` evaluates `E` on any states, here along
the stored trajectories.
"""),
    ("code", r"""
n = 200 if FAST else 1000
g = torch.Generator().manual_seed(0)
t_data = torch.linspace(0, 2 * T, 201, dtype=torch.float64)
data = flowsim.reference_solve(sys, sys.sample_initial(n, g), t_data, sys.sample_params(n, g),
                               rtol=1e-9, atol=1e-11)
E = sys.invariants(data.x, data.p)['energy']                # (trajectory, time)
print(f'solver energy drift over two periods: median {((E[:, -1] - E[:, 0]).abs() / E[:, 0]).median():.1e}')
"""),
    ("code", r"""
fm = flowsim.FlowMap(sys, width=64 if FAST else 128, depth=3 if FAST else 4)
res = flowsim.fit(fm, 'pairs', data, steps=300 if FAST else 8000, batch_size=512, lr=5e-3,
                  max_jump=T / 2, progress=False)
print(f'trained in {res.wall_time:.0f} s; longest trained jump {fm.max_jump:.3f} s')
res.metrics
"""),
    ("md", r"""
## How accurate is one jump?

Held-out trajectories over four periods. `error_vs_jump` evaluates single jumps between stored
states, so the only error measured is the map's.
"""),
    ("code", r"""
g = torch.Generator().manual_seed(7)
m_test = 64 if FAST else 128
t_test = torch.linspace(0, 4 * T, 401, dtype=torch.float64)
test = flowsim.reference_solve(sys, sys.sample_initial(m_test, g), t_test, sys.sample_params(m_test, g),
                               rtol=1e-10, atol=1e-12)
ej = an.error_vs_jump(fm, test)
ej[['median_relative_error', 'median_normalised_error']].to_pandas()
"""),
    ("md", r"""
## Energy drift: jump size against number of jumps

Over a fixed horizon of four periods, `invariant_drift` composes N equal jumps (jump size
`4T / N`) from the same 256 held-out states and records `|E(X_k) − E(x₀)| / E(x₀)` after every
jump k. Two error sources pull in opposite directions:

* **few, long jumps** — long jumps are the hardest part of the map to learn, so each one is less
  accurate;
* **many, short jumps** — each jump is accurate, but N small errors add up, and nothing pulls
  the energy back.

So the drift at the horizon is typically U-shaped in N, with the best N in between.
"""),
    ("code", r"""
H = 4 * T
counts = (8, 32, 128) if FAST else (8, 16, 32, 64, 128, 256)
g = torch.Generator().manual_seed(5)
x0, p0 = sys.sample_initial(256, g), sys.sample_params(256, g)
drift = an.invariant_drift(fm, sys, x0, p0, horizon=H, n_steps=counts)
drift.final_relative_drift.sel(invariant='energy').to_pandas().rename('median relative energy drift at 4T')
"""),
    ("md", r"""
The state error at the same horizon, from `error_vs_steps` on the held-out trajectories, has a
similar shape. The two need not agree in size: the energy is blind to *phase* errors (a pendulum
that swings slightly too fast keeps its energy), which the state error sees; and an error across
the orbit changes the energy without moving the state much.
"""),
    ("code", r"""
steps = an.error_vs_steps(fm, test, horizon=H, n_steps=counts)
print('best number of jumps:', steps.attrs['best_n_steps'])
steps[['median_relative_error', 'wall_time']].to_pandas()
"""),
    ("md", r"""
## The same analysis for classical integrators

The analysis functions accept any object with `forward(s, t, x, p)`, `system`, `dtype` and
`max_jump` — not only a trained `FlowMap`. Wrapping one step of a classical method in that
interface puts it through exactly the same measurements:

* **RK4**: fourth order, error ∝ h⁴ per unit time — excellent for short steps, unstable for long ones;
* **leapfrog** (Störmer–Verlet): second order but *symplectic* — its energy error stays bounded and
  oscillates instead of drifting, however many steps it takes.
"""),
    ("code", r"""
class OneStep:
    '''A classical one-step method with the flow-map interface the analysis functions use.'''
    dtype = torch.float64

    def __init__(self, system, max_jump):
        self.system, self.max_jump = system, max_jump

class RK4(OneStep):
    def forward(self, s, t, x, p):
        h = (t - s)[:, None]
        f = lambda tt, y: self.system.rhs(tt, y, p)
        k1 = f(s, x)
        k2 = f(s + h[:, 0] / 2, x + h / 2 * k1)
        k3 = f(s + h[:, 0] / 2, x + h / 2 * k2)
        k4 = f(t, x + h * k3)
        return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)

class Leapfrog(OneStep):
    def forward(self, s, t, x, p):
        h = t - s
        gL = p[:, 0] / p[:, 1]                              # g / L
        theta, omega = x.unbind(-1)
        omega = omega - h / 2 * gL * torch.sin(theta)       # half kick
        theta = theta + h * omega                           # drift
        omega = omega - h / 2 * gL * torch.sin(theta)       # half kick
        return torch.stack([theta, omega], dim=-1)

others = {'RK4': RK4(sys, H), 'leapfrog': Leapfrog(sys, H)}
drifts = {'flow map': drift, **{k: an.invariant_drift(v, sys, x0, p0, horizon=H, n_steps=counts)
                                for k, v in others.items()}}
errors = {'flow map': steps, **{k: an.error_vs_steps(v, test, horizon=H, n_steps=counts)
                                for k, v in others.items()}}
import pandas as pd
pd.DataFrame({k: d.final_relative_drift.sel(invariant='energy').to_pandas() for k, d in drifts.items()}
             ).rename_axis('N jumps over 4T')
"""),
    ("md", r"""
Read the table by rows. With 8 or 16 long jumps the classical methods are useless (RK4's energy
is off by tens of percent or more, leapfrog's orbit is wrong) while the map still tracks the
pendulum: long jumps are exactly what it was trained for. With many short steps RK4 is orders of
magnitude better, and leapfrog's energy error stops growing at all. A flow map earns its keep
where you want a few long jumps, not as a fine-step integrator — and `invariant_drift` tells you
how many jumps of *your* map still conserve energy well enough for your purpose.

## Pictures

`plot_invariant_drift` draws the drift at the horizon against jump size, and how it accumulates
along the rollout for each N. On log-log axes a slope of 1 on the right means the drift grows in
proportion to the number of jumps — each jump adds a similar, systematic error — while random,
independent errors would give a slope of ½:
"""),
    ("code", r"""
an.plot_invariant_drift(drift)
"""),
    ("md", r"""
The three methods side by side: energy drift at the horizon against jump size, state error at the
horizon against the number of jumps, and the energy error along a rollout of 64 jumps —
leapfrog's stays bounded, RK4's and the map's grow:
"""),
    ("code", r"""
fig = Figure(figsize=(14, 4), layout='constrained')
axs = fig.subplots(1, 3)
n_roll = 64 if 64 in counts else max(counts)
for k, (name, d) in enumerate(drifts.items()):
    an.plot_invariant_drift(d, ax=axs[0])
    an.plot_error_vs_steps(errors[name], ax=axs[1])
    for ax in axs[:2]:
        ax.lines[-1].set_label(name)
        ax.lines[-1].set_color(f'C{k}')
    y = d.relative_drift.sel(invariant='energy', n_steps=n_roll).values
    axs[2].semilogy(d.step.values[1:n_roll + 1] * H / n_roll, y[1:n_roll + 1], color=f'C{k}', label=name)
for c in list(axs[1].collections):
    c.remove()                                             # quantile bands: one per method is too busy
axs[0].legend(frameon=False); axs[1].legend(frameon=False); axs[2].legend(frameon=False)
axs[0].set_title('energy drift at 4T'); axs[1].set_title('state error at 4T')
axs[2].set_title(f'energy drift along {n_roll} jumps')
axs[2].set_xlabel(f'time [{sys.time_units}]'); axs[2].set_ylabel('relative energy drift')
fig
"""),
    ("md", r"""
And the single-jump error of the map against jump size (median and 10–90 % band):
"""),
    ("code", r"""
an.plot_error_vs_jump(ej)
"""),
]


# ---------------------------------------------------------------------------------------------
# 4. Ensembles at scale
# ---------------------------------------------------------------------------------------------
T04 = [
    ("md", r"""
# 4. Ensembles at scale: Dask, zarr, resuming, streaming

A flow map is trained on an ensemble of reference trajectories, and the ensemble is where the
compute goes: thousands to millions of solves. flowsim runs them as Dask tasks, one task per
chunk of trajectories, and writes each chunk straight into a zarr store read back through
xarray. This tutorial:

1. starts a Dask `LocalCluster` tuned for torch and simulates an ensemble into zarr;
2. opens the store with plain `xarray.open_zarr` and with `flowsim.open_store`;
3. kills a run half-way and resumes it, and checks the result is byte-identical to an
   uninterrupted run;
4. streams training pairs out of the store with `PairSampler`, and trains from it;
5. shows the same code pointed at a real cluster and an object store.

Set `FLOWSIM_TUTORIAL_FAST=1` to shrink everything to a smoke run (the test suite does).
"""),
    ("code", r"""
%matplotlib inline
import os, shutil, signal, subprocess, sys as pysys, time
import numpy as np, torch, xarray as xr, zarr, flowsim
from matplotlib.figure import Figure

FAST = os.environ.get('FLOWSIM_TUTORIAL_FAST') == '1'
fhn = flowsim.get_system('fitzhugh_nagumo')
T = fhn.timescale
T_END = T if FAST else 2 * T                               # two periods (one in the smoke run)
t = torch.linspace(0, T_END, 81 if FAST else 161)          # output times, shared by all trajectories
"""),
    ("md", r"""
## A Dask cluster tuned for torch

`flowsim.data.local_cluster` is a `dask.distributed.LocalCluster` with one single-threaded worker
process per core. Why not a default one: torch gives every process as many threads as there are
cores, so two workers oversubscribe two cores and the small per-step tensors of a batched ODE
solve spend their time in thread synchronisation; and Dask's nanny sets a glibc malloc option
that makes every large tensor page-fault fresh memory. The *Ensembles and stores* page of the
documentation has the measurements. Parallelism then comes from processes, one chunk each.

`simulate_ensemble(..., client=None)` would start and close such a cluster by itself; making one
explicitly lets several ensembles share it, and shows the dashboard link.
"""),
    ("code", r"""
from dask.distributed import Client
from flowsim.data import local_cluster

cluster = local_cluster(n_workers=2)
client = Client(cluster)
print(client)
print('dashboard:', cluster.dashboard_link)
"""),
    ("md", r"""
## An ensemble into zarr

Each chunk of `chunk_size` trajectories is one task: it draws its parameters and initial states
from `(seed, chunk index)`, solves them with torchdiffeq in one batch, writes its own region of
the store, and only then sets its flag in the store's `completed` array. Nothing passes through the
client but a small report per chunk, so the client is never the bottleneck. `stats` collects the
timings.
"""),
    ("code", r"""
n = 64 if FAST else 8192
stats = {}
ds = flowsim.simulate_ensemble(fhn, n, t, params='prior', store='tutorial-ensemble.zarr',
                               chunk_size=16 if FAST else 1024, client=client, overwrite=True,
                               progress=False, stats=stats)
print(f"{n} trajectories in {stats['wall_s']:.1f} s on {stats['workers']} workers "
      f"({n / stats['wall_s']:.0f} per second); summed over chunks: solving {stats['solve_s']:.1f} s, "
      f"writing {stats['write_s']:.2f} s")
"""),
    ("md", r"""
## Opening the store

It is an ordinary zarr v3 store: plain `xarray.open_zarr` opens it lazily, with Dask arrays
chunked like the store — one chunk of trajectories at a time. Reductions run on the cluster
(the `Client` made itself Dask's default scheduler).
"""),
    ("code", r"""
plain = xr.open_zarr('tutorial-ensemble.zarr')
v_max = plain.x.sel(state='v').max('time')                 # lazy
print('fraction of trajectories whose voltage exceeds 1.5:', float((v_max > 1.5).mean().compute()))
plain
"""),
    ("md", r"""
`flowsim.open_store` opens the same Dataset and validates it first — schema version, variables,
dimensions, the system it belongs to, and that the ensemble is complete — so a training run never
starts on a wrong or half-written store. `store_summary` is what `flowsim info STORE` prints.
"""),
    ("code", r"""
from flowsim.data import format_summary, store_summary

ds = flowsim.open_store('tutorial-ensemble.zarr', system='fitzhugh_nagumo')
print(format_summary(store_summary('tutorial-ensemble.zarr')))
"""),
    ("md", r"""
## An interrupted run resumes

To interrupt a run for real, we start one in a separate Python process and kill it with `SIGKILL`
once a few chunks are done — what a crashed machine or a killed batch job leaves behind. The
store's `completed` array is a plain zarr array, so we can watch it from here.
"""),
    ("code", r"""
RUN = dict(n=64 if FAST else 2048, chunk_size=8 if FAST else 128, params='prior', seed=1)
path = 'tutorial-interrupted.zarr'
shutil.rmtree(path, ignore_errors=True)
script = f'''
import torch, flowsim
flowsim.simulate_ensemble('fitzhugh_nagumo', t=torch.linspace(0, {T_END!r}, {len(t)}), store={path!r},
                          client='sync', progress=False, **{RUN!r})
'''

def chunks_done(path):
    try:
        return zarr.open_group(path, mode='r', use_consolidated=False)['completed'][:]
    except Exception:          # the store appears (atomically) once its metadata is complete
        return np.zeros(0, dtype=np.uint8)

proc = subprocess.Popen([pysys.executable, '-c', script])
while chunks_done(path).sum() < 3:
    if proc.poll() is not None:
        raise RuntimeError('the run finished before it could be interrupted')
    time.sleep(0.02)
os.kill(proc.pid, signal.SIGKILL)
proc.wait()
done = chunks_done(path)
print(f'killed (exit code {proc.returncode}) with {done.sum()} of {done.size} chunks written')
print(done)
"""),
    ("md", r"""
The half-written store is still a valid store. `store_summary` reports it as incomplete;
`open_store` refuses it unless asked (`allow_incomplete=True`), and there the unsolved
trajectories carry status `-1`; plain xarray opens it as it is.
"""),
    ("code", r"""
print(format_summary(store_summary(path)))
try:
    flowsim.open_store(path)
except flowsim.StoreError as err:
    print('\nopen_store refused:', err)
partial = flowsim.open_store(path, allow_incomplete=True)
codes, counts = np.unique(partial.status.values, return_counts=True)
print('\nstatus counts:', {int(c): int(k) for c, k in zip(codes, counts)}, '(0 = ok, -1 = not simulated yet)')
"""),
    ("md", r"""
Resuming is running the same call again. Only the missing chunks are solved — this time on the
cluster, while the first part ran in a single process: each chunk is a pure function of
`(seed, chunk)` and runs torch single-threaded, so where it ran does not change a bit of it. A call
with *different* arguments (another seed, grid or size) would be refused instead of mixing two
ensembles in one store.
"""),
    ("code", r"""
stats = {}
resumed = flowsim.simulate_ensemble('fitzhugh_nagumo', t=t, store=path, client=client, progress=False,
                                    stats=stats, **RUN)
print(f"resumed: solved the {stats['chunks_run']} missing chunks of {done.size} in {stats['wall_s']:.1f} s")
"""),
    ("md", r"""
The proof: the same ensemble, run once without interruption, is identical byte for byte.
"""),
    ("code", r"""
clean = flowsim.simulate_ensemble('fitzhugh_nagumo', t=t, store='tutorial-clean.zarr', client=client,
                                  overwrite=True, progress=False, **RUN)
for name in ('x', 'params', 'status', 'x0'):
    a, b = resumed[name].values, clean[name].values
    print(f'{name:7s} identical bytes: {a.tobytes() == b.tobytes()}')
"""),
    ("md", r"""
## Streaming training pairs with `PairSampler`

Training does not need the store in memory. `PairSampler` yields batches of jumps
`(s, t, x_s, x_t, p)` between two stored states of a trajectory, reading whole zarr chunks
(`chunks_in_memory=2` at a time by default), so memory stays at a few chunks however large the
store is. The split is by trajectory, from a hash of its index: reproducible and disjoint.

How jump sizes are drawn matters. `gaps='uniform'` draws uniformly over all pairs `i < j` of a
trajectory: every stored gap is about equally likely, so on a logarithmic scale almost all jumps
are long, and the short jumps the map must also get right are rare. `gaps='log-uniform'` spreads
jump sizes evenly over scales, each decade getting the same share (the trainer draws its pairs
this way). The last figure shows the difference.
"""),
    ("code", r"""
from flowsim.data import PairSampler

samplers = {g: PairSampler('tutorial-ensemble.zarr', batch_size=1024, split='train', gaps=g, max_gap=T)
            for g in ('uniform', 'log-uniform')}
batch = next(iter(samplers['log-uniform']))
print({k: tuple(v.shape) for k, v in batch.items()})
gaps = {}
for name, sampler in samplers.items():
    t0 = time.perf_counter()
    gaps[name] = torch.cat([b['t'] - b['s'] for b in sampler]).numpy()      # one epoch
    print(f'{name:11s}: one epoch = {len(gaps[name])} pairs from {sampler.n_trajectories} '
          f'training trajectories in {time.perf_counter() - t0:.2f} s')
"""),
    ("md", r"""
For training, use it as a `torch.utils.data.IterableDataset` in your own loop
(`sampler.loader(num_workers=2)` starts DataLoader workers safely), or let `flowsim.fit` do it:
with a store path and `stream=True` it draws its pairs from a `PairSampler` (it streams by itself
when the store's states exceed 2 GiB).
"""),
    ("code", r"""
fm = flowsim.FlowMap(fhn, width=64, depth=3)
res = flowsim.fit(fm, 'pairs', 'tutorial-ensemble.zarr', stream=True, steps=30 if FAST else 400,
                  batch_size=512, lr=5e-3, max_jump=T / 4, progress=False)
print(f'{res.steps} steps streamed from the store in {res.wall_time:.1f} s')
res.metrics
"""),
    ("md", r"""
## The same code on a real cluster and an object store

Nothing above depends on the cluster being local or the store being a directory. Point `client`
at a running Dask scheduler and `store` at any fsspec URL (this cell is not executed):

```python
from dask.distributed import Client
import flowsim
from flowsim.data import PairSampler

client = Client('tcp://scheduler.example.org:8786')   # a running `dask scheduler`
opts = {'profile': 'my-profile'}                       # fsspec / s3fs options, e.g. credentials

ds = flowsim.simulate_ensemble(
    'fitzhugh_nagumo', 1_000_000, t, params='prior', seed=0,
    store='s3://my-bucket/fhn-1M.zarr', storage_options=opts,
    client=client,              # or client='tcp://scheduler.example.org:8786'
)

ds = flowsim.open_store('s3://my-bucket/fhn-1M.zarr', storage_options=opts)
train = PairSampler('s3://my-bucket/fhn-1M.zarr', storage_options=opts, batch_size=4096,
                    split='train', gaps='log-uniform', max_gap=40.0)
```

What changes in practice:

* **Every worker writes its own chunks**, so the store must be reachable from every worker
  under the same URL — an object store (`s3://`, `gs://`, `az://` with `s3fs`/`gcsfs`/`adlfs`
  installed) or a shared file system; a local path on your laptop is not.
* **Workers need flowsim and torch** installed, in the same versions as the client.
* **Worker environment**: start workers with the variables of `flowsim.data.WORKER_ENV` exported
  (single-threaded BLAS/OpenMP, malloc thresholds) — or do nothing: flowsim's tasks make torch
  single-threaded and fix the malloc thresholds at run time on workers that need it.
* **Resuming** works as above: the `completed` flags live in the store, so rerunning the same call
  from any machine finishes the missing chunks — after a lost worker (Dask reschedules its chunk by
  itself) or a lost client.
* Other ways to get a `Client`: `dask-jobqueue` (SLURM, PBS), `dask-kubernetes`, Coiled. From the
  shell: `flowsim simulate fitzhugh_nagumo --n 1000000 ... --scheduler tcp://scheduler:8786`.

## Pictures

Where the ensemble's parameters lie (each dot a trajectory, coloured by whether it still fires in
the second half of the run), a few of its trajectories in the phase plane, and the distribution
of the jump sizes each sampler draws (log-uniform: a straight line on this axis).
"""),
    ("code", r"""
sub = plain.isel(trajectory=slice(0, 1024)).load()
late = sub.x.sel(state='v').isel(time=slice(len(t) // 2, None))        # the second half of the run
fires = (late.max('time') - late.min('time')) > 1.9
fig = Figure(figsize=(14, 4), layout='constrained')
axs = fig.subplots(1, 3)
pa, pi = sub.params.sel(param='a'), sub.params.sel(param='I_ext')
fires, pa, pi = fires.values, pa.values, pi.values
axs[0].scatter(pa[fires], pi[fires], s=5, label='fires', color='C1')
axs[0].scatter(pa[~fires], pi[~fires], s=5, label='rests', color='C0')
axs[0].set_xlabel('a'); axs[0].set_ylabel('I_ext'); axs[0].legend(frameon=False, markerscale=3)
axs[0].set_title(f"parameters drawn from the prior ({sub.sizes['trajectory']} trajectories)")
for k in range(12):
    axs[1].plot(sub.x.values[k, :, 0], sub.x.values[k, :, 1], lw=0.8)
axs[1].set_xlabel('v'); axs[1].set_ylabel('w'); axs[1].set_title('12 stored trajectories')
for name, gv in gaps.items():                              # cumulative distribution of one epoch
    gv = np.sort(gv)[:: max(1, len(gv) // 2000)]
    axs[2].plot(gv, np.linspace(0, 1, len(gv)), lw=2, label=f"gaps='{name}'")
axs[2].set_xscale('log'); axs[2].set_xlabel('jump size t − s')
axs[2].set_ylabel('fraction of pairs with a shorter jump')
axs[2].set_title('jump sizes drawn by PairSampler'); axs[2].legend(frameon=False)
fig
"""),
    ("md", r"""
## Close the cluster

A notebook's cluster lives until it is closed (or the kernel stops): close it when done.
"""),
    ("code", r"""
client.close()
cluster.close()
"""),
]


# ---------------------------------------------------------------------------------------------
# 5. How accurate is a jump
# ---------------------------------------------------------------------------------------------
T05 = [
    ("md", r"""
# 5. How accurate is a jump — and when does a flow map pay?

A flow map answers "where is this state after time Δ?" in one network evaluation, with an error
that depends on Δ. Before using a map you want to know that error, how it behaves when jumps are
composed, what the same accuracy costs with a real solver, and — without a reference solve at
hand — which jumps not to trust. `flowsim.analysis` answers each of these with one function and
one `plot_…` companion:

| question | function |
|---|---|
| error of one jump against its size | `error_vs_jump` |
| error over a fixed horizon against the number of composed jumps | `error_vs_steps` |
| error against wall time, flow map vs solvers | `work_precision`, `speedup_at_matched_error` |
| which jumps to distrust, without a reference | `consistency_indicator`, `indicator_quality` |
| a more accurate map, and a second indicator | `flowsim.fit_ensemble`, `FlowMapEnsemble.jump_with_spread` |

We use the Van der Pol oscillator (default `μ = 1`, period ≈ 6.66): a limit cycle with a fast
and a slow phase, a small standard test problem for solvers.

Set `FLOWSIM_TUTORIAL_FAST=1` to shrink everything to a smoke run (the test suite does).
"""),
    ("code", r"""
%matplotlib inline
import os, time
import torch, flowsim
from matplotlib.figure import Figure
from flowsim import analysis as an

FAST = os.environ.get('FLOWSIM_TUTORIAL_FAST') == '1'
torch.manual_seed(0)
sys = flowsim.get_system('van_der_pol')
T = sys.timescale
print(sys.description, '| period', T)
"""),
    ("code", r"""
n = 300 if FAST else 2000
t0 = time.perf_counter()
data = flowsim.reference_solve(sys, sys.sample_initial(n, generator=0),
                               torch.linspace(0, 2 * T, 201, dtype=torch.float64), rtol=1e-9, atol=1e-11)
fm = flowsim.FlowMap(sys, width=64 if FAST else 128, depth=3 if FAST else 4)
res = flowsim.fit(fm, 'pairs', data, steps=300 if FAST else 6000, batch_size=512, lr=5e-3,
                  max_jump=T / 2, progress=False)
t_train = time.perf_counter() - t0                         # data + training: the map's one-off cost
print(f'data and training took {t_train:.0f} s; longest trained jump {fm.max_jump:.2f}')
"""),
    ("md", r"""
## Two error metrics, always both

The relative error `‖X − X_ref‖ / ‖X_ref‖` is the familiar one, but it blows up where the state
passes near zero. Every analysis therefore also reports the normalised error — the RMS error in
units of each state's spread over the reference data — and labels which is which:
"""),
    ("code", r"""
for name, meaning in an.METRICS.items():
    print(f'{name}: {meaning}')
"""),
    ("md", r"""
## Error against jump size

Single jumps from stored states of held-out trajectories to stored later states, for jump sizes
from 1 % of a period to the longest trained jump: the reference enters only at its stored points,
so the error is the map's alone. The error grows with the jump — long jumps are the hard part.
"""),
    ("code", r"""
m_test = 64 if FAST else 200
test = flowsim.reference_solve(sys, sys.sample_initial(m_test, generator=7),
                               torch.linspace(0, 2 * T, 401, dtype=torch.float64), rtol=1e-10, atol=1e-12)
ej = an.error_vs_jump(fm, test)
ej[['median_relative_error', 'median_normalised_error', 'n_samples']].to_pandas()
"""),
    ("md", r"""
## Error against the number of composed jumps: the U

To cover a horizon longer than one good jump, compose N jumps of `horizon / N`. Few jumps are
long (each less accurate); many jumps accumulate many small errors. The final error is therefore
U-shaped in N, and the bottom of the U is the number of jumps to use. This is unlike a classical
solver, whose error only falls as the steps shrink (until round-off).
"""),
    ("code", r"""
es = an.error_vs_steps(fm, test, horizon=2 * T)
print('best number of jumps over two periods:', es.attrs['best_n_steps'])
es[['median_relative_error', 'median_normalised_error', 'wall_time']].to_pandas()
"""),
    ("md", r"""
## Work-precision: the flow map against solvers

`work_precision` integrates the same held-out states over one period with the flow map at several
jump counts and with each solver over a sweep of tolerances (or step counts for fixed-step RK4),
all in this process and on the same data, and measures each run's error against a tight reference
(dopri5 at 1e-10) and its wall time (the best of `repeats` runs after a warm-up). scipy's LSODA,
Radau and BDF solve the whole batch as one stacked system with a block-diagonal Jacobian, their
fastest form on a batch (the Dataset's attrs say so).

torchode, a batched solver with per-trajectory step control, is included only where it is installed.
"""),
    ("code", r"""
solvers = ['dopri5', 'rk4', 'scipy_lsoda']
try:
    import torchode  # noqa: F401  (optional)
    solvers.append('torchode')
except ImportError:
    print('torchode not installed: compared with torchdiffeq and scipy only')
x0 = sys.sample_initial(256 if FAST else 2000, generator=11)
wp = an.work_precision(fm, sys, x0, horizon=T, solvers=solvers,
                       tolerances=(1e-3, 1e-5) if FAST else (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8),
                       rk4_steps=(8, 32) if FAST else (8, 16, 32, 64, 128, 256),
                       repeats=1 if FAST else 2, training_time=t_train)
wp[['wall_time', 'nfe', 'median_relative_error']].to_dataframe()
"""),
    ("md", r"""
`speedup_at_matched_error` reads the sweep the honest way round: it takes the flow map's *best*
error, finds the cheapest setting of each solver that is at least as accurate, and divides their
wall times. It never extrapolates: if no setting of a solver reaches the map's error, it says so.
With the training cost in the Dataset's attrs it also reports after how many trajectories training
has paid for itself (`inf` when the map is not faster per trajectory).
"""),
    ("code", r"""
import pandas as pd
rows = {s: an.speedup_at_matched_error(wp, s).to_dict() for s in solvers}
pd.DataFrame(rows).T[['flowmap_error', 'flowmap_n_jumps', 'solver_setting_value', 'solver_error',
                      'flowmap_wall_time', 'solver_wall_time', 'speedup', 'break_even_trajectories']]
"""),
    ("md", r"""
How to read this. The map's best error (first column) is what every speed-up is measured at.
Against **scipy**, which steps one trajectory at a time in Python, the map is orders of magnitude
faster. Against **batched torch solvers** on a 2-D system with a cheap right-hand side, a solver at
a loose tolerance is *also* only a few hundred cheap vectorised operations, and already as
accurate as the map: the speed-up is small — around 1 on this machine — and training pays off
late or never (`break_even_trajectories`, `inf` when the map is not faster). A flow map pays where a solver must take many
steps per unit time — stiff or fast dynamics, long horizons covered by a few long jumps,
expensive right-hand sides — or where you need gradients through the solve, and only once the map
is accurate enough for your purpose. These numbers are for this machine's CPU; on a GPU both sides
change (see the benchmarks page).

## A reference-free error indicator

In use, there is no reference to compare with. An exact flow map satisfies the semigroup property
`X(s, t, x) = X(u, t, X(s, u, x))`, so a learned map's *disagreement* between one jump and two
half jumps is a cheap signal of its error: three network evaluations, no solver.
`consistency_indicator` computes it per sample; `indicator_quality` measures, on reference data,
how well it ranks the true errors (Spearman rank correlation: 1 perfect, 0 useless).
"""),
    ("code", r"""
iq = an.indicator_quality(fm, test)
print(f"Spearman rank correlation, indicator vs true error: {float(iq.spearman):.2f} (all jumps pooled)")
iq.spearman_by_jump.to_pandas().rename('Spearman per jump size')
"""),
    ("md", r"""
Using it: jump fresh states by half a period, flag the 10 % with the largest indicator, and check
(here we can) that the flagged jumps really are the worse ones. These jumps all start at fresh
initial states, where `error_vs_jump` averaged over start points along whole trajectories, so
the two need not agree.
"""),
    ("code", r"""
xs = sys.sample_initial(256 if FAST else 2000, generator=21)
ind = an.consistency_indicator(fm, xs, 0.0, T / 2)
flag = ind >= ind.quantile(0.9)
truth = flowsim.reference_solve(sys, xs, torch.tensor([0.0, T / 2]), rtol=1e-10, atol=1e-12).x[:, -1]
with torch.no_grad():
    err = an.relative_error(fm.jump(xs.float(), 0.0, T / 2).double(), truth)
print(f'median true error of the flagged 10 %: {err[flag].median():.1e}, '
      f'of the other 90 %: {err[~flag].median():.1e}')
"""),
    ("md", r"""
## Two maps are better than one: an ensemble

A trained map's error is partly its own: where its optimisation happened to stop. Two maps
trained from different initial weights on different draws of the data err differently, so their
average errs less, and how far they disagree flags the jumps not to trust — a second indicator,
without the half jumps. `flowsim.fit_ensemble` trains the members side by side in worker
processes (one CPU share each), so on a machine whose cores one small network cannot keep busy
the ensemble costs little more wall-clock time than one map. (In a script, call it under
`if __name__ == "__main__":`; a notebook needs nothing.)
"""),
    ("code", r"""
t0 = time.perf_counter()
ens_res = flowsim.fit_ensemble(flowsim.FlowMap(sys, width=64 if FAST else 128, depth=3 if FAST else 4),
                               'pairs', data, members=2, steps=300 if FAST else 6000, batch_size=512,
                               lr=5e-3, max_jump=T / 2, progress=False)
ens = ens_res.ensemble
print(f'{len(ens)} members trained side by side in {time.perf_counter() - t0:.0f} s')
ej_members = [an.error_vs_jump(m, test) for m in ens.members]
ej_ens = an.error_vs_jump(ens, test)
import pandas as pd
pd.DataFrame({'one map (above)': ej.median_normalised_error.values,
              **{f'member {k}': e.median_normalised_error.values for k, e in enumerate(ej_members)},
              'ensemble': ej_ens.median_normalised_error.values},
             index=pd.Index(ej.jump.values.round(3), name='jump')).style.format('{:.1e}')
"""),
    ("md", r"""
`ens` is used like a map (`jump`, `odeint`, `flowsim.save`/`load`, every analysis function);
`ens.jump_with_spread(x, s, t, p)` also returns the members' disagreement per jump, and
`indicator_quality(..., indicator='spread')` measures how well it ranks the true errors:
"""),
    ("code", r"""
iq_spread = an.indicator_quality(ens, test, indicator='spread')
iq_half = an.indicator_quality(ens, test)
print(f"Spearman with the true error — members' spread: {float(iq_spread.spearman):.2f}, "
      f"one vs two half jumps: {float(iq_half.spearman):.2f}")
"""),
    ("md", r"""
## Pictures

Error against jump size, error against the number of jumps (the U), the work-precision diagram
by wall time and by evaluations per trajectory, and the indicator against the true error.
"""),
    ("code", r"""
fig = Figure(figsize=(13, 4.2), layout='constrained')
axs = fig.subplots(1, 2)
an.plot_error_vs_jump(ej, ax=axs[0])
an.plot_error_vs_steps(es, ax=axs[1])
fig
"""),
    ("code", r"""
fig = Figure(figsize=(13, 4.5), layout='constrained')
axs = fig.subplots(1, 2)
an.plot_work_precision(wp, ax=axs[0])
an.plot_work_precision(wp, ax=axs[1], x='nfe')
fig
"""),
    ("code", r"""
an.plot_indicator_quality(iq)
"""),
]

NOTEBOOKS = {
    "02_parametric_biology.ipynb": T02,
    "03_physics_invariants.ipynb": T03,
    "04_ensembles_at_scale.ipynb": T04,
    "05_how_accurate_is_a_jump.ipynb": T05,
}


def render(name: str) -> str:
    return nbformat.writes(notebook(name, NOTEBOOKS[name])) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that the notebooks are up to date")
    args = ap.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        text = render(name)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
            print("wrote", path.relative_to(HERE.parent))
    if stale:
        print("out of date (run python tutorials/make_tutorials.py):", ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
