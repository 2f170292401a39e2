"""Forming the torch.distributed process group over a cluster's ranks (notebook side).

The store listens on a free port chosen on rank 0's host: loopback when every
rank is on one host, rank 0's reachable address otherwise (never 127.0.0.1
across hosts). Each rank's local rank is its place among its host's ranks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..engine import group as engine_group
from ..errors import ClusterError
from .job import Job

if TYPE_CHECKING:  # pragma: no cover
    from .core import Cluster


def form(cluster: Cluster, backend: str) -> None:
    """Have every rank (re)join one process group with ``backend``; ClusterError if not."""
    table = cluster.ranks
    timeout = cluster.engine_timeout
    addr = table.master_addr()
    port = cluster.client[table[0].engine_id].apply_async(engine_group.free_port).get(
        timeout=timeout
    )
    ws = table.world_size
    args = {
        r.rank: (r.rank, ws, r.local_rank, addr, port, backend, cluster.group_timeout)
        for r in table
    }
    job = Job(cluster.client).apply(cluster.engines(), engine_group.join_group, args_by_rank=args)
    if not job.wait(timeout):
        raise ClusterError(
            f"rank(s) {job.running} did not join the {backend} process group "
            f"at {addr}:{port} within {timeout:g} s"
        )
    outcome = job.outcome()
    if outcome.failures:
        hosts = table.hosts_to_name()
        for r, f in outcome.failures.items():
            f.host = hosts.get(r)
        raise ClusterError(
            "the process group did not form:\n"
            + "\n".join("  " + f.summary() for f in outcome.failures.values())
        )
