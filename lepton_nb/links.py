"""Bytes moved per link: a counter per (source rank, destination rank).

Every byte that lepton_nb's collectives send and its pushes deliver is
counted here, for the monitor and for ``cluster.link_bytes()``. The notebook
is source :data:`NOTEBOOK` (-1). Each process keeps its own counter; the
ranks count what they send, the notebook counts what it pushes.
"""

from __future__ import annotations

import threading
import time
from typing import Any

#: The source "rank" of bytes the notebook pushes.
NOTEBOOK = -1

Link = tuple[int, int]


class LinkCounter:
    """Thread-safe byte counts per (source, destination) link."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes: dict[Link, int] = {}
        self.since = time.time()

    def add(self, src: int, dst: int, nbytes: int) -> None:
        """Count ``nbytes`` moved from ``src`` to ``dst``."""
        if nbytes <= 0 or src == dst:
            return
        with self._lock:
            self._bytes[(src, dst)] = self._bytes.get((src, dst), 0) + int(nbytes)

    def snapshot(self) -> dict[Link, int]:
        """A copy of the counts: ``{(src, dst): bytes}``."""
        with self._lock:
            return dict(self._bytes)

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._bytes.clear()
            self.since = time.time()

    def total(self) -> int:
        """All bytes counted."""
        with self._lock:
            return sum(self._bytes.values())


#: This process's counter (on a rank: what the rank sent).
counter = LinkCounter()


def count(src: int, dst: int, nbytes: int) -> None:
    """Count bytes on this process's counter."""
    counter.add(src, dst, nbytes)


def local_bytes() -> dict[Link, int]:
    """This process's counts (what ``cluster.link_bytes()`` asks each rank for)."""
    return counter.snapshot()


def merge(*counts: dict[Link, int]) -> dict[Link, int]:
    """Sum several ``{(src, dst): bytes}`` dicts."""
    out: dict[Link, int] = {}
    for c in counts:
        for link, n in c.items():
            out[link] = out.get(link, 0) + n
    return dict(sorted(out.items()))


def table(counts: dict[Link, int]) -> str:
    """A readable listing, one link per line."""

    def name(r: int) -> str:
        return "notebook" if r == NOTEBOOK else f"rank {r}"

    if not counts:
        return "no bytes moved yet"
    return "\n".join(f"{name(s):>8} -> {name(d):<8} {_size(n):>10}" for (s, d), n in counts.items())


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class LinkBytes(dict):
    """``{(src, dst): bytes}`` that prints as a table (what ``cluster.link_bytes()`` returns)."""

    def __str__(self) -> str:
        return table(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(table(self))
