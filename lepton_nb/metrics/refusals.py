"""Refused input, logged once per flood: the first refusal, then a count every so often.

Every channel lepton_nb reads from outside (the collector's metrics socket,
the server's runtime files, snapshots and WebSocket frames) counts what it
refuses in a :class:`Refusals`. A thousand bad messages a second log one
warning, then at most one summary line every :attr:`Refusals.every` seconds.
"""

from __future__ import annotations

import logging
import threading
import time


class Refusals:
    """Counts refusals on one channel and logs them without flooding the log."""

    def __init__(self, log: logging.Logger, what: str, every: float = 10.0) -> None:
        self.log, self.what, self.every = log, what, every
        self.count = 0
        #: time.monotonic() of the last line logged (None: none yet)
        self.logged_at: float | None = None
        self._quiet = 0  # refused and not logged yet
        self._last_reason = ""
        self._lock = threading.Lock()  # the collector refuses in its thread and in receive()'s callers

    def refuse(self, reason: object) -> None:
        """Count one refusal; log it when no line was logged in the last ``every`` seconds."""
        with self._lock:
            self.count += 1
            self._quiet += 1
            self._last_reason = str(reason)
            if self._due():
                self._line()

    def flush(self) -> None:
        """Log how many were refused quietly, once ``every`` seconds passed since the last line."""
        with self._lock:
            if self._quiet and self._due():
                self._line()

    def _due(self) -> bool:
        return self.logged_at is None or time.monotonic() - self.logged_at >= self.every

    def _line(self) -> None:
        now = time.monotonic()
        if self._quiet == 1:
            self.log.warning("%s (%d in all): %s", self.what, self.count, self._last_reason)
        else:
            self.log.warning(
                "%s: %d in the last %.0f s (%d in all), the latest: %s",
                self.what,
                self._quiet,
                now - (self.logged_at or now),
                self.count,
                self._last_reason,
            )
        self.logged_at, self._quiet = now, 0
