"""What happened to a cluster, on the monitor's time axis: ranks died or restarted, pushes, cells.

The cluster tells its :class:`Events` when a cell or a push starts and ends;
the collector, publishing each snapshot, tells it each rank's state and
engine process (:meth:`Events.track`), from which a death or a restart is
an event. Every snapshot carries the recent events (:meth:`Events.recent`),
so a client that skipped snapshots still sees each one (it keeps them by id).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: The kinds of event, as the monitor colours them.
KINDS: tuple[str, ...] = (
    "rank_died",
    "rank_restarted",
    "push_started",
    "push_ended",
    "cell_started",
    "cell_ended",
)
#: Seconds of events kept, as of the monitor's charts.
KEEP_S = 300.0
#: Events kept at most, and sent with each snapshot at most.
MAX_KEPT, MAX_SENT = 1000, 100


@dataclass(frozen=True)
class Event:
    """One event: ``id`` (increasing), ``time`` (epoch seconds), ``kind``, ``rank`` (or None), ``text``."""

    id: int
    time: float
    kind: str
    rank: int | None
    text: str


class Events:
    """The events of one cluster, newest last; any thread may add or read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: deque[Event] = deque(maxlen=MAX_KEPT)
        self._ids = itertools.count(1)
        self._seen: dict[int, tuple[int | None, str]] = {}  # rank -> (pid, state) last tracked

    def add(self, kind: str, text: str, rank: int | None = None) -> Event:
        """Record an event of ``kind`` (one of :data:`KINDS`) now."""
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; one of {', '.join(KINDS)}")
        with self._lock:
            event = Event(next(self._ids), time.time(), kind, rank, text)
            self._events.append(event)
        return event

    def started(self, what: str, text: str) -> Callable[[str], None]:
        """Record ``<what>_started`` now (``what``: ``"cell"`` or ``"push"``); the function
        returned records ``<what>_ended``, its argument added to ``text`` (e.g. ``"failed"``)."""
        self.add(f"{what}_started", f"{text} started")
        pending = [True]

        def ended(outcome: str = "ended") -> None:
            with self._lock:  # once, whoever calls it first
                first = bool(pending) and pending.pop()
            if first:
                self.add(f"{what}_ended", f"{text} {outcome}")

        return ended

    def track(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Each rank's ``rank``, ``pid`` and ``state`` (snapshot rows): a rank that turned dead
        died; one whose engine process changed was restarted."""
        for row in rows:
            rank, pid, state = row["rank"], row.get("pid"), row["state"]
            with self._lock:
                before = self._seen.get(rank)
                known = pid or (before[0] if before else None)  # the last engine, while none
                self._seen[rank] = (known, state)
            if before is None:
                continue
            old_pid, old_state = before
            if state == "dead" and old_state != "dead":
                self.add("rank_died", f"rank {rank} died (engine pid {pid})", rank)
            elif pid and old_pid and pid != old_pid:
                self.add("rank_restarted", f"rank {rank} restarted (engine pid {pid})", rank)

    def restarting(self, rank: int, pid: int, died: bool) -> None:
        """Rank ``rank`` (engine ``pid``) is being replaced; ``died``: its engine is gone. A death
        not yet seen by :meth:`track` is recorded now (the replacement may be quicker than the
        next snapshot); the restart is, once the new engine shows in a snapshot."""
        with self._lock:
            before = self._seen.get(rank)
            seen_dead = before is not None and before[1] == "dead"
            self._seen[rank] = (pid, "dead" if died else "restarting")
        if died and not seen_dead:
            self.add("rank_died", f"rank {rank} died (engine pid {pid})", rank)

    def recent(self, seconds: float = KEEP_S, limit: int = MAX_SENT) -> list[dict[str, Any]]:
        """The events of the last ``seconds``, at most ``limit`` (the newest), oldest first."""
        since = time.time() - seconds
        with self._lock:
            events = [e for e in self._events if e.time >= since]
        return [asdict(e) for e in events[-limit:]] if limit > 0 else []
