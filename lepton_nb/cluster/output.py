"""Relay each rank's output into the notebook, prefixed ``[rank r]``.

Messages arrive on ipyparallel's IO thread; they are queued and written by
the thread that waits on the ranks (the notebook's own cell), so output lands
in the right cell. Streams are cut at line ends, so lines from two ranks are
never interleaved mid-line.
"""

from __future__ import annotations

import queue
import sys
from collections.abc import Callable
from typing import Any


def _publish(data: dict[str, Any], metadata: dict[str, Any] | None) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import publish_display_data
    except ImportError:  # pragma: no cover - IPython is a dependency
        get_ipython = None  # type: ignore[assignment]
    if get_ipython is not None and get_ipython() is not None:
        publish_display_data(data, metadata=metadata)
    else:
        print(data.get("text/plain", ""))


class RankOutput:
    """Collects iopub messages per rank and writes them prefixed and line by line.

    With ``stream=False`` nothing is written until :meth:`close`, which then
    writes each rank's output as a block, in rank order.
    """

    def __init__(self, stream: bool = True) -> None:
        self.stream = stream
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self._partial: dict[tuple[int, str], str] = {}
        self._held: dict[int, list[dict[str, Any]]] = {}

    def iopub_callback(self, rank: int) -> Callable[[dict[str, Any]], None]:
        """A callback for one rank's iopub messages (called on the IO thread)."""

        def on_msg(msg: dict[str, Any]) -> None:
            kind = msg["header"]["msg_type"]
            if kind in ("stream", "display_data", "execute_result"):
                self.events.put(("output", rank, msg))

        return on_msg

    def handle(self, rank: int, msg: dict[str, Any]) -> None:
        """Write (or hold, without streaming) one message from ``rank``."""
        if not self.stream:
            self._held.setdefault(rank, []).append(msg)
            return
        self._write(rank, msg)

    def _write(self, rank: int, msg: dict[str, Any]) -> None:
        kind = msg["header"]["msg_type"]
        content = msg["content"]
        if kind == "stream":
            name = content.get("name", "stdout")
            text = self._partial.pop((rank, name), "") + content.get("text", "")
            *lines, rest = text.split("\n")
            if rest:
                self._partial[(rank, name)] = rest
            if lines:
                self._emit(rank, name, lines)
        elif kind == "execute_result":
            self._flush_rank(rank)
            text = content.get("data", {}).get("text/plain", "")
            self._emit(rank, "stdout", f"Out: {text}".split("\n"))
        elif kind == "display_data":
            self._flush_rank(rank)
            self._emit(rank, "stdout", [""])
            md = dict(content.get("metadata") or {})
            md["lepton_rank"] = rank
            _publish(content.get("data", {}), md)

    @staticmethod
    def _emit(rank: int, name: str, lines: list[str]) -> None:
        out = sys.stderr if name == "stderr" else sys.stdout
        prefix = f"[rank {rank}] "
        out.write("".join(prefix + line + "\n" for line in lines))
        out.flush()

    def _flush_rank(self, rank: int) -> None:
        for name in ("stdout", "stderr"):
            rest = self._partial.pop((rank, name), "")
            if rest:
                self._emit(rank, name, [rest])

    def close(self) -> None:
        """Write whatever is held or unterminated."""
        for rank in sorted(self._held):
            for msg in self._held.pop(rank):
                self._write(rank, msg)
        for rank in sorted({r for r, _ in self._partial}):
            self._flush_rank(rank)
