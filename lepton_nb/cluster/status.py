"""The state of each rank: what ``%lepton_cluster status`` shows.

Each rank's state is the metrics snapshot's (one rule, the same the monitor
and the Lab panel show), told what the hub knows too. Memory of a rank on the
notebook's host is read here (psutil for its process, NVML for its GPU), so
status answers even while every rank is busy in a long cell.
"""

from __future__ import annotations

import html
import time
from typing import TYPE_CHECKING, Any

import psutil

from .. import _nvml
from ..errors import ClusterError
from ..metrics.snapshot import HubView
from ..units import size

if TYPE_CHECKING:  # pragma: no cover
    from .core import Cluster
    from .ranks import RankRecord

COLUMNS = ("rank", "engine", "host", "pid", "device", "memory", "state")

def _hub(cluster: Cluster) -> HubView:
    """The engines the hub lists, and those it holds a request for (main thread only)."""
    client = cluster.client
    # The hub learns that a request finished a moment after this client does; with nothing
    # of ours outstanding, a queue it still counts is stale, not work.
    try:
        queues = client.queue_status() if client.outstanding else {}
    except Exception:
        queues = {}
    queued = {eid for eid, q in queues.items() if isinstance(q, dict) and q.get("queue", 0)}
    return HubView(frozenset(client.ids), frozenset(queued))


def _states(cluster: Cluster) -> dict[int, dict[str, Any]]:
    """rank -> its snapshot row, told what the hub says.

    Start and restart return once each new engine's first sample is in, and a
    rank shown dead is one :meth:`Cluster.engines` refuses, so there is nothing
    to wait for here.
    """
    collector = cluster.collector
    if collector is None:  # only while not running: the collector starts and stops with it
        from .core import NO_CLUSTER

        raise ClusterError(NO_CLUSTER)
    hub = _hub(cluster)
    rows = collector.ranks(hub=hub)
    # a sample taken during a request that has since ended says busy for up to one interval:
    # where the hub holds no request of ours, wait (at most an interval and a half) for a
    # sample taken from now on, so a request that just finished never shows as running
    engines = cluster.ranks.engine_ids()
    unsure = [r["rank"] for r in rows if r["state"] == "busy" and engines.get(r["rank"]) not in hub.queued]
    if unsure:
        collector.wait_for_new_samples(unsure, time.monotonic(), 1.5 * collector.interval)
        rows = collector.ranks(hub=hub)
    return {r["rank"]: r for r in rows}


def _local_memory(rec: RankRecord) -> tuple[int | None, int | None]:
    """(used, total) read here for a rank on the notebook's host: its GPU, else its RSS."""
    if rec.gpu is not None:
        return _nvml.memory(rec.gpu) or (None, None)
    try:
        return psutil.Process(rec.pid).memory_info().rss, psutil.virtual_memory().total
    except psutil.NoSuchProcess:
        return None, None


def rank_rows(cluster: Cluster) -> list[dict[str, Any]]:
    """One row per rank: rank, engine, host, pid, device, memory used/total, state.

    The state is the metrics snapshot's (:func:`lepton_nb.metrics.snapshot.rank_state`),
    with what the hub says added: a rank shows busy without waiting for its next
    sample, and a rank shown dead is one the cluster refuses to run on. Memory of
    a rank on this host is read here, so status answers even while every rank is
    busy; another host's comes from its latest sample.
    """
    snap = _states(cluster)
    table = cluster.ranks
    rows = []
    for rec in table:
        sampled = snap.get(rec.rank, {})
        used: int | None = None
        total: int | None = None
        if table.is_local(rec):
            used, total = _local_memory(rec)
        elif sampled.get("memory") and sampled["memory"].get("used") is not None:
            used, total = int(sampled["memory"]["used"]), sampled["memory"].get("total")
        memory = f"{size(used)} / {size(total)}" if used is not None and total else "n/a"
        device = rec.device if rec.gpu is None else f"{rec.device} (GPU {rec.gpu})"
        rows.append(
            {
                "rank": rec.rank,
                "engine": rec.engine_id,
                "host": rec.host,
                "pid": rec.pid,
                "device": device,
                "memory": memory,
                "memory_used": used,
                "memory_total": total,
                "state": sampled.get("state", "restarting"),
            }
        )
    return rows


class StatusTable:
    """Rows shown as an HTML table in a notebook and as aligned text elsewhere."""

    def __init__(self, rows: list[dict[str, Any]], title: str = "") -> None:
        self.rows = rows
        self.title = title

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{c}</th>" for c in COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in COLUMNS) + "</tr>"
            for r in self.rows
        )
        title = f"<p>{html.escape(self.title)}</p>" if self.title else ""
        return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        cells = [list(COLUMNS)] + [[str(r[c]) for c in COLUMNS] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
        return "\n".join(([self.title] if self.title else []) + lines)
