"""One spare shared segment, allocated in the background for the next push.

Allocating fresh shared pages costs more than copying into them. After a
push has made a segment, the used segments are let go and a populated spare
of the same size is prepared off the notebook's path; the next push of new
content then only copies.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from . import segment


class Spare:
    """Holds at most one populated segment that no rank has mapped yet."""

    def __init__(self, running: Callable[[], bool], shm_dir: str = segment.SHM_DIR) -> None:
        self.enabled = True
        self.shm_dir = shm_dir
        self._running = running
        self._segment: segment.Segment | None = None
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def take(self, size: int) -> segment.Segment | None:
        """The spare if it fits ``size`` (without wasting more than half), else None."""
        with self._lock:
            seg = self._segment
            if seg is not None and size <= seg.size <= 2 * size:
                self._segment = None
                return seg
        return None

    def recycle(self, used: list[segment.Segment]) -> None:
        """In the background: let go of ``used`` segments, then prepare a spare of their size."""
        self._worker = threading.Thread(target=self._work, args=(list(used),), daemon=True)
        self._worker.start()

    def _work(self, used: list[segment.Segment]) -> None:
        size = max(seg.size for seg in used)
        try:  # background work: let the notebook's threads go first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except (OSError, AttributeError):
            pass
        for seg in used:
            seg.close()
        used.clear()
        if not self.enabled or not self._running():
            return
        try:
            fresh = segment.allocate(size, self.shm_dir, spill=False)  # only in shm, never spilled
        except OSError:
            return
        if fresh is None:
            return
        with self._lock:
            old, self._segment = self._segment, fresh
            if not self._running():  # stopped meanwhile
                old, self._segment = fresh, None
        if old is not None:
            old.close()

    def settle(self, timeout: float | None = None) -> None:
        """Wait for the background work to finish."""
        if self._worker is not None:
            self._worker.join(timeout)

    def close(self) -> None:
        """Release the spare (the cluster is stopping)."""
        self.settle(5.0)
        with self._lock:
            seg, self._segment = self._segment, None
        if seg is not None:
            seg.close()
