"""IPython magics: ``%lepton_cluster``, ``%%lepton_distributed``, push/pull, ``%lepton_map``,
``%lepton_monitor``.

They parse, call the Python API (:class:`lepton_nb.Cluster`) and render;
everything they do is reachable from Python too.
"""

from __future__ import annotations

from typing import Any

from .cluster import LeptonMagics
from .monitor import MonitorMagics
from .tasks import TaskMagics
from .transfer import TransferMagics

_MAGICS = {
    "line": ("lepton_cluster", "lepton_push", "lepton_pull", "lepton_monitor", "lepton_map"),
    "cell": ("lepton_distributed",),
}


def load_ipython_extension(ip: Any) -> None:
    """Register the lepton magics on ``ip``."""
    ip.register_magics(LeptonMagics)
    ip.register_magics(TransferMagics)
    ip.register_magics(MonitorMagics)
    ip.register_magics(TaskMagics)


def unload_ipython_extension(ip: Any) -> None:
    """Remove the lepton magics from ``ip``."""
    registry = ip.magics_manager.magics
    for kind, names in _MAGICS.items():
        for name in names:
            registry[kind].pop(name, None)
    for cls in (LeptonMagics, TransferMagics, MonitorMagics, TaskMagics):
        ip.magics_manager.registry.pop(cls.__name__, None)
