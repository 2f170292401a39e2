"""Forming the torch.distributed process group over a cluster's ranks (notebook side).

The store listens on a free port chosen on rank 0's host: loopback when every
rank is on one host, rank 0's address otherwise. Each rank's local rank counts
the ranks before it on its host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import engine
from .errors import ClusterError
from .job import Job

if TYPE_CHECKING:  # pragma: no cover
    from .cluster import Cluster


def form(cluster: Cluster, backend: str) -> None:
    """Have every rank (re)join one process group with ``backend``; ClusterError if not."""
    client = cluster.client
    engines = cluster._engines
    ws = cluster.world_size
    timeout = cluster.engine_timeout
    master_host = engines[0]["host"]
    same_host = all(engines[r]["host"] == master_host for r in range(ws))
    addr = "127.0.0.1" if same_host else engines[0]["addr"]
    port = client[engines[0]["engine_id"]].apply_async(engine.free_port).get(timeout=timeout)
    hosts: dict[str, int] = {}
    args = {}
    for r in range(ws):
        host = engines[r]["host"]
        local = hosts.get(host, 0)
        hosts[host] = local + 1
        args[r] = (r, ws, local, addr, port, backend, cluster.group_timeout)
    job = Job(client).apply(cluster.engines(), engine.join_group, args_by_rank=args)
    if not job.wait(timeout):
        raise ClusterError(
            f"rank(s) {job.running} did not join the {backend} process group "
            f"at {addr}:{port} within {timeout:g} s"
        )
    outcome = job.outcome()
    if outcome.failures:
        raise ClusterError(
            "the process group did not form:\n"
            + "\n".join("  " + f.summary() for f in outcome.failures.values())
        )
