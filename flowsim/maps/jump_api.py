"""The checked jump interface that :class:`~flowsim.FlowMap` and :class:`~flowsim.FlowMapEnsemble` share.

``jump``, ``odeint`` and ``velocity`` validate shapes, dtypes, devices, time directions and the
trained parameter range, then call the subclass's unchecked ``forward(s, t, x, p)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import ConfigError, ParameterError, ShapeError, TimeGridError
from .compose import compose_on_grid

__all__ = ["JumpAPI"]


class JumpAPI:
    """The checked jump interface shared by :class:`FlowMap` and
    :class:`~flowsim.maps.FlowMapEnsemble`: :meth:`jump`, :meth:`odeint`, :meth:`velocity`.

    A subclass provides ``forward(s, t, x, p)`` (unchecked) and the attributes ``system``,
    ``config`` (``dim``, ``backward``), ``dtype``, ``device``, ``max_jump`` and
    ``param_transform``.
    """

    def velocity(self, s: Tensor, x: Tensor, p: Tensor) -> Tensor:
        """The diagonal ``∂_t X(s, t, x)|_{t=s}`` in state units, by one forward-mode JVP."""
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
        allow_extrapolation: bool = False,
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
            Allow parameters outside the trained prior range (otherwise refused).

        Returns
        -------
        Tensor
            ``X(s, t, x; p)``, ``(batch, dim)``, differentiable in ``x`` and ``p``.

        Raises
        ------
        ShapeError
            Wrong state shape or dtype, non-finite input, bad ``s``/``t`` shape.
        TimeGridError
            Backward jumps on a map not trained for them.
        ParameterError
            Unknown names, values outside their domain or the trained range.

        Examples
        --------
        >>> import torch, flowsim
        >>> fm = flowsim.FlowMap("fitzhugh_nagumo", width=16, depth=1)
        >>> fm.jump(torch.zeros(3, 2), 0.0, 1.5).shape
        torch.Size([3, 2])
        """
        x, s_, t_, p_ = self._check(x, s, t, p, allow_extrapolation)
        return self.forward(s_, t_, x, p_)

    def odeint(
        self,
        x0: Tensor,
        t: Tensor,
        p: Tensor | dict | None = None,
        *,
        max_jump: float | None = None,
        allow_extrapolation: bool = False,
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

        Returns
        -------
        Tensor
            ``(time, batch, dim)`` — torchdiffeq's layout (time first).

        Raises
        ------
        TimeGridError, ShapeError, ParameterError
            As for :meth:`jump`, or a non-monotone ``t``.

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
        hmax = float(max_jump) if max_jump is not None else self.max_jump
        if not hmax > 0:
            raise ConfigError(f"max_jump must be positive; got {max_jump}")
        return compose_on_grid(self.forward, x0, t, p_, max_jump=hmax)

    # ------------------------------------------------------------------ validation
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
        if x.device != self.device:
            raise ShapeError(f"x is on {x.device} but the flow map on {self.device}")
        return x

    def _check(self, x, s, t, p, allow_extrapolation):
        x = self._check_x(x)
        n = x.shape[0]
        st = []
        for name, v in (("s", s), ("t", t)):
            v = torch.as_tensor(v, dtype=self.dtype, device=x.device)
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
        if not allow_extrapolation and self.system.n_params:
            bad = self.param_transform.outside(p_)
            if bad.any():
                row = int(bad.nonzero()[0, 0])
                raise ParameterError(
                    f"parameters {p_[row].tolist()} (row {row}) lie outside the trained range "
                    f"low={self.param_transform.low.tolist()}, "
                    f"high={self.param_transform.high.tolist()}; the map would extrapolate. "
                    "Pass allow_extrapolation=True to accept that."
                )
        return x, s_, t_, p_
