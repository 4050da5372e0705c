"""Flow maps: the network ``X(s, t, x; p)``, its time embeddings and state transforms,
the :class:`FlowMapLike` interface and the composition of jumps."""

from .compose import JumpFn as JumpFn
from .compose import compose_jumps as compose_jumps
from .compose import compose_on_grid as compose_on_grid
from .compose import jump_times as jump_times
from .compose import n_jumps as n_jumps
from .ensemble import FlowMapEnsemble as FlowMapEnsemble
from .flowmap import FlowMap as FlowMap
from .flowmap import FlowMapConfig as FlowMapConfig
from .networks import FourierEmbedding as FourierEmbedding
from .protocol import FlowMapLike as FlowMapLike
from .protocol import check_flowmap_like as check_flowmap_like
from .throughput import Precision as Precision
from .throughput import auto_chunk_size as auto_chunk_size
from .throughput import free_memory as free_memory
from .throughput import jump_from_host as jump_from_host
from .transforms import ParamTransform as ParamTransform
from .transforms import StateTransform as StateTransform

__all__ = [
    "FlowMap", "FlowMapConfig", "FlowMapEnsemble", "FlowMapLike", "FourierEmbedding", "JumpFn",
    "ParamTransform", "StateTransform", "check_flowmap_like", "compose_jumps", "compose_on_grid",
    "jump_times", "n_jumps", "Precision", "auto_chunk_size", "free_memory", "jump_from_host",
]
