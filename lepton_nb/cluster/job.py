"""Work sent to a set of ranks: one message per rank, waited on with a timeout.

A :class:`Job` sends code (``execute``) or a function (``apply``) to each
selected rank, relays the ranks' output while it waits, and sorts what comes
back into results and :class:`~lepton_nb.errors.RankFailure` objects.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ipyparallel import error as ipp_error

from ..errors import ClusterError, RankFailure
from .output import RankOutput

if TYPE_CHECKING:  # pragma: no cover
    from ipyparallel import Client

# _send_on_stream: requests go through the client's ZMQStream, never its raw
# socket. A send on the raw DEALER socket can swallow the edge-triggered
# notification that a reply is waiting, and the reply then sits unread
# (seen in a kernel as a cell that never finishes).
#
# ipyparallel has no public call that sends one request to one engine with a
# per-message hook, so this module does what DirectView does inside: it takes the
# engine's identity from Client._build_targets and sends on Client._mux_stream.
# pyproject.toml pins ipyparallel to the minor versions this is tested with, and
# check_client() names what is missing if a release ever changes it.

#: The ipyparallel releases whose private API this module uses (pinned in pyproject.toml).
TESTED_IPYPARALLEL = ">=9.2,<9.3"
_PRIVATE_API = ("_build_targets", "_mux_stream")

#: Seconds to wait for a finished rank's trailing output before giving up on it.
OUTPUT_GRACE_S = 5.0


@dataclass
class JobOutcome:
    """What came back: values of the ranks that finished, failures, and ranks still running."""

    results: dict[int, Any] = field(default_factory=dict)
    failures: dict[int, RankFailure] = field(default_factory=dict)
    pending: list[int] = field(default_factory=list)


def check_client(client: Client) -> None:
    """Raise ClusterError, naming the missing ipyparallel attribute, if ``client`` lacks one."""
    missing = [name for name in _PRIVATE_API if not hasattr(client, name)]
    if missing:
        import ipyparallel

        raise ClusterError(
            f"lepton_nb needs ipyparallel{TESTED_IPYPARALLEL}: this ipyparallel "
            f"{ipyparallel.__version__} has no Client.{', Client.'.join(missing)}; "
            f"install a tested release: pip install 'ipyparallel{TESTED_IPYPARALLEL}'"
        )


def failure_from(rank: int, value: Any) -> RankFailure | None:
    """A RankFailure if ``value`` is an ipyparallel error, else None."""
    if isinstance(value, ipp_error.RemoteError):
        return RankFailure(
            rank, value.ename or "RemoteError", str(value.evalue), value.traceback or ""
        )
    if isinstance(value, ipp_error.TaskAborted):
        return RankFailure(rank, "TaskAborted", "the task was aborted before it ran")
    if isinstance(value, (ipp_error.EngineError, ipp_error.KernelError)):
        return RankFailure(rank, type(value).__name__, str(value))
    return None


class Job:
    """Messages in flight to ranks, with their output relayed through a :class:`RankOutput`."""

    def __init__(self, client: Client, output: RankOutput | None = None) -> None:
        check_client(client)
        self.client = client
        self.output = output
        self.events: queue.SimpleQueue = output.events if output else queue.SimpleQueue()
        self.futures: dict[int, Any] = {}
        self._running: set[int] = set()
        self._unflushed: set[int] = set()

    # -- sending ---------------------------------------------------------
    def _hook(self, rank: int) -> Callable[[Any], None]:
        def hook(future: Any) -> None:
            if self.output is not None:
                future.iopub_callbacks.append(self.output.iopub_callback(rank))
            future.add_done_callback(lambda f: self.events.put(("done", rank, None)))
            out = getattr(future, "output", None)
            if out is not None:
                out.add_done_callback(lambda f: self.events.put(("idle", rank, None)))
            else:
                self.events.put(("idle", rank, None))

        return hook

    def _ident(self, engine_id: int) -> bytes:
        idents, _ = self.client._build_targets([engine_id])
        return idents[0]

    def execute(self, engines: dict[int, int], code: str) -> Job:
        """Send ``code`` to every rank in ``engines`` (rank -> engine id)."""
        for rank, eid in engines.items():
            self._running.add(rank)
            self._unflushed.add(rank)
            self.futures[rank] = self.client.send_execute_request(
                self.client._mux_stream,  # as DirectView does; see _send_on_stream
                code,
                silent=False,
                ident=self._ident(eid),
                message_future_hook=self._hook(rank),
            )
        return self

    def apply(
        self,
        engines: dict[int, int],
        fn: Callable[..., Any],
        args_by_rank: Mapping[int, Sequence[Any]] | None = None,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Job:
        """Call ``fn`` on every rank in ``engines``; ``args_by_rank`` overrides ``args`` per rank."""
        for rank, eid in engines.items():
            rank_args = list(args_by_rank[rank]) if args_by_rank else list(args)
            self._running.add(rank)
            self._unflushed.add(rank)
            self.futures[rank] = self.client.send_apply_request(
                self.client._mux_stream,  # as DirectView does; see _send_on_stream
                fn,
                rank_args,
                dict(kwargs or {}),
                ident=self._ident(eid),
                message_future_hook=self._hook(rank),
            )
        return self

    def merge(self, earlier: Job) -> Job:
        """Take in the ranks of a job sent before this one to other ranks (one outcome for both)."""
        for rank, future in earlier.futures.items():
            if rank not in self.futures:
                self.futures[rank] = future
                if rank in earlier.running:
                    self._running.add(rank)
        return self

    # -- waiting ---------------------------------------------------------
    @property
    def running(self) -> list[int]:
        """Ranks whose reply has not come back."""
        return sorted(self._running)

    def wait(self, timeout: float | None, stop_when: Callable[[], bool] | None = None) -> bool:
        """Relay output until every rank replied or ``timeout`` seconds passed.

        Returns True when every rank replied. Waits in short slices, so a
        KeyboardInterrupt in the notebook is felt at once; ``stop_when`` is asked
        after each slice, and a True ends the wait early (returning False).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._running:
            remaining = 0.5 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._next_event(min(remaining, 0.5))
            if stop_when is not None and self._running and stop_when():
                return False
        # the reply can overtake the last output; wait for each rank's idle
        grace = time.monotonic() + OUTPUT_GRACE_S
        while self._unflushed and time.monotonic() < grace:
            self._next_event(grace - time.monotonic())
        return True

    def lost(self) -> list[int]:
        """Ranks whose engine died before replying (ipyparallel answered with an EngineError).

        The client answers for a dead engine with a wrapped error whose ename is EngineError
        (or, for some requests, the EngineError itself).
        """
        lost = []
        for r, f in self.futures.items():
            if not f.done():
                continue
            exc = f.exception()
            failure = failure_from(r, exc if exc is not None else f.result())
            if isinstance(exc, ipp_error.EngineError) or (failure and failure.ename == "EngineError"):
                lost.append(r)
        return sorted(lost)

    def pump(self) -> list[int]:
        """Take in whatever has arrived, without waiting; the ranks still running."""
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                return self.running
            self._handle(*event)

    def _next_event(self, timeout: float) -> None:
        try:
            kind, rank, msg = self.events.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return
        self._handle(kind, rank, msg)

    def _handle(self, kind: str, rank: int, msg: Any) -> None:
        if kind == "done":
            self._running.discard(rank)
        elif kind == "idle":
            self._unflushed.discard(rank)
        elif self.output is not None and rank in self.futures:
            self.output.handle(rank, msg)

    def outcome(self) -> JobOutcome:
        """Sort the replies into results and failures; ranks without a reply are pending."""
        out = JobOutcome(pending=self.running)
        for rank, future in sorted(self.futures.items()):
            if rank in self._running or not future.done():
                continue
            exc = future.exception()
            value = exc if exc is not None else future.result()
            if exc is not None and not isinstance(exc, ipp_error.KernelError):
                out.failures[rank] = RankFailure(rank, type(exc).__name__, str(exc))
                continue
            failure = failure_from(rank, value)
            if failure is not None:
                out.failures[rank] = failure
            else:
                out.results[rank] = value
        return out
