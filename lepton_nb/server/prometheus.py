"""``GET /lepton/metrics``: the clusters' latest snapshots in Prometheus text format.

A custom collector on the server's own registry turns each snapshot into
per-rank gauges (memory, CPU, GPU, state) and per-link counters and rates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..metrics.snapshot import STATES
from .registry import Clusters

RANK_LABELS = ["cluster", "rank", "host", "device"]

#: name, help, how to read it from a rank's row (a snapshot's JSON)
_RANK_GAUGES: list[tuple[str, str, Callable[[dict[str, Any]], float | None]]] = [
    ("rss_bytes", "Resident memory of the rank's process.", lambda r: r.get("rss")),
    (
        "cpu_percent",
        "CPU use of the rank's process, % of one core.",
        lambda r: r.get("cpu_percent"),
    ),
    (
        "torch_allocated_bytes",
        "torch.cuda.memory_allocated().",
        lambda r: (r.get("torch") or {}).get("allocated"),
    ),
    (
        "torch_reserved_bytes",
        "torch.cuda.memory_reserved().",
        lambda r: (r.get("torch") or {}).get("reserved"),
    ),
    (
        "gpu_memory_used_bytes",
        "GPU memory in use (NVML).",
        lambda r: (r.get("nvml") or {}).get("memory_used"),
    ),
    (
        "gpu_memory_total_bytes",
        "GPU memory in all (NVML).",
        lambda r: (r.get("nvml") or {}).get("memory_total"),
    ),
    (
        "gpu_utilization_percent",
        "GPU utilization (NVML).",
        lambda r: (r.get("nvml") or {}).get("utilization"),
    ),
    (
        "nvlink_tx_bytes_per_second",
        "NVLink data sent (NVML).",
        lambda r: ((r.get("nvml") or {}).get("nvlink") or {}).get("tx_bytes_per_s"),
    ),
    (
        "nvlink_rx_bytes_per_second",
        "NVLink data received (NVML).",
        lambda r: ((r.get("nvml") or {}).get("nvlink") or {}).get("rx_bytes_per_s"),
    ),
    (
        "pcie_tx_bytes_per_second",
        "PCIe data sent (NVML).",
        lambda r: ((r.get("nvml") or {}).get("pcie") or {}).get("tx_bytes_per_s"),
    ),
    (
        "pcie_rx_bytes_per_second",
        "PCIe data received (NVML).",
        lambda r: ((r.get("nvml") or {}).get("pcie") or {}).get("rx_bytes_per_s"),
    ),
]


def _endpoint(r: int) -> str:
    return "notebook" if r == -1 else str(r)


class SnapshotCollector(Collector):
    """Reads the latest snapshot of every cluster at each scrape."""

    def __init__(self, clusters: Clusters) -> None:
        self.clusters = clusters

    def collect(self) -> Iterator[Metric]:
        """The metric families of every cluster's latest snapshot (called at each scrape)."""
        snaps = list(self.clusters.snapshots.values())
        count = GaugeMetricFamily("lepton_clusters", "Clusters this server follows.")
        count.add_metric([], len(snaps))
        yield count
        up = GaugeMetricFamily(
            "lepton_rank_up", "1 if the rank is idle or busy.", labels=RANK_LABELS
        )
        state = GaugeMetricFamily(
            "lepton_rank_state", "1 for the rank's state.", labels=["cluster", "rank", "state"]
        )
        gauges = [
            (GaugeMetricFamily(f"lepton_rank_{name}", doc, labels=RANK_LABELS), read)
            for name, doc, read in _RANK_GAUGES
        ]
        link_bytes = CounterMetricFamily(
            "lepton_link_bytes", "Bytes moved per link.", labels=["cluster", "src", "dst"]
        )
        link_rate = GaugeMetricFamily(
            "lepton_link_bytes_per_second",
            "Bytes per second per link.",
            labels=["cluster", "src", "dst"],
        )
        for snap in snaps:
            cid = str(snap["cluster"])
            for r in snap.get("ranks", []):
                labels = [cid, str(r["rank"]), str(r.get("host")), str(r.get("device"))]
                up.add_metric(labels, 1.0 if r["state"] in ("idle", "busy") else 0.0)
                for s in STATES:
                    state.add_metric([cid, str(r["rank"]), s], 1.0 if r["state"] == s else 0.0)
                for family, read in gauges:
                    value = read(r)
                    if value is not None:
                        family.add_metric(labels, float(value))
            for x in snap.get("links", []):
                labels = [cid, _endpoint(x["src"]), _endpoint(x["dst"])]
                link_bytes.add_metric(labels, float(x["bytes"]))
                link_rate.add_metric(labels, float(x["rate"]))
        yield up
        yield state
        for family, _ in gauges:
            yield family
        yield link_bytes
        yield link_rate


def registry_for(clusters: Clusters) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) holding the snapshot collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(clusters))
    return registry
