"""One copy per host: a push to another host crosses the network once, not once per rank.

When two or more ranks of another host need the same arrays, the host's
first rank among them receives the compressed bytes and unpacks them into a
shared segment of its host (``unpack``); the host's other ranks then map that
segment copy-on-write (``shared``), as ranks on the notebook's host map the
notebook's. A host with one rank that needs anything just gets the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class HostCopy:
    """The arrays one remote host needs, and who on it needs which."""

    host: str
    leader: int
    items: dict[int, Any] = field(default_factory=dict)  # value id -> what to send for it
    users: list[tuple[int, str, int]] = field(default_factory=list)  # (rank, name, value id)

    def leader_binds(self) -> list[tuple[str, str]]:
        """(name, item) the leader binds itself."""
        return [(name, str(vid)) for r, name, vid in self.users if r == self.leader]

    def peers(self) -> list[tuple[int, str, int]]:
        """(rank, name, value id) of the host's other ranks: they map the leader's segment."""
        return [u for u in self.users if u[0] != self.leader]


def plan(
    users: list[tuple[int, str, int]], host_of: Callable[[int], str]
) -> tuple[list[tuple[int, str, int]], list[HostCopy]]:
    """Split remote (rank, name, value id) needs into direct sends and per-host copies."""
    by_host: dict[str, list[tuple[int, str, int]]] = {}
    for u in users:
        by_host.setdefault(host_of(u[0]), []).append(u)
    direct: list[tuple[int, str, int]] = []
    copies: list[HostCopy] = []
    for host, needs in by_host.items():
        ranks = sorted({r for r, _, _ in needs})
        if len(ranks) < 2:
            direct += needs
            continue
        copies.append(HostCopy(host, ranks[0], users=needs))
    return direct, copies
