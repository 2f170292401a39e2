"""A push in flight."""

from __future__ import annotations

import threading


class PushFuture:
    """A push in flight: ``done()``, ``wait(timeout)``, ``result(timeout)``.

    The transfer that made it reports progress through :meth:`set_sent` and
    :meth:`set_result` / :meth:`set_exception`, as an executor does with a
    :class:`concurrent.futures.Future`.
    """

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

    def sent(self) -> bool:
        """True once every rank's message is on the wire: later work is ordered after it."""
        return self._sent.is_set()

    def wait_sent(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the messages to be on the wire; True when they are."""
        return self._sent.wait(timeout)

    def set_sent(self) -> None:
        """Record that the messages are on the wire (for the transfer that made this future)."""
        self._sent.set()

    def set_result(self) -> None:
        """Record that every rank bound the values (for the transfer that made this future)."""
        self._finish(None)

    def set_exception(self, error: BaseException) -> None:
        """Record that the push failed with ``error`` (for the transfer that made this future)."""
        self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        self._error = error
        self._sent.set()
        self._done.set()

    def __repr__(self) -> str:
        state = "failed" if self._error else "done" if self.done() else "pending"
        return f"<PushFuture {state}>"
