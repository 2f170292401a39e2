"""lepton_nb: drive a cluster of GPU (or CPU) engines from a notebook as one machine.

``%load_ext lepton_nb`` gives ``%lepton_cluster`` and ``%%lepton_distributed``;
the same is reachable from Python through :class:`Cluster`.
"""

from __future__ import annotations

from typing import Any

from .cluster import Cluster, get_cluster
from .engine import get_device, local_rank, rank, world_size
from .errors import ClusterError, DistributedTimeout, RankFailure, RemoteError
from .monitor import monitor  # the function; the module stays importable as lepton_nb.monitor

__version__ = "0.1.0"

__all__ = [
    "Cluster",
    "ClusterError",
    "DistributedTimeout",
    "RankFailure",
    "RemoteError",
    "Trainer",
    "get_cluster",
    "get_device",
    "load_ipython_extension",
    "local_rank",
    "monitor",
    "rank",
    "unload_ipython_extension",
    "world_size",
]


def __getattr__(name: str) -> Any:
    if name == "Trainer":  # imported on first use: it loads torch and the compressors
        from .train import Trainer

        return Trainer
    raise AttributeError(f"module 'lepton_nb' has no attribute {name!r}")


def load_ipython_extension(ip: Any) -> None:
    """Register the magics: ``%load_ext lepton_nb``."""
    from .magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """Remove the magics again, so that ``%reload_ext lepton_nb`` works."""
    from .magics import unload_ipython_extension as unload

    unload(ip)
