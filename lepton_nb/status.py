"""The state of each rank: what ``%lepton_cluster status`` shows.

Memory and liveness are read on the notebook's side (psutil for a local
engine process, NVML for its GPU), so status answers even while every rank
is busy in a long cell.
"""

from __future__ import annotations

import html
import socket
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:  # pragma: no cover
    from .cluster import Cluster

COLUMNS = ("rank", "engine", "host", "pid", "device", "memory", "state")


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _gpu_memory(index: int) -> tuple[int, int] | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
            return int(info.used), int(info.total)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no NVML here: memory is unknown, not an error
        return None


def rank_rows(cluster: Cluster) -> list[dict[str, Any]]:
    """One row per rank: rank, engine, host, pid, device, memory used/total, state."""
    here = socket.gethostname()
    alive_ids = set(cluster.client.ids)
    try:
        queues = cluster.client.queue_status()
    except Exception:
        queues = {}
    rows = []
    for p, slot in zip(cluster.placement, cluster.slots):
        used = total = None
        state = "idle"
        if p["engine_id"] not in alive_ids:
            state = "dead"
        if p["host"] == here:
            try:
                proc = psutil.Process(p["pid"])
                if slot.gpu is None:
                    used, total = proc.memory_info().rss, psutil.virtual_memory().total
            except psutil.NoSuchProcess:
                state = "dead"
            if slot.gpu is not None:
                mem = _gpu_memory(slot.gpu)
                if mem:
                    used, total = mem
        q = queues.get(p["engine_id"], {})
        if state != "dead" and isinstance(q, dict) and q.get("queue", 0):
            state = "busy"
        memory = f"{_gib(used)} / {_gib(total)}" if used is not None and total else "n/a"
        device = slot.device if slot.gpu is None else f"{slot.device} (GPU {slot.gpu})"
        rows.append(
            {
                "rank": p["rank"],
                "engine": p["engine_id"],
                "host": p["host"],
                "pid": p["pid"],
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
