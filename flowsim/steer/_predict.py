"""A :class:`~flowsim.steer.Predictor` for any model, including flow maps whose ``jump`` has no
``allow_extrapolation`` keyword (e.g. :class:`flowsim.testing.ExactFlowMap`)."""

from __future__ import annotations

import inspect

import torch
from torch import Tensor

from ..maps.protocol import FlowMapLike
from .forward import MapPredictor, Predictor, _check, predictor


class PlainMapPredictor(MapPredictor):
    """:class:`MapPredictor` for a map whose checked ``jump(x, s, t, p)`` takes no
    ``allow_extrapolation`` (it applies its own range rules). A map without a trained
    parameter range (no ``param_transform``, e.g. an exact map) is kept as :attr:`map` only,
    so the range guard treats it like the solver (bounds: the system's prior)."""

    def __init__(self, flow_map: FlowMapLike) -> None:
        super().__init__(flow_map)
        self.map = flow_map
        if not hasattr(flow_map, "param_transform"):
            self.flow_map = None

    @property
    def dtype(self) -> torch.dtype:
        return self.map.dtype

    @property
    def device(self) -> torch.device:
        return self.map.device

    def __call__(self, x0: Tensor, t0: Tensor, times: Tensor, p: Tensor) -> Tensor:
        _check(self.system, x0, t0, times, p)
        b, n = times.shape
        if n == 0:
            return x0.new_zeros(b, 0, self.system.dim)
        rep = lambda a: a.repeat_interleave(n, dim=0)  # noqa: E731
        return self.map.jump(rep(x0), rep(t0), times.reshape(-1), rep(p)).reshape(b, n, self.system.dim)


def as_predictor(model, *, allow_extrapolation: bool | None = None) -> Predictor:
    """:func:`~flowsim.steer.predictor`, with :class:`PlainMapPredictor` for maps whose ``jump``
    takes no ``allow_extrapolation``."""
    if isinstance(model, FlowMapLike) and not isinstance(model, (MapPredictor,)):
        try:
            params = inspect.signature(model.jump).parameters
        except (TypeError, ValueError):
            params = {}
        if "allow_extrapolation" not in params or not hasattr(model, "param_transform"):
            return PlainMapPredictor(model)
    return predictor(model, allow_extrapolation=allow_extrapolation)
