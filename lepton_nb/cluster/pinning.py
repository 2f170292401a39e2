"""Pinning new engines, before torch starts there: device, thread share, interface, lease.

Each new engine gets its GPU (or none), its share of its host's cores and the
interface gloo and NCCL use (:func:`lepton_nb.engine.devices.pin`), then takes
the notebook's lease (:mod:`lepton_nb.engine.lease`), so it exits if the
kernel goes away.
"""

from __future__ import annotations

from typing import Any

from ..engine import devices
from ..engine import lease as engine_lease
from ..errors import ClusterError
from .job import Job
from .ranks import RankRecord

PIN_FAILED = "rank(s) could not be pinned to their device:\n{failures}"
NO_ANSWER = "rank(s) {ranks} did not answer within {timeout:g} s"


def pin(
    client: Any,
    records: list[RankRecord],
    timeout: float,
    lease: tuple[str, str | None, float] | None,
) -> None:
    """Pin ``records``' engines; ClusterError naming the ranks that could not be pinned."""
    if not records:
        return
    engines = {r.rank: r.engine_id for r in records}
    args = {r.rank: (r.gpu, r.threads, r.report.ifname, r.rank) for r in records}
    job = Job(client).apply(engines, devices.pin, args_by_rank=args)
    if not job.wait(timeout):
        raise ClusterError(NO_ANSWER.format(ranks=job.running, timeout=timeout))
    failures = job.outcome().failures
    if failures:
        lines = "\n".join("  " + f.summary() for f in failures.values())
        raise ClusterError(PIN_FAILED.format(failures=lines))
    if lease is not None:
        job = Job(client).apply(engines, engine_lease.start, args=lease)
        if not job.wait(timeout):
            raise ClusterError(NO_ANSWER.format(ranks=job.running, timeout=timeout))
