"""The data layer: trajectory stores (xarray over zarr v3), Dask ensembles, streaming samplers.

* :func:`simulate_ensemble` — reference solves of many trajectories on Dask into a store.
* :func:`from_arrays`, :func:`from_dataset` — stores from your own trajectories.
* :func:`open_store`, :func:`store_summary`, :func:`format_summary`, :func:`verify_store` — read,
  describe and check stores.
* :class:`PairSampler`, :class:`WindowSampler` — stream training samples from a store into torch
  (:class:`StreamOptions`: which trajectories, order, memory, shards).
* :mod:`flowsim.data.sampling` (:class:`PairOptions`) — how pairs and windows are drawn, the one
  implementation both the streamed samplers and the in-memory ``TrajectoryBank`` use.
"""

from . import sampling as sampling
from ._stream import StreamOptions as StreamOptions
from .arrays import from_arrays as from_arrays
from .arrays import from_dataset as from_dataset
from .cluster import WORKER_ENV as WORKER_ENV
from .cluster import local_cluster as local_cluster
from .ensemble import simulate_ensemble as simulate_ensemble
from .samplers import PairSampler as PairSampler
from .samplers import WindowSampler as WindowSampler
from .sampling import PairOptions as PairOptions
from .schema import SCHEMA_VERSION as SCHEMA_VERSION
from .schema import validate_dataset as validate_dataset
from .splits import split_of as split_of
from .store import format_summary as format_summary
from .store import open_store as open_store
from .store import store_param_range as store_param_range
from .store import store_summary as store_summary
from .store import store_system as store_system
from .store import verify_store as verify_store

__all__ = [
    "SCHEMA_VERSION",
    "WORKER_ENV",
    "PairOptions",
    "PairSampler",
    "StreamOptions",
    "WindowSampler",
    "format_summary",
    "from_arrays",
    "from_dataset",
    "local_cluster",
    "open_store",
    "simulate_ensemble",
    "split_of",
    "store_summary",
    "store_param_range",
    "store_system",
    "validate_dataset",
    "verify_store",
]
