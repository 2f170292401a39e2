"""Each rank's series over the last minutes, as the monitor charts them.

The collector adds every snapshot it publishes; ``cluster.metrics_history()``
reads them back. The browser keeps the same series from the same snapshots
(one point per snapshot and rank: :data:`~.snapshot.SERIES` of each row).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

from .snapshot import SERIES, Snapshot

#: Seconds of history kept, as the monitor's charts show.
KEEP_S = 300.0

#: One rank's history: ``time`` (epoch seconds) and each series, one value per snapshot.
RankHistory = dict[str, list[Any]]


class History:
    """Per rank, the last :data:`KEEP_S` seconds of snapshots' series; thread safe."""

    def __init__(self, interval: float) -> None:
        self.points = math.ceil(KEEP_S / interval) + 1
        self._lock = threading.Lock()
        self._ranks: dict[int, deque[tuple[Any, ...]]] = {}

    def add(self, snap: Snapshot) -> None:
        """One point per rank of ``snap``: its time and the row's series."""
        t = snap["time"]
        with self._lock:
            for row in snap["ranks"]:
                points = self._ranks.setdefault(row["rank"], deque(maxlen=self.points))
                series = row["series"]
                points.append((t, *(series[name] for name in SERIES)))

    def read(self, seconds: float = KEEP_S) -> dict[int, RankHistory]:
        """``{rank: {"time": [...], "memory": [...], "utilization": [...], "sent": [...]}}``
        of the points at most ``seconds`` older than the newest."""
        with self._lock:
            ranks = {r: list(points) for r, points in self._ranks.items()}
        newest = max((p[-1][0] for p in ranks.values() if p), default=0.0)
        out: dict[int, RankHistory] = {}
        for rank, points in sorted(ranks.items()):
            kept = [p for p in points if p[0] >= newest - seconds]
            columns = list(zip(*kept)) if kept else [()] * (len(SERIES) + 1)
            out[rank] = {
                name: list(col) for name, col in zip(("time", *SERIES), columns)
            }
        return out
