"""A cluster's snapshot: placement, state and latest sample of each rank, and link rates.

This one JSON-able dict is what ``cluster.metrics()`` reads from, what the
widget draws, and what the server streams and exports to Prometheus. Each
rank's state is decided here (:func:`rank_state`), for ``cluster.status()`` too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..cluster.ranks import process_alive
from ..errors import RankState
from .wire import VERSION, BadMessage, is_int, is_number

if TYPE_CHECKING:  # pragma: no cover
    from ..cluster.ranks import RankTable
    from ..topology import Topology

#: The states a rank can be in: the values of :class:`lepton_nb.errors.RankState`.
STATES = tuple(s.value for s in RankState)

#: The series the monitor charts for each rank, one point per snapshot (a row's ``series``).
SERIES: tuple[str, ...] = ("memory", "utilization", "sent")

#: A rank's sample as its sampler sent it (JSON: see :mod:`.sampler`).
Sample = dict[str, Any]
#: A cluster's snapshot (JSON: see :func:`build`).
Snapshot = dict[str, Any]


@dataclass(frozen=True)
class HubView:
    """What the ipyparallel hub says of the engines, where the caller asked it.

    Only the notebook's main thread may ask the hub (its client is not thread
    safe), so the collector's own snapshots go without; ``cluster.status()``
    passes one. ``registered``: the engine ids the hub lists; ``queued``: the
    engine ids with a request waiting or running.
    """

    registered: frozenset[int]
    queued: frozenset[int] = frozenset()


def rank_state(
    pid: int | None,
    sample: Sample | None,
    age: float | None,
    local: bool,
    dead_after: float,
    *,
    registered: bool = True,
    queued: bool = False,
) -> RankState:
    """idle, busy, dead or restarting: the one place a rank's state is decided.

    ``pid`` is the rank's engine process (None while the engine is being
    replaced); ``sample`` is its latest sample, ``age`` seconds old; ``local``
    says whether the engine runs on the notebook's host (then its process is
    looked at, and silence alone never makes it dead). ``registered`` is False
    once the hub has dropped the engine, ``queued`` True while the hub holds a
    request for it (busy before the next sample says so).
    """
    if not pid:
        return RankState.RESTARTING
    if not registered or (local and not process_alive(pid)):
        return RankState.DEAD
    if sample is None or sample.get("pid") != pid:
        return RankState.RESTARTING  # registered, not reporting yet: joining the group
    if not local and age is not None and age > dead_after:
        return RankState.DEAD
    return RankState.BUSY if sample.get("busy") or queued else RankState.IDLE


def _count(v: Any) -> bool:
    return is_int(v) and v >= 0


def _maybe(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _fields(shape: Mapping[str, Callable[[Any], bool]], optional: bool = False) -> Callable[[Any], bool]:
    """A check that a JSON object has each field of ``shape`` (absent is fine if ``optional``)."""
    return lambda v: isinstance(v, dict) and all(
        check(v[k]) if k in v else optional for k, check in shape.items()
    )


_RATES = _maybe(_fields({"tx_bytes_per_s": is_number, "rx_bytes_per_s": is_number}))
_NVML = _fields(
    {
        "index": _maybe(is_int),
        "memory_used": _count,
        "memory_total": _count,
        "utilization": _maybe(is_number),
        "pcie": _RATES,
        "nvlink": _RATES,
    },
    optional=True,
)

#: What each field of a sample must hold (see :meth:`.sampler.Sampler.read`).
SAMPLE_FIELDS: dict[str, Callable[[Any], bool]] = {
    "version": lambda v: is_int(v) and v == VERSION,
    "rank": _count,
    "pid": lambda v: is_int(v) and v > 0,
    "sender": lambda v: isinstance(v, str) and 0 < len(v) <= 64,
    "seq": _count,
    "time": is_number,
    "busy": lambda v: isinstance(v, bool),
    "busy_since": is_number,
    "collective": _maybe(lambda v: isinstance(v, str) and 0 < len(v) <= 64),
    "rss": _count,
    "cpu_percent": is_number,
    "memory_total": _count,
    "memory_available": _count,
    "torch": _maybe(_fields({"allocated": _count, "reserved": _count})),
    "nvml": _maybe(lambda v: _NVML(v) and ("memory_total" not in v or "memory_used" in v)),
    "links": lambda v: isinstance(v, list)
    and all(
        isinstance(r, list) and len(r) == 4 and is_int(r[0]) and is_int(r[1])
        and _count(r[2]) and is_number(r[3])
        for r in v
    ),  # fmt: skip
}


def check_sample(message: dict[str, Any]) -> Sample:
    """``message`` if every field is as a sampler sends it; else BadMessage naming the first wrong one.

    A signed sample still comes from outside the notebook (an engine's host),
    so nothing of it reaches a snapshot, the widget or Prometheus unchecked.
    """
    for name, check in SAMPLE_FIELDS.items():
        if name not in message:
            raise BadMessage(f"a sample without {name!r}")
        if not check(message[name]):
            raise BadMessage(f"a sample whose {name!r} is {message[name]!r:.80}")
    return message


def memory(sample: Sample | None) -> dict[str, Any] | None:
    """The figure a memory bar shows: GPU memory where NVML reads it, else the process RSS.

    ``{"kind": "gpu" | "torch" | "host", "used": bytes, "total": bytes or None}``.
    """
    if not sample:
        return None
    nvml = sample.get("nvml") or {}
    if nvml.get("memory_total"):
        return {"kind": "gpu", "used": nvml["memory_used"], "total": nvml["memory_total"]}
    torch = sample.get("torch")
    if torch:
        return {"kind": "torch", "used": torch["allocated"], "total": torch["reserved"] or None}
    if sample.get("rss") is not None:
        return {"kind": "host", "used": sample["rss"], "total": sample.get("memory_total")}
    return None


def series(sample: Sample | None, rank: int) -> tuple[dict[str, float | None], str]:
    """A rank's point of each :data:`SERIES`, and whose utilization it is (``"gpu"`` or ``"cpu"``).

    ``memory``: the bytes its memory bar shows (:func:`memory`: GPU memory on GPU
    ranks, else the RSS); ``utilization``: the GPU's utilization in % where NVML
    reads it, else the process's CPU %; ``sent``: bytes/s the rank sent on all its
    links. None where the sample does not say (no sample yet).
    """
    nvml = (sample or {}).get("nvml") or {}
    kind = "gpu" if nvml.get("utilization") is not None else "cpu"
    if not sample:
        return {"memory": None, "utilization": None, "sent": None}, kind
    used = memory(sample)
    util = nvml["utilization"] if kind == "gpu" else sample.get("cpu_percent")
    sent = sum(float(r[3]) for r in sample.get("links") or [] if int(r[0]) == rank)
    return {
        "memory": None if used is None else float(used["used"]),
        "utilization": None if util is None else float(util),
        "sent": sent,
    }, kind


def link_class(table: RankTable, src: int, dst: int, topology: Topology | None = None) -> str:
    """The class of the link ``src`` -> ``dst`` (``-1``: the notebook), as the monitor colours it.

    Between ranks, the discovered topology's class where there is one; else
    ``network`` across hosts and ``shm`` within one. From the notebook: ``shm``
    to a rank on its own host, else ``network``.
    """
    if src == -1 or dst == -1:
        other = dst if src == -1 else src
        return "shm" if 0 <= other < len(table) and table.is_local(other) else "network"
    if topology is not None and src != dst and max(src, dst) < topology.world_size:
        return topology.link(src, dst)
    if 0 <= src < len(table) and 0 <= dst < len(table):
        return "shm" if table[src].host == table[dst].host else "network"
    return "network"


def room(sample: Sample, ranks_on_host: int) -> int:
    """Bytes a task could still use on a rank: its GPU's free memory where NVML reads it, else
    its share of the host's memory (total / ranks there) less its RSS, at most what is available.
    """
    nvml = sample.get("nvml") or {}
    if nvml.get("memory_total"):
        return max(0, int(nvml["memory_total"]) - int(nvml.get("memory_used") or 0))
    share = int(sample["memory_total"]) // max(1, ranks_on_host) - int(sample["rss"])
    return max(0, min(share, int(sample["memory_available"])))


def link_rows(rows: Iterable[Sequence[float]]) -> list[dict[str, Any]]:
    """``[[src, dst, bytes, rate], ...]`` as dicts."""
    return [
        {"src": int(src), "dst": int(dst), "bytes": int(n), "rate": float(rate)}
        for src, dst, n, rate in rows
    ]


def build(
    cluster_id: str,
    table: RankTable,
    samples: Mapping[int, tuple[float, Sample]],
    notebook_links: Iterable[Sequence[float]],
    dead_after: float,
    extra: Mapping[str, Any] | None = None,
    hub: HubView | None = None,
    topology: Topology | None = None,
) -> Snapshot:
    """The snapshot of one cluster.

    ``table`` holds each rank's record (engine, host, pid, device, gpu, and
    whether it is restarting); ``samples`` maps rank to (monotonic receive
    time, latest sample); ``notebook_links`` are the notebook's own link rows;
    ``hub``, when given, adds what the hub says (see :class:`HubView`);
    ``topology``, when discovered, names the class of each link between ranks.
    Each rank's row has its point of each :data:`SERIES` (``series``), each
    link its ``class`` (:func:`link_class`).
    """
    now = time.monotonic()
    ranks, links = [], link_rows(notebook_links)
    for rec in table:
        restarting = rec.state is RankState.RESTARTING
        received, sample = samples.get(rec.rank, (None, None))
        if sample is not None and sample.get("pid") != rec.pid:
            received, sample = None, None  # from the engine this rank had before
        age = None if received is None else now - received
        state = rank_state(
            None if restarting else rec.pid,
            sample,
            age,
            table.is_local(rec),
            dead_after,
            registered=hub is None or rec.engine_id in hub.registered,
            queued=hub is not None and rec.engine_id in hub.queued,
        )
        points, utilization_kind = series(sample, rec.rank)
        row: dict[str, Any] = {
            "rank": rec.rank,
            "engine_id": None if restarting else rec.engine_id,
            "host": rec.host,
            "pid": rec.pid,
            "device": rec.device,
            "gpu": rec.gpu,
            "state": state.value,
            "age": age,
            "memory": memory(sample),
            "series": points,
            "utilization_kind": utilization_kind,
        }
        if sample is not None:
            for k in ("time", "busy_since", "rss", "cpu_percent", "memory_total", "torch", "nvml"):
                row[k] = sample.get(k)
            sent = link_rows(sample.get("links") or [])
            row["links"] = sent
            links += sent
        ranks.append(row)
    for link in links:
        link["class"] = link_class(table, link["src"], link["dst"], topology)
    snap: Snapshot = {
        "type": "snapshot",
        "cluster": cluster_id,
        "time": time.time(),
        "world_size": len(table),
        "notebook": {"host": table.notebook_host},
        "ranks": ranks,
        "links": sorted(links, key=lambda x: (x["src"], x["dst"])),
    }
    snap.update(extra or {})
    return snap
