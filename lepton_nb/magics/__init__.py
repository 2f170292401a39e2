"""IPython magics: ``%lepton_cluster`` and ``%%lepton_distributed``.

They parse, call the Python API (:class:`lepton_nb.Cluster`) and render;
everything they do is reachable from Python too.
"""

from __future__ import annotations

from typing import Any

from .cluster import LeptonMagics


def load_ipython_extension(ip: Any) -> None:
    """Register the lepton magics on ``ip``."""
    ip.register_magics(LeptonMagics)


def unload_ipython_extension(ip: Any) -> None:
    """Remove the lepton magics from ``ip``."""
    registry = ip.magics_manager.magics
    for kind, names in (("line", ("lepton_cluster",)), ("cell", ("lepton_distributed",))):
        for name in names:
            registry[kind].pop(name, None)
    ip.magics_manager.registry.pop(LeptonMagics.__name__, None)
