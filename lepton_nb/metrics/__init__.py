"""Live metrics: each rank's sampler, the notebook's collector, the cluster's snapshot.

- :mod:`.sampler` runs on each rank (a daemon thread pushing signed samples);
- :mod:`.collector` runs in the notebook (receives them while cells run);
- :mod:`.snapshot` turns the latest samples into one JSON-able view of the cluster;
- :mod:`.runtime` writes the file a Jupyter server finds the cluster by;
- :mod:`.wire` signs and checks the messages.

Engines import the sampler only, so the collector is loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .snapshot import STATES
from .wire import BadMessage

__all__ = ["STATES", "BadMessage", "Collector"]


def __getattr__(name: str) -> Any:
    if name == "Collector":
        from .collector import Collector

        return Collector
    raise AttributeError(f"module 'lepton_nb.metrics' has no attribute {name!r}")
