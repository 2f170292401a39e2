"""The notebook side: the control plane of a cluster.

- :mod:`.core`: :class:`Cluster`, the façade (options in :mod:`.options`, defaults from :mod:`.config`);
- :mod:`.ranks`: :class:`RankRecord` and :class:`RankTable`, the one rank record;
- :mod:`.launchers`: local, slurm and ssh, each configuring one of ipyparallel's launchers;
- :mod:`.controller`: the ipyparallel controller and engine sets, on one event-loop thread;
- :mod:`.engines`: awaiting engines until they register and report; stopping them;
- :mod:`.placement`: rank numbers, local ranks and GPUs from the engines' reports;
- :mod:`.group`: forming the process group over the rank table;
- :mod:`.run`, :mod:`.job`, :mod:`.output`: running cells and functions, relaying output;
- :mod:`.status`, :mod:`.rankspec`: the status table; rank selections.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEAD_RANK", "NO_CLUSTER", "Cluster", "RankRecord", "RankTable", "get_cluster"]

_FROM = {"DEAD_RANK": "core", "NO_CLUSTER": "core", "Cluster": "core", "get_cluster": "core",
         "RankRecord": "ranks", "RankTable": "ranks"}  # fmt: skip


def __getattr__(name: str) -> Any:
    # loaded on first use, so that importing one submodule (job, ranks) never loads the façade
    if name in _FROM:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_FROM[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
