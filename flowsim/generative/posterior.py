"""Amortised posteriors of an ODE's parameters (simulation-based inference): simulate ``(θ, y)``
pairs over the prior, learn ``p(θ | y)`` as a conditional generative flow map, sample the posterior
of a new observation in 1–4 jumps; the exact likelihood through the reference solver for MCMC."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._utils import as_generator
from ..errors import ConfigError, ShapeError
from ..solve import SolverOptions, reference_solve
from ..systems import ODESystem, get_system
from .distillation import distill
from .flowmap import GenerativeFlowMap
from .teacher import train_teacher

__all__ = ["InferenceTask", "fit_posterior"]


@dataclass(frozen=True)
class InferenceTask:
    """An ODE inference problem: parameters ``θ`` from the system's prior, the trajectory from
    ``x0`` observed at ``times`` (states ``observed``; their logarithms with ``log=True``) with
    Gaussian noise of standard deviation ``noise``.

    Attributes
    ----------
    system:
        The system or its catalogue name.
    times:
        Observation times (after 0, increasing).
    noise:
        Noise standard deviation (on the log scale with ``log``).
    observed:
        Indices of the observed states (default: all).
    log:
        Observe ``log(x)`` (positive systems: multiplicative noise).
    x0:
        Initial state (default: the system's ``default_x0``).
    solver:
        The :class:`~flowsim.SolverOptions` of the simulations and the likelihood.

    Examples
    --------
    >>> from flowsim.generative import InferenceTask
    >>> task = InferenceTask("sir", times=(10.0, 20.0, 30.0), noise=0.05, observed=(1,), log=True)
    >>> theta, y = task.simulate(5, seed=0)
    >>> theta.shape, y.shape
    (torch.Size([5, 2]), torch.Size([5, 3]))
    """

    system: ODESystem | str
    times: tuple[float, ...]
    noise: float
    observed: tuple[int, ...] | None = None
    log: bool = False
    x0: tuple[float, ...] | None = None
    solver: SolverOptions = field(default_factory=lambda: SolverOptions(rtol=1e-6, atol=1e-8))

    def __post_init__(self) -> None:
        sys_ = get_system(self.system) if isinstance(self.system, str) else self.system
        object.__setattr__(self, "system", sys_)
        times = tuple(float(t) for t in self.times)
        if not times or times[0] <= 0 or any(b <= a for a, b in zip(times, times[1:])):
            raise ConfigError(f"times must be increasing and after 0; got {self.times!r}")
        object.__setattr__(self, "times", times)
        if not self.noise > 0:
            raise ConfigError(f"noise must be positive; got {self.noise!r}")
        obs = tuple(range(sys_.dim)) if self.observed is None else tuple(int(i) for i in self.observed)
        if not obs or any(not 0 <= i < sys_.dim for i in obs):
            raise ConfigError(f"observed must index the {sys_.dim} states; got {self.observed!r}")
        object.__setattr__(self, "observed", obs)
        if self.x0 is None:
            object.__setattr__(self, "x0", tuple(sys_.default_x0))

    @property
    def n_params(self) -> int:
        return self.system.n_params

    @property
    def obs_dim(self) -> int:
        return len(self.times) * len(self.observed)

    @property
    def prior_box(self) -> tuple[Tensor, Tensor]:
        """``(low, high)`` of the prior's ranges (its density inside them is the system's
        :meth:`~flowsim.ODESystem.log_prior`: uniform, or log-uniform for SBML models)."""
        ps = self.system.parameters
        return (torch.tensor([q.prior[0] for q in ps], dtype=torch.float64),
                torch.tensor([q.prior[1] for q in ps], dtype=torch.float64))

    def mean_observation(self, theta: Tensor) -> Tensor:
        """The noise-free observation of each ``θ`` ``(k, n_params)`` → ``(k, obs_dim)`` (NaN where
        the solve fails)."""
        theta = torch.as_tensor(theta, dtype=torch.float64)
        k = theta.shape[0]
        x0 = torch.tensor(self.x0, dtype=torch.float64).expand(k, -1).clone()
        t = torch.tensor((0.0,) + self.times, dtype=torch.float64)
        sol = reference_solve(self.system, x0, t, theta, self.solver)
        x = sol.x[:, 1:, list(self.observed)]
        if self.log:
            x = torch.log(x.clamp_min(1e-12))
        return x.reshape(k, -1)

    def simulate(self, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
        """``n`` pairs ``(θ, y)``: ``θ`` from the prior, ``y`` the noisy observation."""
        g = as_generator(seed)
        theta = self.system.sample_params(n, g)
        mean = self.mean_observation(theta)
        y = mean + self.noise * torch.randn(mean.shape, generator=g, dtype=torch.float64)
        ok = torch.isfinite(y).all(dim=1)
        return theta[ok], y[ok]

    def log_posterior(self, theta: Tensor, y: Tensor) -> Tensor:
        """The exact unnormalised log posterior (Gaussian likelihood through the reference solver,
        and the prior :meth:`simulate` draws from, the system's
        :meth:`~flowsim.ODESystem.log_prior`; ``-inf`` outside it), ``(k,)`` for ``θ``
        ``(k, n_params)``."""
        y = torch.as_tensor(y, dtype=torch.float64).reshape(-1)
        if y.shape[0] != self.obs_dim:
            raise ShapeError(f"an observation has {self.obs_dim} values; got {y.shape[0]}")
        theta = torch.as_tensor(theta, dtype=torch.float64)
        out = self.system.log_prior(theta)
        inside = torch.isfinite(out)
        if bool(inside.any()):
            mean = self.mean_observation(theta[inside])
            ll = -0.5 * ((mean - y) / self.noise).pow(2).sum(dim=1)
            out[inside] = out[inside] + torch.nan_to_num(ll, nan=-torch.inf)
        return out

    def reference_posterior(self, y: Tensor, n: int = 4000, *, walkers: int = 64, burn: int = 300,
                            seed: int = 0) -> Tensor:
        """``n`` posterior samples of ``θ`` given ``y`` by MCMC (``emcee``'s ensemble sampler,
        vectorised over walkers) on :meth:`log_posterior`; walkers start at the best of 2000
        prior draws."""
        import emcee
        import numpy as np

        lo, hi = self.prior_box
        g = as_generator(seed)
        cand = self.system.sample_params(2000, g)
        lp = self.log_posterior(cand, y)
        best = cand[lp.argsort(descending=True)[:walkers]]
        rng = np.random.default_rng(seed)
        p0 = (best + 1e-4 * (hi - lo) * torch.randn(best.shape, generator=g, dtype=torch.float64))
        p0 = torch.minimum(torch.maximum(p0, lo), hi).numpy()
        sampler = emcee.EnsembleSampler(walkers, self.n_params,
                                        lambda th: self.log_posterior(torch.as_tensor(th), y).numpy(),
                                        vectorize=True)
        sampler.random_state = np.random.RandomState(seed).get_state()  # reproducible moves
        steps = burn + -(-n // walkers)
        sampler.run_mcmc(p0, steps, progress=False)
        chain = sampler.get_chain(discard=burn, flat=True)
        return torch.as_tensor(chain[rng.permutation(len(chain))[:n]])


def fit_posterior(theta: Tensor, y: Tensor, *, teacher_steps: int = 3000, map_steps: int = 2000,
                  width: int = 128, seed: int = 0) -> GenerativeFlowMap:
    """A conditional generative flow map of ``p(θ | y)`` from simulated pairs: a flow-matching
    teacher on ``θ`` conditioned on ``y``, then its flow map (:func:`distill`). Sample the
    posterior of an observation ``y_o`` with ``gen.sample(n, steps, condition=y_o)``.

    Arguments
    ---------
    theta:
        Parameters drawn from the prior, ``(n, n_params)``.
    y:
        Their simulated (noisy) observations, ``(n, obs_dim)``.
    teacher_steps, map_steps:
        Training steps of the teacher and of the distilled map.
    width:
        Hidden units of both networks.
    seed:
        Seed of both.

    Returns
    -------
    GenerativeFlowMap
        Conditioned on ``y``.

    Raises
    ------
    ShapeError
        ``θ``, ``y`` not 2-D, of different lengths, or not finite.

    Examples
    --------
    >>> import torch
    >>> from flowsim.generative import fit_posterior
    >>> theta = torch.randn(256, 1); y = theta + 0.5 * torch.randn(256, 1)
    >>> gen = fit_posterior(theta, y, teacher_steps=20, map_steps=10, width=16)
    >>> gen.sample(4, steps=1, condition=torch.tensor([0.3])).shape
    torch.Size([4, 1])
    """
    theta = torch.as_tensor(theta)
    y = torch.as_tensor(y)
    if theta.ndim != 2 or y.ndim != 2:
        raise ShapeError(f"θ and y must be (n, n_params) and (n, obs_dim); got {tuple(theta.shape)}, "
                         f"{tuple(y.shape)}")
    teacher = train_teacher(theta, y, steps=teacher_steps, width=width, depth=3, batch_size=256,
                            lr=2e-3, seed=seed)
    return distill(teacher, width=width, depth=4, steps=map_steps, batch_size=512, lr=2e-3, seed=seed)
