"""The :class:`ODESystem` abstraction: what evolves, with its parameters and priors."""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from .._utils import as_generator, check_int
from ..errors import ConfigError, ParameterError, ShapeError, TimeGridError
from .checks import call_vector_field, refuse_complex
from .parameters import Parameter, box_log_density, params_tensor, recentred_prior

__all__ = ["Parameter", "ODESystem"]  # Parameter lives in .parameters


class ODESystem(abc.ABC):
    """An ODE ``dx/dt = b(t, x; p)`` with named states, parameters, priors and metadata.

    Subclasses set the class attributes below and implement :meth:`vector_field`. Everything is
    batch-first: states are ``(batch, dim)``, parameters ``(batch, n_params)``.

    Attributes
    ----------
    name:
        Registry name, e.g. ``"fitzhugh_nagumo"``.
    state_names, units:
        One name and one unit string per state.
    parameters:
        Tuple of :class:`Parameter` (defaults reflect constructor overrides).
    timescale:
        A characteristic time (e.g. one oscillation period), in ``time_units``.
    autonomous:
        ``False`` when ``b`` depends on ``t`` explicitly.
    stiff:
        ``True`` when explicit solvers are inefficient at the default parameters.
    positive:
        ``True`` when all states stay positive (log-standardisation is then available).
    invariant_names:
        Names of the conserved quantities returned by :meth:`invariants`.
    description, citation:
        A sentence about the model and where its standard parameters come from.

    Examples
    --------
    >>> import flowsim, torch
    >>> sys = flowsim.get_system("lotka_volterra")
    >>> x = sys.sample_initial(4, generator=0)
    >>> sys.rhs(0.0, x).shape
    torch.Size([4, 2])
    """

    name: str = "ode"
    state_names: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    time_units: str = ""
    parameters: tuple[Parameter, ...] = ()
    timescale: float = 1.0
    autonomous: bool = True
    stiff: bool = False
    positive: bool = False
    invariant_names: tuple[str, ...] = ()
    description: str = ""
    citation: str = ""
    #: ``(low, high)`` per state: the box :meth:`sample_initial` draws from by default.
    initial_box: tuple[tuple[float, float], ...] = ()
    #: The standard initial state from the literature.
    default_x0: tuple[float, ...] = ()

    def __init__(self, **param_overrides: float) -> None:
        self._init_kwargs: dict[str, Any] = dict(param_overrides)
        self.parameters = self._override_defaults(type(self).parameters, param_overrides)
        self._check_layout()

    # ------------------------------------------------------------------ metadata
    @property
    def dim(self) -> int:
        """Number of state variables."""
        return len(self.state_names)

    @property
    def n_params(self) -> int:
        """Number of parameters."""
        return len(self.parameters)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Parameter names, in the column order of parameter tensors."""
        return tuple(q.name for q in self.parameters)

    @property
    def defaults(self) -> dict[str, float]:
        """Default parameter values as a dict."""
        return {q.name: q.default for q in self.parameters}

    @property
    def has_exact_solution(self) -> bool:
        """Whether :meth:`exact_solution` is implemented."""
        return type(self).exact_solution is not ODESystem.exact_solution

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (used by the CLI and stored in dataset attributes)."""
        return {
            "name": self.name,
            "dim": self.dim,
            "state_names": list(self.state_names),
            "units": list(self.units),
            "time_units": self.time_units,
            "parameters": {
                q.name: {"default": q.default, "prior": list(q.prior), "units": q.units}
                for q in self.parameters
            },
            "timescale": self.timescale,
            "autonomous": self.autonomous,
            "stiff": self.stiff,
            "positive": self.positive,
            "invariants": list(self.invariant_names),
            "constructor": self.constructor_kwargs(),
            "description": self.description,
            "citation": self.citation,
            # the import path of a user's system (flowsim.systems.imports), so it can be rebuilt
            **({"import_path": self.import_path} if getattr(self, "import_path", None) else {}),
        }

    def constructor_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this system with :func:`flowsim.get_system`."""
        return dict(self._init_kwargs)

    def with_params(self, **param_overrides: float) -> ODESystem:
        """A copy of this system with new default parameter values.

        Examples
        --------
        >>> import flowsim
        >>> flowsim.get_system("van_der_pol").with_params(mu=5.0).defaults["mu"]
        5.0
        """
        kwargs = {**self._init_kwargs, **param_overrides}
        return type(self)(**kwargs)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._init_kwargs.items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ parameters
    def default_params(
        self,
        batch: int | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Default parameters, ``(n_params,)`` or ``(batch, n_params)`` if ``batch`` is given."""
        p = torch.tensor([q.default for q in self.parameters], dtype=dtype, device=device)
        return p if batch is None else p.expand(batch, -1).clone()

    def sample_params(
        self,
        n: int,
        generator: torch.Generator | int | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``n`` parameter vectors uniformly from each parameter's prior range."""
        n = check_int(n, "n (how many to draw)", ConfigError, low=0)
        g = as_generator(generator)
        lo = torch.tensor([q.prior[0] for q in self.parameters], dtype=torch.float64)
        hi = torch.tensor([q.prior[1] for q in self.parameters], dtype=torch.float64)
        u = torch.rand(n, self.n_params, generator=g, dtype=torch.float64)
        return (lo + (hi - lo) * u).to(dtype=dtype, device=device)

    def log_prior(self, p: Tensor) -> Tensor:
        """Log density, up to a constant, of the prior :meth:`sample_params` draws from:
        ``(k,)`` for ``p`` ``(k, n_params)``; ``-inf`` outside the prior ranges.

        Uniform here (0 inside every range); a subclass that draws otherwise overrides both.

        Examples
        --------
        >>> import torch, flowsim
        >>> sir = flowsim.get_system("sir")
        >>> sir.log_prior(torch.stack([sir.default_params(), sir.default_params() * 100]))
        tensor([0., -inf], dtype=torch.float64)
        """
        return box_log_density(p, [q.prior for q in self.parameters], log_uniform=False)

    def params_tensor(
        self,
        p: Tensor | Mapping[str, float] | Sequence[float] | None,
        batch: int,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        check_domain: bool = True,
    ) -> Tensor:
        """Validate ``p`` and return it as a ``(batch, n_params)`` tensor.

        Arguments
        ---------
        p:
            ``None`` (defaults), a dict ``{name: value}`` overriding defaults, a ``(n_params,)``
            vector shared by the batch, or a ``(batch, n_params)`` per-sample tensor.
        batch:
            Batch size to broadcast to.

        Raises
        ------
        ParameterError
            Unknown names, or values outside a parameter's domain.
        ShapeError
            Wrong shape or non-finite values.
        """
        if p is None:
            return self.default_params(batch, dtype=dtype, device=device)
        return params_tensor(self.name, self.parameters, p, batch, dtype=dtype, device=device,
                             check_domain=check_domain)

    # ------------------------------------------------------------------ dynamics
    def rhs(self, t: Tensor | float, x: Tensor, p: Tensor | Mapping[str, float] | None = None) -> Tensor:
        """The vector field ``b(t, x; p)``, vectorised over the batch.

        Arguments
        ---------
        t:
            A scalar or a ``(batch,)`` tensor of times.
        x:
            States, ``(batch, dim)``.
        p:
            Parameters: ``None`` (defaults), a dict, ``(n_params,)`` or ``(batch, n_params)``.

        Returns
        -------
        Tensor
            ``dx/dt``, shape ``(batch, dim)``, same dtype as ``x``.

        Raises
        ------
        ShapeError
            If ``x`` is not a non-empty ``(batch, dim)`` real tensor or ``t`` is not scalar /
            ``(batch,)``.
        VectorFieldError
            The vector field raised or returned the wrong shape or dtype.

        Examples
        --------
        >>> import flowsim, torch
        >>> sho = flowsim.get_system("harmonic_oscillator")
        >>> sho.rhs(0.0, torch.tensor([[1.0, 0.0]], dtype=torch.float64))
        tensor([[ 0., -1.]], dtype=torch.float64)
        """
        x = self.check_state(x)
        refuse_complex(t, "t", TimeGridError)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if not (t.ndim == 0 or t.shape == (x.shape[0],)):
            raise ShapeError(f"t must be a scalar or (batch,) = ({x.shape[0]},); got {tuple(t.shape)}")
        p = self.params_tensor(p, x.shape[0], dtype=x.dtype, device=x.device)
        return call_vector_field(self, t, x, p)

    @abc.abstractmethod
    def vector_field(self, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
        """The unchecked vector field ``b(t, x; p)``: the hot path every layer calls.

        Unlike :meth:`rhs` nothing is validated or converted: ``t`` is a scalar tensor or
        ``(batch,)``, ``x`` is ``(batch, dim)`` and ``p`` is ``(batch, n_params)``, all of one
        dtype and device. Subclasses implement it; it must be differentiable and work for any
        float dtype.

        Examples
        --------
        >>> import flowsim, torch
        >>> sho = flowsim.get_system("harmonic_oscillator")
        >>> x = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        >>> sho.vector_field(torch.tensor(0.0, dtype=torch.float64), x, sho.default_params(1))
        tensor([[ 0., -1.]], dtype=torch.float64)
        """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        legacy = cls.__dict__.get("_rhs")
        if legacy is not None and "vector_field" not in cls.__dict__:  # subclasses from before 0.2
            import warnings

            warnings.warn(
                f"{cls.__name__} implements ODESystem._rhs; rename it to vector_field "
                "(the _rhs name is deprecated)",
                DeprecationWarning,
                stacklevel=2,
            )
            cls.vector_field = legacy

    def check_state(self, x: Tensor, name: str = "x") -> Tensor:
        """Validate a ``(batch, dim)`` floating-point state tensor and return it."""
        if not isinstance(x, Tensor):
            refuse_complex(x, f"{self.name}: {name}", ShapeError)
            x = torch.as_tensor(x, dtype=torch.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ShapeError(
                f"{self.name}: {name} must have shape (batch, {self.dim}) with states "
                f"{self.state_names}; got {tuple(x.shape)}. For a single state use x[None]."
            )
        if x.shape[0] == 0:
            raise ShapeError(f"{self.name}: {name} is an empty batch {tuple(x.shape)}; give at least "
                             f"one state, (batch >= 1, {self.dim})")
        refuse_complex(x, f"{self.name}: {name}", ShapeError)
        if not x.is_floating_point():
            raise ShapeError(f"{name} must be a floating-point tensor; got {x.dtype}")
        return x

    def sample_initial(
        self,
        n: int,
        generator: torch.Generator | int | None = None,
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw ``n`` initial states, ``(n, dim)``, from the system's initial-state prior.

        The default draws uniformly from :attr:`initial_box`. Deterministic for a seeded generator.
        """
        n = check_int(n, "n (how many to draw)", ConfigError, low=0)
        g = as_generator(generator)
        box = torch.tensor(self.initial_box, dtype=torch.float64)
        u = torch.rand(n, self.dim, generator=g, dtype=torch.float64)
        return (box[:, 0] + (box[:, 1] - box[:, 0]) * u).to(dtype=dtype, device=device)

    def default_initial(
        self, *, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
    ) -> Tensor:
        """The standard initial state from the literature, shape ``(dim,)``."""
        return torch.tensor(self.default_x0, dtype=dtype, device=device)

    def invariants(self, x: Tensor, p: Tensor | Mapping[str, float] | None = None) -> dict[str, Tensor]:
        """Conserved quantities of states ``x`` (``(batch, dim)`` or ``(batch, time, dim)``).

        Returns a dict ``{name: tensor}`` with the leading shape of ``x`` (empty if the
        system conserves nothing).
        """
        if not self.invariant_names:
            return {}
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        flat = self.check_state(flat)
        n_lead = lead.numel() if len(lead) else 1
        if isinstance(p, Tensor) and p.ndim == 2 and len(lead) == 2:
            p = p[:, None, :].expand(lead[0], lead[1], -1).reshape(-1, p.shape[-1])
        pt = self.params_tensor(p, n_lead, dtype=flat.dtype, device=flat.device)
        out = self._invariants(flat, pt)
        return {k: v.reshape(lead) for k, v in out.items()}

    def _invariants(self, x: Tensor, p: Tensor) -> dict[str, Tensor]:
        return {}

    def exact_solution(self, t: Tensor, x0: Tensor, p: Tensor | None = None) -> Tensor:
        """Analytic solution ``(batch, time, dim)`` where one is known; else NotImplementedError."""
        raise NotImplementedError(f"{self.name} has no analytic solution")

    # ------------------------------------------------------------------ internals
    def _override_defaults(
        self, params: tuple[Parameter, ...], overrides: Mapping[str, Any]
    ) -> tuple[Parameter, ...]:
        names = [q.name for q in params]
        unknown = [k for k in overrides if k not in names]
        if unknown:
            raise ParameterError(
                f"{self.name} has no parameter(s) {unknown}; its parameters are {names}"
            )
        out = []
        for q in params:
            if q.name in overrides:
                v = float(overrides[q.name])
                q.check(v)
                q = replace(q, default=v, prior=recentred_prior(q, v))
            out.append(q)
        return tuple(out)

    def _check_layout(self) -> None:
        who = f"{self.name} ({type(self).__name__})"
        if len(self.units) not in (0, self.dim):
            raise ConfigError(f"{who}: units must have one entry per state")
        if not self.units:
            self.units = ("",) * self.dim
        if self.initial_box and len(self.initial_box) != self.dim:
            raise ConfigError(f"{who}: initial_box must have one range per state")
        if any(not lo <= hi for lo, hi in self.initial_box):
            raise ConfigError(f"{who}: initial_box {list(self.initial_box)} has a range with low > high")
        ts = self.timescale
        if isinstance(ts, (bool, complex)) or not isinstance(ts, (int, float)) or not (
                math.isfinite(ts) and ts > 0):
            raise ConfigError(f"{who}: timescale must be a positive finite number (a characteristic "
                              f"time, e.g. one period); got {ts!r}")

