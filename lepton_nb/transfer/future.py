"""A push in flight."""

from __future__ import annotations

import threading
from collections.abc import Callable


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
        self._callbacks: list[Callable[[PushFuture], None]] = []
        self._lock = threading.Lock()

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

    def ok(self) -> bool:
        """True once done without an error."""
        return self._done.is_set() and self._error is None

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

    def add_done_callback(self, fn: Callable[[PushFuture], None]) -> None:
        """Call ``fn(future)`` once the push is done (at once if it is), as
        :meth:`concurrent.futures.Future.add_done_callback` does."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(fn)
                return
        fn(self)

    def _finish(self, error: BaseException | None) -> None:
        self._error = error
        self._sent.set()
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(self)

    def __repr__(self) -> str:
        state = "failed" if self._error else "done" if self.done() else "pending"
        return f"<PushFuture {state}>"
