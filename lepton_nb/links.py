"""Bytes moved per link: a counter per (source rank, destination rank).

Every byte that lepton_nb's collectives send and its pushes deliver is
counted here, for the monitor and for ``cluster.link_bytes()``. The notebook
is source :data:`NOTEBOOK` (-1). Each process keeps its own counter; the
ranks count what they send, the notebook counts what it pushes. A
:class:`LinkRates` turns a counter into bytes per second per link.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from .units import size

if TYPE_CHECKING:  # pragma: no cover
    from IPython.lib.pretty import PrettyPrinter

#: The source "rank" of bytes the notebook pushes.
NOTEBOOK = -1

Link = tuple[int, int]

#: One link's row in a sample and a snapshot: ``[src, dst, bytes, bytes/s]``.
LinkRow = list[float]


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


class LinkRates:
    """Bytes per second of each link of a :class:`LinkCounter`, between two readings.

    The one place link rates are computed: each rank's sampler reads its own
    counter through one, the notebook's collector reads the notebook's. A rate
    is never negative: a count that went down (the counter was reset) reads 0.
    """

    def __init__(self, counter: LinkCounter) -> None:
        self.counter = counter
        self._last: tuple[float, dict[Link, int]] = (time.monotonic(), {})

    def rows(self) -> list[LinkRow]:
        """``[[src, dst, bytes, bytes/s], ...]`` by link, the rate since the previous call."""
        now, counts = time.monotonic(), self.counter.snapshot()
        then, before = self._last
        self._last = (now, counts)
        dt = now - then
        rows: list[LinkRow] = []
        for (src, dst), n in sorted(counts.items()):
            delta = n - before.get((src, dst), 0)
            rows.append([src, dst, n, delta / dt if dt > 0 and delta > 0 else 0.0])
        return rows


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
    return "\n".join(f"{name(s):>8} -> {name(d):<8} {size(n):>10}" for (s, d), n in counts.items())


class LinkBytes(dict[Link, int]):
    """``{(src, dst): bytes}`` that prints as a table (what ``cluster.link_bytes()`` returns)."""

    def __str__(self) -> str:
        return table(self)

    def _repr_pretty_(self, p: PrettyPrinter, cycle: bool) -> None:
        """IPython's pretty printer: the table, not the dict."""
        p.text(table(self))
