"""The messages of a push to the ranks: what they hold, their operations, and letting go.

A push asks the ranks which content they still hold (:func:`probe`, collected
with :func:`collect` after hashing, so the round trip overlaps the hash),
sends each rank that needs anything its operations (:func:`send`), and lets
other hosts' leaders drop the segments their peers have mapped
(:func:`release`). Runs in the notebook; the ranks answer in :mod:`.receive`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..cluster.job import Job
from . import receive
from .channel import DataChannel
from .codec import detach

if TYPE_CHECKING:  # pragma: no cover
    from ..cluster import Cluster


def probe(cluster: Cluster, asked: dict[int, list[str]]) -> Job | None:
    """Ask each rank which content it still holds intact under the names it should hold.

    Parameters
    ----------
    cluster
        The running cluster.
    asked
        rank -> the names to ask about (ranks with none are not asked).

    Returns
    -------
    Job or None
        The request in flight, for :func:`collect`; None when no rank is asked.
    """
    asked = {r: names for r, names in asked.items() if names}
    if not asked:
        return None
    return Job(cluster.client).apply(
        cluster.engines(list(asked)),
        receive.holding,
        args_by_rank={r: (names,) for r, names in asked.items()},
    )


def collect(cluster: Cluster, job: Job | None) -> dict[int, dict[str, str | None]]:
    """What the ranks said they hold: rank -> {name: content key held intact, or None}.

    Parameters
    ----------
    cluster
        The running cluster (its ``engine_timeout`` bounds the wait).
    job
        What :func:`probe` returned.

    Returns
    -------
    dict
        A rank that fails to answer in time holds nothing.
    """
    if job is None:
        return {}
    job.wait(cluster.engine_timeout)
    return dict(job.outcome().results)


def send(
    cluster: Cluster,
    channel: DataChannel | None,
    ops: dict[int, list[tuple]],
    timeout: float,
    before: Job | None = None,
) -> Job:
    """Send each rank its operations and wait until each has bound them (or failed).

    Parameters
    ----------
    cluster
        The running cluster.
    channel
        Where compressed bytes for other hosts are served from, or None (they then travel
        inside the requests).
    ops
        rank -> its operations (see :func:`.receive.receive`); ranks with none get nothing.
    timeout
        Seconds to wait for every rank.
    before
        An earlier job whose outcome the returned one includes.

    Returns
    -------
    Job
        The replies (and ``before``'s).

    Raises
    ------
    TimeoutError
        Naming the ranks that did not bind the values within ``timeout``.
    """
    # each rank that needs anything: its operations, and their buffers (or a ticket for them)
    busy: dict[int, tuple[list[tuple], Any]] = {r: detach(o) for r, o in ops.items() if o}
    tickets: dict[int, list[str]] = {}
    if channel is not None:  # the bytes go straight to the ranks, not via the controller
        for r, (o, blobs) in list(busy.items()):
            if blobs:
                ticket = channel.offer(blobs)
                tickets[r] = [ticket["token"]]
                busy[r] = (o, ticket)
    job = Job(cluster.client)
    if busy:
        job.apply(cluster.engines(list(busy)), receive.receive, args_by_rank=busy)
        if channel is not None and tickets:
            channel.serve(tickets, timeout, lambda: set(job.pump()))
        if not job.wait(timeout):
            raise TimeoutError(
                f"rank(s) {job.running} did not bind the pushed values within {timeout:.0f} s"
            )
    if before is not None:
        job.merge(before)
    return job


def release(cluster: Cluster, tokens: dict[int, str]) -> None:
    """Let other hosts' leaders drop their hold on the segments their peers have mapped.

    Parameters
    ----------
    cluster
        The running cluster.
    tokens
        rank (a host's leader) -> the token of the segment it unpacked.
    """
    if tokens:
        job = Job(cluster.client).apply(
            cluster.engines(list(tokens)), receive.release,
            args_by_rank={r: ([t],) for r, t in tokens.items()},
        )  # fmt: skip
        job.wait(cluster.engine_timeout)
