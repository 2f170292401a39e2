"""Tasks: many independent pieces of work on the cluster's ranks, wherever there is room.

``cluster.submit(fn, *args)`` and ``cluster.map(fn, iterable)`` give
:class:`Future` objects (``concurrent.futures`` ones, with the ``rank`` that
ran them). ipyparallel's load-balanced view places, orders and retries them;
:mod:`.queue` decides what it is given. ``keep=True`` leaves a result on its
rank, in that rank's tiered store (:mod:`.store`), as a :class:`RemoteRef`.
Engines import :mod:`.rank` and :mod:`.store` only.
"""

from __future__ import annotations

from .future import Future, LostData, TaskError, as_completed, wait
from .rank import CollectiveInTask
from .ref import RemoteRef

__all__ = ["CollectiveInTask", "Future", "LostData", "RemoteRef", "TaskError", "as_completed", "wait"]
