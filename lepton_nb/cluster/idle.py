"""Stopping a cluster nobody uses: ``c.Cluster.idle_timeout`` seconds with no cell, run, push or pull.

Work in flight (a long cell, a Trainer epoch, a push) is use, however long it
takes; only the time between operations counts. The cluster stops itself from
a daemon thread, and its next use says why and how to start it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

IDLE_STOPPED = (
    "The cluster stopped itself after {timeout:g} s without a cell, run, push or pull "
    "(this site's c.Cluster.idle_timeout = {timeout:g}). Start it again with: {command}"
)


class Usage:
    """When the cluster was last used, and whether something is using it now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._last = time.monotonic()

    @contextmanager
    def active(self) -> Iterator[None]:
        """Mark an operation in flight for its whole length."""
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                self._last = time.monotonic()

    def idle_for(self) -> float:
        """Seconds since the last operation ended; 0 while one runs."""
        with self._lock:
            return 0.0 if self._active else time.monotonic() - self._last


class IdleStop(threading.Thread):
    """Calls ``stop`` once ``usage`` has been idle for ``timeout`` seconds."""

    def __init__(self, usage: Usage, timeout: float, stop: Callable[[], None]) -> None:
        super().__init__(name="lepton-idle-stop", daemon=True)
        self.usage, self.timeout, self._stop_cluster = usage, timeout, stop
        self._closing = threading.Event()

    def run(self) -> None:
        check = min(5.0, max(0.2, self.timeout / 10))
        while not self._closing.wait(check):
            if self.usage.idle_for() >= self.timeout:
                log.warning("stopping the cluster after %g s without use", self.timeout)
                self._stop_cluster()
                return

    def close(self) -> None:
        self._closing.set()
