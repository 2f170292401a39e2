"""A cluster's snapshot: placement, state and latest sample of each rank, and link rates.

This one JSON-able dict is what ``cluster.metrics()`` reads from, what the
widget draws, and what the server streams and exports to Prometheus.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

#: The states a rank can be in.
STATES = ("idle", "busy", "dead", "restarting")


def rank_state(
    engine: dict[str, Any] | None,
    sample: dict[str, Any] | None,
    age: float | None,
    local: bool,
    dead_after: float,
) -> str:
    """idle, busy, dead or restarting, from the rank's engine entry and its latest sample.

    ``engine`` is the cluster's record of the rank's engine (None or without a
    pid while it is being replaced); ``sample`` is its latest sample, ``age``
    seconds old; ``local`` says whether the engine runs on this host.
    """
    if not engine or engine.get("engine_id") is None or not engine.get("pid"):
        return "restarting"
    if local and not _alive(engine["pid"]):
        return "dead"
    if sample is None or sample.get("pid") != engine["pid"]:
        return "restarting"  # registered, not reporting yet: joining the group
    if not local and age is not None and age > dead_after:
        return "dead"
    return "busy" if sample.get("busy") else "idle"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def memory(sample: dict[str, Any] | None) -> dict[str, Any] | None:
    """The figure a memory bar shows: GPU memory where NVML reads it, else the process RSS."""
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


def link_rows(
    rows: list[list[float]] | list[tuple[Any, ...]],
) -> list[dict[str, Any]]:
    """``[[src, dst, bytes, rate], ...]`` as dicts."""
    return [
        {"src": int(src), "dst": int(dst), "bytes": int(n), "rate": float(rate)}
        for src, dst, n, rate in rows
    ]


def build(
    cluster_id: str,
    placement: list[dict[str, Any]],
    engines: dict[int, dict[str, Any]],
    samples: dict[int, tuple[float, dict[str, Any]]],
    notebook_links: list[list[float]],
    here: str,
    dead_after: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The snapshot of one cluster.

    ``placement`` lists each rank's slot (rank, device, gpu); ``engines`` maps
    rank to its engine record (engine_id, host, pid); ``samples`` maps rank to
    (monotonic receive time, latest sample).
    """
    now = time.monotonic()
    ranks, links = [], link_rows(notebook_links)
    for slot in placement:
        r = slot["rank"]
        engine = engines.get(r) or {}
        received, sample = samples.get(r, (None, None))
        if sample is not None and sample.get("pid") != engine.get("pid"):
            received, sample = None, None  # from the engine this rank had before
        age = None if received is None else now - received
        local = engine.get("host") == here
        row = {
            "rank": r,
            "engine_id": engine.get("engine_id"),
            "host": engine.get("host"),
            "pid": engine.get("pid"),
            "device": slot["device"],
            "gpu": slot.get("gpu"),
            "state": rank_state(engine, sample, age, local, dead_after),
            "age": age,
            "memory": memory(sample),
        }
        if sample is not None:
            for k in ("time", "busy_since", "rss", "cpu_percent", "memory_total", "torch", "nvml"):
                row[k] = sample.get(k)
            row["links"] = link_rows(sample.get("links") or [])
            links += row["links"]
        ranks.append(row)
    snap = {
        "type": "snapshot",
        "cluster": cluster_id,
        "time": time.time(),
        "world_size": len(placement),
        "ranks": ranks,
        "links": sorted(links, key=lambda x: (x["src"], x["dst"])),
    }
    snap.update(extra or {})
    return snap
