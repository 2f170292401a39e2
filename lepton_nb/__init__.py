"""lepton_nb: drive a cluster of GPU (or CPU) engines from a notebook as one machine.

``%load_ext lepton_nb`` gives ``%lepton_cluster`` and ``%%lepton_distributed``;
the same is reachable from Python through :class:`Cluster`. Importing this
package is cheap: engines import it too, so the notebook-side names
(``Cluster``, ``monitor``, ``Trainer``) are loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .engine import get_device, local_rank, rank, world_size
from .errors import (
    ClusterError,
    DeadRankError,
    DistributedTimeout,
    RankFailure,
    RankState,
    RemoteError,
)

__version__ = "0.1.0"

__all__ = [
    "Cluster",
    "ClusterError",
    "DeadRankError",
    "DistributedTimeout",
    "Future",
    "LostData",
    "RankFailure",
    "RankState",
    "RemoteError",
    "RemoteRef",
    "TaskError",
    "Trainer",
    "as_completed",
    "get_cluster",
    "get_device",
    "load_ipython_extension",
    "local_rank",
    "monitor",
    "rank",
    "unload_ipython_extension",
    "wait",
    "world_size",
]

#: Notebook-side names, imported on first use (engines never need them).
_LAZY = {
    "Cluster": ("lepton_nb.cluster", "Cluster"),
    "get_cluster": ("lepton_nb.cluster", "get_cluster"),
    "monitor": ("lepton_nb.monitor", "monitor"),
    "Trainer": ("lepton_nb.train", "Trainer"),
    "Future": ("lepton_nb.tasks", "Future"),
    "LostData": ("lepton_nb.tasks", "LostData"),
    "RemoteRef": ("lepton_nb.tasks", "RemoteRef"),
    "TaskError": ("lepton_nb.tasks", "TaskError"),
    "as_completed": ("lepton_nb.tasks", "as_completed"),
    "wait": ("lepton_nb.tasks", "wait"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        if name == "monitor":  # the module itself, which is callable as monitor(cluster)
            return importlib.import_module(module)
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lepton_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ip: Any) -> None:
    """Register the magics: ``%load_ext lepton_nb``.

    IPython calls it; it registers ``%lepton_cluster``, ``%%lepton_distributed``,
    ``%lepton_push``, ``%lepton_pull``, ``%lepton_monitor`` and ``%lepton_map``.

    Parameters
    ----------
    ip : IPython.core.interactiveshell.InteractiveShell
        The shell to register the magics on.
    """
    from .magics import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    """Remove the magics again, so that ``%reload_ext lepton_nb`` works.

    IPython calls it on ``%unload_ext lepton_nb`` (and ``%reload_ext lepton_nb``).

    Parameters
    ----------
    ip : IPython.core.interactiveshell.InteractiveShell
        The shell to remove the magics from.
    """
    from .magics import unload_ipython_extension as unload

    unload(ip)
