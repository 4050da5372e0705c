"""The configuration that rebuilds a :class:`~flowsim.FlowMap` (stored as JSON in checkpoints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["FlowMapConfig"]


@dataclass
class FlowMapConfig:
    """Everything needed to rebuild a :class:`~flowsim.FlowMap` (stored as JSON in checkpoints).

    Examples
    --------
    >>> import flowsim
    >>> cfg = flowsim.FlowMap("lotka_volterra", width=16, depth=1).config
    >>> cfg.system, cfg.dim, cfg.state_names, cfg.to_dict()["width"]
    ('lotka_volterra', 2, ['x', 'y'], 16)
    """

    system: str
    system_kwargs: dict[str, Any]
    dim: int
    state_names: list[str]
    param_names: list[str]
    autonomous: bool
    timescale: float
    width: int = 256
    depth: int = 4
    activation: str = "gelu"
    #: "mlp" here (FlowMap's default is "resnet"): checkpoints from before the option load as trained
    backbone: str = "mlp"
    n_frequencies: int = 8
    jump_scales: int = 0
    tangent: bool = False
    #: False here (FlowMap's default is True): checkpoints from before the option load as trained
    decay: bool = False
    #: False here (FlowMap's default follows the system's stiffness): checkpoints load as trained
    relax: bool = False
    backward: bool = False
    max_jump: float | None = None
    log_states: list[bool] = field(default_factory=list)
    #: True where the user chose ``log_states`` (or a transform): training keeps them as given;
    #: False ("auto"): training also logs positive states whose data span two decades
    log_states_fixed: bool = False
    dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
