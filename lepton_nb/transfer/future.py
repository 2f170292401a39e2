"""A push in flight."""

from __future__ import annotations

import threading


class PushFuture:
    """A push in flight: ``done()``, ``wait(timeout)``, ``result(timeout)``."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._sent = threading.Event()
        self._error: BaseException | None = None

    def done(self) -> bool:
        """True once every rank has bound the values (or the push failed)."""
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds; True when done."""
        return self._done.wait(timeout)

    def result(self, timeout: float | None = None) -> None:
        """Wait, then raise the push's error if it failed; TimeoutError if not done in time."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"push not finished after {timeout} s")
        if self._error is not None:
            raise self._error

    def _finish(self, error: BaseException | None = None) -> None:
        self._error = error
        self._sent.set()
        self._done.set()

    def __repr__(self) -> str:
        state = "failed" if self._error else "done" if self.done() else "pending"
        return f"<PushFuture {state}>"
