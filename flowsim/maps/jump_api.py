"""The checked jump interface that :class:`~flowsim.FlowMap` and :class:`~flowsim.FlowMapEnsemble` share.

``jump``, ``odeint`` and ``velocity`` validate shapes, dtypes, devices, time directions and the
trained parameter range, then call the subclass's unchecked ``forward(s, t, x, p)``.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..errors import ConfigError, ExtrapolationWarning, ParameterError, ShapeError, TimeGridError
from ..systems.checks import refuse_complex
from .compose import compose_jumps, compose_on_grid, n_jumps
from .throughput import Precision, auto_chunk_size, precision_context, run_chunked

__all__ = ["JumpAPI", "EXTRAPOLATION_SLACK"]

#: A jump up to this factor longer than the longest gap trained still counts as trained.
EXTRAPOLATION_SLACK = 1.05
#: A state further than this many standard deviations of the map's state normalisation (fitted on
#: its training data, or on the system's initial-state prior) from their mean is an extrapolation.
STATE_LIMIT = 10.0


class JumpAPI:
    """The checked jump interface shared by :class:`FlowMap` and
    :class:`~flowsim.maps.FlowMapEnsemble`: :meth:`jump`, :meth:`odeint`, :meth:`velocity`.

    A subclass provides ``forward(s, t, x, p)`` (unchecked) and the attributes ``system``,
    ``config`` (``dim``, ``backward``), ``dtype``, ``device``, ``max_jump`` and
    ``param_transform``.

    ``allow_extrapolation`` of the checked methods says what happens outside what the map was
    trained for: ``None`` (default) refuses parameters outside the trained range and warns
    (:class:`~flowsim.errors.ExtrapolationWarning`) about a jump longer than :attr:`jump_limit`,
    which :meth:`jump` then composes of jumps no longer than :attr:`max_jump`, as :meth:`odeint`
    does, and about states more than ``STATE_LIMIT`` (10) standard deviations of the map's state
    normalisation from its mean; ``False`` (strict) refuses all three; ``True`` accepts them as
    they are (one evaluation).
    """

    @property
    def jump_limit(self) -> float:
        """Longest jump that is not an extrapolation in time (time units):
        ``EXTRAPOLATION_SLACK`` (1.05) × the longest gap the map was trained on
        (``training_record["trained_max_gap"]``: ``max_jump · (1 + jump_margin)`` where the data
        reached), or × :attr:`max_jump` for a map not trained by :func:`flowsim.fit`.

        Examples
        --------
        >>> import flowsim
        >>> fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1, max_jump=2.0)
        >>> fm.jump_limit
        2.1
        """
        record = getattr(self, "training_record", None) or {}
        trained = record.get("trained_max_gap") if isinstance(record, dict) else None
        gap = max(float(trained), self.max_jump) if trained else self.max_jump
        return float(f"{EXTRAPOLATION_SLACK * gap:.12g}")

    def _jumps_needed(self, s: Tensor, t: Tensor, allow_extrapolation: bool | None) -> int:
        """1, or the number of composed jumps that keep a too-long jump within training (with
        a warning); refuses it in strict mode."""
        if allow_extrapolation is True or s.numel() == 0:
            return 1
        span, limit = float((t - s).abs().max()), self.jump_limit
        if span <= limit:
            return 1
        what = (f"a jump of {span:.4g} time units is longer than this map was trained for "
                f"(jump_limit {limit:.4g}: the longest trained gap + 5 %)")
        if allow_extrapolation is False:
            raise TimeGridError(f"{what}; compose it with odeint(x, torch.stack([s, t])) or "
                                "allow_extrapolation=None, or pass allow_extrapolation=True to "
                                "extrapolate in one evaluation")
        n = n_jumps(span, self.max_jump)
        warnings.warn(f"{what}: composed {n} jumps of at most max_jump={self.max_jump:.4g} "
                      "instead, as odeint(…) does; pass allow_extrapolation=True for one "
                      "extrapolated evaluation, or False to refuse such jumps",
                      ExtrapolationWarning, stacklevel=3)
        return n

    def velocity(self, s: Tensor | float, x: Tensor, p: Tensor | dict | None = None, *,
                 allow_extrapolation: bool | None = None, check: bool = True) -> Tensor:
        """The diagonal ``∂_t X(s, t, x)|_{t=s}`` in state units, by one forward-mode JVP: the
        vector field the map has learnt, ``(batch, dim)``.

        ``s``, ``x``, ``p`` and ``allow_extrapolation`` are checked as by :meth:`jump` (``s`` a
        scalar or ``(batch,)``; ``p`` ``None``, a dict, ``(n_params,)`` or ``(batch, n_params)``);
        ``check=False`` skips the checks, for tensors already in shape (the trainer's physics
        objectives).

        Examples
        --------
        >>> import flowsim
        >>> fm = flowsim.FlowMap("lotka_volterra", width=8, depth=1)
        >>> fm.velocity(0.0, fm.system.sample_initial(3, 0).float()).shape
        torch.Size([3, 2])
        """
        if check:
            x, s, _, p = self._check(x, s, s, p, allow_extrapolation)
            s = s.contiguous()  # a scalar s arrives expanded; the JVP needs its own memory
        with warnings.catch_warnings():  # torch.func's JVP of some ops calls torch.jit.script
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
            _, dx = torch.func.jvp(lambda tt: self.forward(s, tt, x, p), (s,), (torch.ones_like(s),))
        return dx

    # ------------------------------------------------------------------ checked API
    def jump(
        self,
        x: Tensor,
        s: Tensor | float,
        t: Tensor | float,
        p: Tensor | dict | None = None,
        *,
        allow_extrapolation: bool | None = None,
        chunk_size: int | None = None,
        precision: Precision | str | None = None,
    ) -> Tensor:
        """Jump states ``x`` from times ``s`` to times ``t`` in one evaluation.

        Arguments
        ---------
        x:
            States ``(batch, dim)`` in the map's dtype.
        s, t:
            Scalars or per-sample ``(batch,)`` tensors.
        p:
            Parameters: ``None`` (defaults), a dict, ``(n_params,)`` or ``(batch, n_params)``.
        allow_extrapolation:
            ``None`` (default): parameters outside the trained range are refused; a jump
            longer than :attr:`jump_limit` warns and is composed of jumps of at most
            :attr:`max_jump`. ``True``: both accepted, in one evaluation. ``False``: both refused.
        chunk_size:
            States per network call. ``None`` (default): the whole batch when its activations
            fit in a quarter of the free device memory, else chunks that do
            (:func:`flowsim.maps.throughput.auto_chunk_size`); the result is the same.
        precision:
            ``"float32"`` (default: the map's dtype), ``"bfloat16"`` (autocast: faster on
            recent hardware, less accurate; ``benchmarks/throughput.py`` measures by how much)
            or ``"tf32"`` (CUDA matmuls). The output is in the map's dtype.

        Returns
        -------
        Tensor
            ``X(s, t, x; p)``, ``(batch, dim)``, differentiable in ``x`` and ``p``.

        Raises
        ------
        ShapeError
            Wrong state shape or dtype, an empty batch, complex or non-finite input, bad
            ``s``/``t`` shape.
        TimeGridError
            Backward jumps on a map not trained for them; with ``allow_extrapolation=False``,
            a jump longer than :attr:`jump_limit`.
        ParameterError
            Unknown names, values outside their domain or the trained range.
        MemoryBudgetError
            The inputs and outputs of the batch alone do not fit in the device's free memory.
        ConfigError
            A bad ``chunk_size`` or ``precision``.

        Warns
        -----
        ExtrapolationWarning
            A jump longer than :attr:`jump_limit` (then composed), or a state more than
            ``STATE_LIMIT`` standard deviations from those the map was fitted for, by default
            (with ``allow_extrapolation=False`` the state is refused: ``ShapeError``).

        Examples
        --------
        >>> import torch, flowsim
        >>> fm = flowsim.FlowMap("fitzhugh_nagumo", width=16, depth=1)
        >>> fm.jump(torch.zeros(3, 2), 0.0, 1.5).shape
        torch.Size([3, 2])
        """
        x, s_, t_, p_ = self._check(x, s, t, p, allow_extrapolation)
        n = self._jumps_needed(s_, t_, allow_extrapolation)

        def one(s: Tensor, t: Tensor, x: Tensor, p: Tensor) -> Tensor:
            return compose_jumps(self.forward, x, s, t, p, n=n) if n > 1 else self.forward(s, t, x, p)

        chunk = self._chunk(x.shape[0], chunk_size, outputs=1)
        with precision_context(precision, x.device):
            out = run_chunked(one, chunk, s_, t_, x, p_)
        return out.to(self.dtype)

    def odeint(
        self,
        x0: Tensor,
        t: Tensor,
        p: Tensor | dict | None = None,
        *,
        max_jump: float | None = None,
        allow_extrapolation: bool | None = None,
        chunk_size: int | None = None,
        precision: Precision | str | None = None,
    ) -> Tensor:
        """Drop-in for ``torchdiffeq.odeint(func, x0, t)``: states at every time in ``t``.

        Each interval between consecutive output times is covered by equal jumps no longer
        than ``max_jump`` (:func:`flowsim.maps.compose_on_grid`).

        Arguments
        ---------
        x0:
            Initial states ``(batch, dim)`` at ``t[0]``.
        t:
            Output times ``(time,)`` (shared, strictly monotone) or ``(batch, time)``.
        p:
            Parameters, as for :meth:`jump`.
        max_jump:
            Longest single jump; default :attr:`max_jump` (the longest gap seen in training).
            One longer than :attr:`jump_limit` extrapolates: it warns
            (:class:`~flowsim.errors.ExtrapolationWarning`), or is refused with
            ``allow_extrapolation=False``.
        allow_extrapolation, chunk_size, precision:
            As for :meth:`jump` (chunks are of trajectories).

        Returns
        -------
        Tensor
            ``(time, batch, dim)`` — torchdiffeq's layout (time first).

        Raises
        ------
        TimeGridError, ShapeError, ParameterError
            As for :meth:`jump`, or a non-monotone ``t``.
        ConfigError
            ``max_jump`` not positive, or so small that covering ``t`` would take more than 10⁷
            jumps (refused before the first).

        Examples
        --------
        >>> import torch, flowsim
        >>> fm = flowsim.FlowMap("lotka_volterra", width=16, depth=1)
        >>> fm.odeint(torch.ones(4, 2), torch.linspace(0, 10, 6)).shape
        torch.Size([6, 4, 2])
        """
        from ..solve.validate import check_times

        x0 = self._check_x(x0)
        t = check_times(t, x0.shape[0], self.dtype, x0.device)
        if t.ndim == 1:
            t = t.expand(x0.shape[0], -1)
        if not self.config.backward and (t.diff(dim=-1) < 0).any():
            raise TimeGridError("this flow map was not trained for backward jumps; "
                                "give increasing times")
        _, _, _, p_ = self._check(x0, t[:, 0], t[:, 0], p, allow_extrapolation)
        refuse_complex(max_jump, "max_jump", ConfigError)
        try:
            hmax = float(max_jump) if max_jump is not None else self.max_jump
        except (TypeError, ValueError):
            raise ConfigError(f"max_jump must be a positive number; got {max_jump!r}") from None
        if not hmax > 0:
            raise ConfigError(f"max_jump must be positive; got {max_jump}")
        if hmax > self.jump_limit and allow_extrapolation is not True:
            what = (f"max_jump={hmax:.4g} is longer than this map was trained for (jump_limit "
                    f"{self.jump_limit:.4g}): each jump would extrapolate")
            if allow_extrapolation is False:
                raise TimeGridError(f"{what}; give max_jump <= {self.max_jump:.4g} (or None)")
            warnings.warn(f"{what}; give max_jump <= {self.max_jump:.4g} (or None), or pass "
                          "allow_extrapolation=True", ExtrapolationWarning, stacklevel=2)
        chunk = self._chunk(x0.shape[0], chunk_size, outputs=t.shape[1])
        with precision_context(precision, x0.device):
            out = run_chunked(lambda x, tt, pp: compose_on_grid(self.forward, x, tt, pp, max_jump=hmax),
                              chunk, x0, t, p_, out_dim=1)
        return out.to(self.dtype)

    # ------------------------------------------------------------------ validation
    def _chunk(self, n: int, chunk_size: int | None, outputs: int) -> int:
        """States per network call: ``chunk_size`` checked, or sized from the free memory."""
        if chunk_size is not None:
            if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
                raise ConfigError(f"chunk_size must be a positive integer or None; got {chunk_size!r}")
            return chunk_size
        item = torch.finfo(self.dtype).bits // 8
        dim, n_params = self.config.dim, self.system.n_params
        widths = sum(m.out_features for m in self.modules() if isinstance(m, torch.nn.Linear))
        # activations (kept for autograd when gradients are on), inputs and outputs per state
        per_state = item * 4 * max(widths, 1)
        io = item * (dim * (1 + outputs) + 2 + n_params)
        return auto_chunk_size(per_state, io, n, self.device)

    def _check_x(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor):
            raise ShapeError(f"x must be a torch.Tensor of shape (batch, {self.config.dim})")
        x = self.system.check_state(x)
        if x.dtype != self.dtype:
            raise ShapeError(
                f"x is {x.dtype} but the flow map computes in {self.dtype}; pass "
                f"x.to({self.dtype}) or convert the map with .to({x.dtype})"
            )
        if not torch.isfinite(x).all():
            raise ShapeError("x contains NaN or inf; pass finite states")
        logged = getattr(getattr(self, "state_transform", None), "log_mask", None)
        if logged is not None and bool(logged.any()):
            bad = (x <= 0) & logged.to(x.device)
            if bool(bad.any()):
                row, col = (int(v) for v in bad.nonzero()[0])
                name = self.system.state_names[col]
                raise ShapeError(
                    f"state {name} = {float(x[row, col]):.3g} (row {row}) is not positive, but this map "
                    f"log-standardises {name} (it was trained on positive values only); give a small "
                    "positive value (e.g. 1e-9 instead of 0) or train a map with log_states=False")
        if x.device != self.device:
            raise ShapeError(f"x is on {x.device} but the flow map on {self.device}")
        return x

    def _check(self, x, s, t, p, allow_extrapolation):
        if allow_extrapolation is not None and not isinstance(allow_extrapolation, bool):
            raise ConfigError(f"allow_extrapolation must be None, True or False; got "
                              f"{allow_extrapolation!r}")
        x = self._check_x(x)
        n = x.shape[0]
        st = []
        for name, v in (("s", s), ("t", t)):
            refuse_complex(v, name, TimeGridError)
            try:
                v = torch.as_tensor(v, dtype=self.dtype, device=x.device)
            except (TypeError, ValueError, RuntimeError):
                raise TimeGridError(f"{name} must be a number or a (batch,) tensor of times; got "
                                    f"{type(v).__name__} {v!r:.40}") from None
            if v.ndim == 0:
                v = v.expand(n)
            if v.shape != (n,):
                raise ShapeError(f"{name} must be a scalar or (batch,) = ({n},); "
                                 f"got {tuple(v.shape)}")
            if not torch.isfinite(v).all():
                raise ShapeError(f"{name} contains NaN or inf")
            st.append(v)
        s_, t_ = st
        if not self.config.backward and (t_ < s_).any():
            raise TimeGridError(
                "t < s: this flow map was not trained for backward jumps; build it with "
                "backward=True and train on backward jumps, or swap s and t"
            )
        p_ = self.system.params_tensor(p, n, dtype=self.dtype, device=x.device)
        if allow_extrapolation is not True and self.system.n_params:
            bad = self.param_transform.outside(p_)
            if bad.any():
                row = int(bad.nonzero()[0, 0])
                raise ParameterError(
                    f"parameters {p_[row].tolist()} (row {row}) lie outside the trained range "
                    f"low={self.param_transform.low.tolist()}, "
                    f"high={self.param_transform.high.tolist()}; the map would extrapolate. "
                    "Pass allow_extrapolation=True to accept that."
                )
        if allow_extrapolation is not True:
            self._check_state_range(x, strict=allow_extrapolation is False)
        return x, s_, t_, p_

    def _check_state_range(self, x: Tensor, strict: bool) -> None:
        """Warn about (or, ``strict``, refuse) states far outside those the map was fitted for."""
        tr = getattr(self, "state_transform", None)
        if tr is None:
            return
        far = (tr.encode(x).abs() > STATE_LIMIT).any(dim=-1)
        if not bool(far.any()):
            return
        row = int(far.nonzero()[0, 0])
        msg = (f"state {x[row].tolist()} (row {row}; {int(far.sum())} of {x.shape[0]} rows) lies "
               f"more than {STATE_LIMIT:g} standard deviations of the map's state normalisation "
               f"from the states it was fitted for (mean {tr.decode(torch.zeros_like(x[:1]))[0].tolist()}); "
               f"the jump extrapolates. Train on data that reach such states, or pass "
               f"allow_extrapolation=True to accept it")
        if strict:
            raise ShapeError(msg)
        warnings.warn(msg, ExtrapolationWarning, stacklevel=4)
