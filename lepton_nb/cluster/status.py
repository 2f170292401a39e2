"""The state of each rank: what ``%lepton_cluster status`` shows.

Memory and liveness are read on the notebook's side (psutil for a local
engine process, NVML for its GPU), so status answers even while every rank
is busy in a long cell.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import psutil

from .. import _nvml

if TYPE_CHECKING:  # pragma: no cover
    from .core import Cluster

COLUMNS = ("rank", "engine", "host", "pid", "device", "memory", "state")


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _sampled_memory(cluster: Cluster) -> dict[int, tuple[int, int | None]]:
    """rank -> (used, total) from the ranks' latest metrics samples (what a remote rank says)."""
    collector = cluster.collector
    if collector is None:
        return {}
    out = {}
    for row in collector.ranks(wait=0.0):
        mem = row.get("memory")
        if mem and mem.get("used") is not None:
            out[row["rank"]] = (int(mem["used"]), mem.get("total"))
    return out


def rank_rows(cluster: Cluster) -> list[dict[str, Any]]:
    """One row per rank: rank, engine, host, pid, device, memory used/total, state."""
    table = cluster.ranks
    alive_ids = set(cluster.client.ids)
    # The hub learns that a request finished a moment after this client does; with nothing
    # of ours outstanding, a queue it still counts is stale, not work.
    try:
        queues = cluster.client.queue_status() if cluster.client.outstanding else {}
    except Exception:
        queues = {}
    sampled = _sampled_memory(cluster)
    rows = []
    for rec in table:
        used: int | None = None
        total: int | None = None
        state = "idle" if rec.engine_id in alive_ids else "dead"
        if table.is_local(rec):  # read here, so status answers even while every rank is busy
            try:
                proc = psutil.Process(rec.pid)
                if rec.gpu is None:
                    used, total = proc.memory_info().rss, psutil.virtual_memory().total
            except psutil.NoSuchProcess:
                state = "dead"
            if rec.gpu is not None:
                mem = _nvml.memory(rec.gpu)
                if mem:
                    used, total = mem
        elif rec.rank in sampled:
            used, total = sampled[rec.rank]
        q = queues.get(rec.engine_id, {})
        if state != "dead" and isinstance(q, dict) and q.get("queue", 0):
            state = "busy"
        memory = f"{_gib(used)} / {_gib(total)}" if used is not None and total else "n/a"
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
                "state": state,
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
