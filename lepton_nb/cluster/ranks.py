"""The one rank record, and the table of them that every part of the control plane reads.

A :class:`RankRecord` holds what is known of one rank: its number, the
engine behind it (id, engine set, and the engine's own :class:`EngineReport`
with host, address and pid), its place on its host, its device and GPU, and
its state. The :class:`RankTable` is the cluster's ranks in rank order; it
answers the questions that used to be asked of five different shapes: which
hosts there are, whether a rank is on the notebook's host, where the group's
store listens, and the placement a user sees.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from ..engine.identity import EngineReport
from ..errors import RankState


def process_alive(pid: int | None) -> bool:
    """Whether the process ``pid`` of this host runs (a zombie does not)."""
    if not pid:
        return False
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


@dataclass(frozen=True)
class RankRecord:
    """One rank: where it runs and on what. Replaced, never changed in place."""

    rank: int
    local_rank: int
    engine_id: int
    engine_set: str
    report: EngineReport
    gpu: int | None  # the physical GPU on its host; None for a CPU rank
    threads: int  # its share of its host's cores
    state: RankState = RankState.IDLE

    @property
    def host(self) -> str:
        """The host name the rank's engine reported."""
        return self.report.host

    @property
    def addr(self) -> str:
        """The address the rank's engine reaches the controller from (and is reached at)."""
        return self.report.addr

    @property
    def pid(self) -> int:
        """The rank's engine process id (on its host)."""
        return self.report.pid

    @property
    def device(self) -> str:
        """As the rank sees it: ``cuda:0`` (its one visible GPU) or ``cpu``."""
        return "cpu" if self.gpu is None else "cuda:0"

    def with_(self, **changes: Any) -> RankRecord:
        """A copy with ``changes`` (rank, local_rank, state, ...)."""
        return replace(self, **changes)

    def placement(self) -> dict[str, Any]:
        """The dict ``cluster.placement`` shows for this rank."""
        return {
            "rank": self.rank,
            "engine_id": self.engine_id,
            "host": self.host,
            "addr": self.addr,
            "local_rank": self.local_rank,
            "pid": self.pid,
            "device": self.device,
            "gpu": self.gpu,
        }


class RankTable:
    """The cluster's ranks, in rank order; ``table[r]`` is rank r's record."""

    def __init__(self, records: Iterable[RankRecord] = (), notebook_host: str | None = None):
        self._records = sorted(records, key=lambda r: r.rank)
        if [r.rank for r in self._records] != list(range(len(self._records))):
            raise ValueError(f"ranks must be 0..n-1, got {[r.rank for r in self._records]}")
        self.notebook_host = notebook_host or socket.gethostname()

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[RankRecord]:
        return iter(self._records)

    def __getitem__(self, rank: int) -> RankRecord:
        return self._records[rank]

    def __repr__(self) -> str:
        return f"<RankTable {len(self)} ranks on {list(self.hosts())}>"

    @property
    def world_size(self) -> int:
        """The number of ranks."""
        return len(self._records)

    def records(self) -> list[RankRecord]:
        """The records, in rank order (a copy of the list)."""
        return list(self._records)

    def hosts(self) -> dict[str, list[int]]:
        """host -> its ranks, hosts in the order of their first rank."""
        out: dict[str, list[int]] = {}
        for r in self._records:
            out.setdefault(r.host, []).append(r.rank)
        return out

    def is_local(self, rank: int | RankRecord) -> bool:
        """Whether a rank runs on the notebook's own host (the one place this is decided)."""
        record = rank if isinstance(rank, RankRecord) else self._records[rank]
        return record.host == self.notebook_host

    def process_gone(self, rank: int | RankRecord) -> bool:
        """Whether a rank on this host has lost its engine process (the hub may not know yet).

        Only a local rank's process can be looked at; another host's never counts as gone here.
        """
        record = rank if isinstance(rank, RankRecord) else self._records[rank]
        return self.is_local(record) and not process_alive(record.pid)

    def hosts_to_name(self) -> dict[int, str]:
        """rank -> host, for messages: every rank when the ranks span hosts or run elsewhere."""
        if not self.spans_hosts() and all(self.is_local(r) for r in self._records):
            return {}
        return {r.rank: r.host for r in self._records}

    def spans_hosts(self) -> bool:
        """Whether the ranks run on more than one host."""
        return len(self.hosts()) > 1

    def master_addr(self) -> str:
        """Where the process group's store listens: loopback on one host, rank 0's address across hosts."""
        return self._records[0].addr if self.spans_hosts() else "127.0.0.1"

    def engine_ids(self, ranks: Iterable[int] | None = None) -> dict[int, int]:
        """rank -> ipyparallel engine id, for ``ranks`` (default: all)."""
        chosen = range(len(self)) if ranks is None else ranks
        return {r: self._records[r].engine_id for r in chosen}

    def rank_of_engine(self, engine_id: int) -> int | None:
        """The rank whose engine is ``engine_id``; None when no rank has it."""
        return next((r.rank for r in self._records if r.engine_id == engine_id), None)

    def shrink_to(self, n: int) -> list[RankRecord]:
        """The ranks to stop to keep ``n``: each time the last rank of the fullest host (the later
        host on a tie), so hosts stay balanced and every host's ranks stay contiguous."""
        hosts = {h: list(ranks) for h, ranks in self.hosts().items()}
        gone: list[RankRecord] = []
        for _ in range(max(0, len(self) - n)):
            fullest = max(reversed(list(hosts)), key=lambda h: len(hosts[h]))
            gone.append(self._records[hosts[fullest].pop()])
            if not hosts[fullest]:
                del hosts[fullest]
        return gone

    def gpu_ranks(self) -> bool:
        """Whether every rank has a GPU (so NCCL can be used)."""
        return bool(self._records) and all(r.gpu is not None for r in self._records)

    def backend(self) -> str:
        """NCCL when every rank has a GPU, gloo otherwise."""
        return "nccl" if self.gpu_ranks() else "gloo"

    def placement(self) -> list[dict[str, Any]]:
        """One dict per rank: rank, engine_id, host, addr, local_rank, pid, device, gpu."""
        return [r.placement() for r in self._records]

    def with_state(self, ranks: Iterable[int], state: RankState) -> RankTable:
        """A table where ``ranks`` are in ``state``."""
        chosen = set(ranks)
        return RankTable(
            (r.with_(state=state) if r.rank in chosen else r for r in self._records),
            self.notebook_host,
        )
