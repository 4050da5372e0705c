"""The log-likelihood of measured data, vectorised over a batch of parameter vectors.

One function, :func:`log_likelihood`, and the object behind it, :class:`LogLikelihood` (build
it once, call it many times: an emcee ensemble with ``vectorize=True``, a batched optimiser).
``theta`` is ``(batch, n)`` (one vector shared by all subjects) or ``(batch, S, n)`` (one per
subject); all ``batch × S`` forward problems go to the predictor in one call. See
:mod:`flowsim.steer.observations` for the whole recipe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import ConfigError, ParameterError, ShapeError
from ._user import call_user
from .forward import Predictor, predictor
from .noise import Noise
from .observations import Observations
from .ranges import _split, check_range, trained_range

__all__ = ["LogLikelihood", "log_likelihood"]

ON_OUTSIDE_LL = ("raise", "warn", "-inf")


class LogLikelihood:
    """``theta -> log p(data | theta)``, float64 and differentiable, for a batch of ``theta``.

    Arguments
    ---------
    model:
        A flow map, a :class:`~flowsim.steer.Predictor`, an ODESystem or a catalogue name
        (the torchdiffeq reference).
    observations:
        The :class:`~flowsim.steer.Observations`.
    params:
        The names of theta's columns: parameter names and initial states ``"x0.<state>"``
        (default: all of the system's parameters, in ``system.param_names`` order).
    noise:
        A :class:`~flowsim.steer.Noise` (default: gaussian with σ fitted per subject and
        observable).
    fixed:
        Values of the parameters not in ``params`` (default: the system's defaults).
    on_outside:
        Rows of theta outside the map's trained range: ``"raise"``, ``"warn"``, or ``"-inf"``
        (their log-likelihood is ``-inf`` and they are not evaluated; what a sampler wants).

    Examples
    --------
    >>> import torch, flowsim
    >>> obs = flowsim.steer.theoph_observations().select([1, 2])
    >>> ll = flowsim.steer.LogLikelihood("theophylline", obs, params=("ka", "ke", "V"),
    ...                                  noise=flowsim.steer.Noise(sigma=0.5))
    >>> theta = torch.tensor([[1.8, 0.054, 29.4], [1.5, 0.09, 32.0]], dtype=torch.float64)
    >>> ll(theta).shape, ll.per_subject(theta).shape
    (torch.Size([2]), torch.Size([2, 2]))
    """

    def __init__(self, model: Any, observations: Observations, *, params: Sequence[str] | None = None,
                 noise: Noise | None = None, fixed: Mapping[str, float] | None = None,
                 on_outside: str = "raise") -> None:
        if not isinstance(observations, Observations):
            raise ConfigError(f"observations must be an Observations; got {type(observations).__name__}")
        self.predictor: Predictor = predictor(model)
        self.observations = observations
        system = self.system = self.predictor.system
        if system.name != observations.system.name or system.dim != observations.system.dim:
            raise ConfigError(f"the model is of {system.name}, the observations of "
                              f"{observations.system.name}")
        self.params = tuple(system.param_names if params is None else params)
        if not self.params or len(set(self.params)) != len(self.params):
            raise ParameterError(f"params must name each fitted quantity once; got {list(self.params)}")
        self._cols = _split(system, self.params)
        self.noise = noise if noise is not None else Noise()
        if not isinstance(self.noise, Noise):
            raise ConfigError(f"noise must be a flowsim.steer.Noise; got {type(self.noise).__name__}")
        if on_outside not in ON_OUTSIDE_LL:
            raise ConfigError(f"on_outside must be one of {list(ON_OUTSIDE_LL)}; got {on_outside!r}")
        self.on_outside = on_outside
        base = dict(system.defaults)
        unknown = sorted(set(fixed or {}) - set(base))
        if unknown:
            raise ParameterError(f"fixed names unknown parameters {unknown}; {system.name} has "
                                 f"{list(system.param_names)}")
        base.update({k: float(v) for k, v in (fixed or {}).items()})
        self.base_params = torch.tensor([base[n] for n in system.param_names], dtype=torch.float64)
        fitted = {i for kind, i in self._cols if kind == "p"}
        held = [j for j in range(system.n_params) if j not in fitted]
        if held:  # fitted columns are checked where theta is given
            check_range(self.predictor, self.base_params[held][None],
                        [system.param_names[j] for j in held], on_outside="raise",
                        what="fixed parameters")
        self.padded = observations.padded()
        self._check_data_x0(on_outside)
        self.noise.check_data(self.padded.values, self.padded.mask)
        self._lo, self._hi = trained_range(self.predictor, self.params)

    def _check_data_x0(self, on_outside: str) -> None:
        """The data's initial states that theta does not replace must lie in the map's trained
        initial box, like a fitted ``"x0.<state>"`` (refused, or warned with ``"warn"``)."""
        fitted = {i for kind, i in self._cols if kind == "x0"}
        held = [j for j in range(self.system.dim) if j not in fitted]
        if held:
            check_range(self.predictor, self.padded.x0[:, held],
                        [f"x0.{self.system.state_names[j]}" for j in held],
                        on_outside="warn" if on_outside == "warn" else "raise",
                        what="the data's initial states")

    @property
    def n_subjects(self) -> int:
        """Number of subjects ``S``."""
        return len(self.observations.subjects)

    def __call__(self, theta: Tensor) -> Tensor:
        """The log-likelihood of every row of ``theta``, summed over subjects: ``(batch,)``."""
        return self.per_subject(theta).sum(-1)

    def per_subject(self, theta: Tensor) -> Tensor:
        """The log-likelihood of every row of ``theta`` and subject: ``(batch, S)``."""
        theta = self._as_batch(theta)                                     # (B, S, n)
        b, s, n = theta.shape
        return self.rows(theta.reshape(b * s, n), torch.arange(s).repeat(b)).reshape(b, s)

    def rows(self, theta: Tensor, subjects: Tensor) -> Tensor:
        """The log-likelihood of ``theta[r]`` ``(R, n)`` for subject ``subjects[r]`` (indices
        into ``observations.subjects``): ``(R,)``, all ``R`` forward problems in one call."""
        theta = torch.as_tensor(theta).to(torch.float64)
        subjects = torch.as_tensor(subjects, dtype=torch.long)
        if theta.ndim != 2 or theta.shape[1] != len(self.params) or subjects.shape != theta.shape[:1]:
            raise ShapeError(f"rows needs theta (R, {len(self.params)}) and subjects (R,); got "
                             f"{tuple(theta.shape)} and {tuple(subjects.shape)}")
        outside = self._outside(theta)
        if bool(outside.any()):
            theta = torch.where(outside[:, None], self._centre().to(theta), theta)
        pred = self._predict_rows(theta, subjects)                        # (R, T, K)
        pad = self.padded
        ll = self.noise.log_density(pad.values[subjects], pred[None], pad.mask[subjects])[0]
        if bool(outside.any()):
            ll = torch.where(outside, torch.full_like(ll, -torch.inf), ll)
        return ll

    def predict(self, theta: Tensor) -> Tensor:
        """Predicted observables ``(batch, S, T, K)`` (float64) at every padded observation time."""
        theta = self._as_batch(theta)
        b, s, n = theta.shape
        out = self._predict_rows(theta.reshape(b * s, n), torch.arange(s).repeat(b))
        return out.reshape(b, s, *out.shape[1:])

    def _predict_rows(self, theta: Tensor, subjects: Tensor) -> Tensor:
        pad, pred = self.padded, self.predictor
        r = theta.shape[0]
        x0 = pad.x0[subjects]
        p = self.base_params.expand(r, -1)
        xcols = [(j, i) for j, (kind, i) in enumerate(self._cols) if kind == "x0"]
        pcols = [(j, i) for j, (kind, i) in enumerate(self._cols) if kind == "p"]
        if pcols:
            p = p.clone()
            p[:, [i for _, i in pcols]] = theta[:, [j for j, _ in pcols]]
        if xcols:
            x0 = x0.clone()
            x0[:, [i for _, i in xcols]] = theta[:, [j for j, _ in xcols]]
        cast = lambda a: a.to(dtype=pred.dtype, device=pred.device)  # noqa: E731
        times, pf = cast(pad.times[subjects]), cast(p)
        x = pred(cast(x0), cast(pad.t0[subjects]), times, pf)             # (R, T, dim)
        y = call_user(self.observations.observe, "observe(x, p)", x, pf)
        if y.shape != (*times.shape, len(self.observations.observables)):
            k = len(self.observations.observables)
            raise ShapeError(f"observe(x, p) must return (batch, time, {k}); got {tuple(y.shape)}")
        return y.to(torch.float64)

    # ------------------------------------------------------------------ internals
    def _as_batch(self, theta: Tensor) -> Tensor:
        theta = torch.as_tensor(theta).to(torch.float64)
        n, s = len(self.params), self.n_subjects
        if theta.ndim == 1 and theta.shape[0] == n:
            theta = theta[None]
        if theta.ndim == 2 and theta.shape[1] == n:
            return theta[:, None, :].expand(-1, s, -1)
        if theta.ndim == 3 and theta.shape[1:] == (s, n):
            return theta
        raise ShapeError(f"theta must be (batch, {n}) shared by all subjects or (batch, {s}, {n}) per "
                         f"subject, columns {list(self.params)}; got {tuple(theta.shape)}")

    def _outside(self, theta: Tensor) -> Tensor:
        flat = theta.detach().reshape(-1, theta.shape[-1])
        if self.on_outside == "-inf":
            bad = ~torch.isfinite(flat).all(-1)
            lo, hi = self._lo.to(flat), self._hi.to(flat)
            tol = 1e-6 * torch.maximum(lo.abs(), hi.abs()).clamp_min(1e-12)
            bad |= ((flat < lo - tol) | (flat > hi + tol)).any(-1)
            return bad.reshape(theta.shape[:-1])
        check_range(self.predictor, flat, self.params, on_outside=self.on_outside)
        return torch.zeros(theta.shape[:-1], dtype=torch.bool, device=theta.device)

    def _centre(self) -> Tensor:
        return 0.5 * (self._lo + self._hi)


def log_likelihood(model: Any, observations: Observations, theta: Tensor, *,
                   params: Sequence[str] | None = None, noise: Noise | None = None,
                   fixed: Mapping[str, float] | None = None, on_outside: str = "raise") -> Tensor:
    """The log-likelihood of each row of ``theta``: ``(batch,)``, float64, differentiable.

    ``LogLikelihood(model, observations, …)(theta)``; build the :class:`LogLikelihood` once
    where it is called many times. Arguments as there.

    Arguments
    ---------
    model, observations, params, noise, fixed, on_outside:
        As for :class:`LogLikelihood`.
    theta:
        ``(batch, n)`` shared by all subjects, or ``(batch, S, n)`` one per subject.

    Examples
    --------
    >>> import torch, flowsim
    >>> obs = flowsim.steer.theoph_observations().select([1])
    >>> theta = torch.tensor([[1.78, 0.054, 29.4]], dtype=torch.float64)
    >>> ll = flowsim.steer.log_likelihood("theophylline", obs, theta, params=("ka", "ke", "V"))
    >>> round(float(ll), 2)
    -10.42
    """
    return LogLikelihood(model, observations, params=params, noise=noise, fixed=fixed,
                         on_outside=on_outside)(theta)
