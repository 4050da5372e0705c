"""Flow maps: the network ``X(s, t, x; p)``, its time embeddings and state transforms."""

from .ensemble import FlowMapEnsemble as FlowMapEnsemble
from .flowmap import FlowMap as FlowMap
from .flowmap import FlowMapConfig as FlowMapConfig
from .networks import FourierEmbedding as FourierEmbedding
from .transforms import ParamTransform as ParamTransform
from .transforms import StateTransform as StateTransform

__all__ = [
    "FlowMap", "FlowMapConfig", "FlowMapEnsemble", "FourierEmbedding", "ParamTransform",
    "StateTransform",
]
