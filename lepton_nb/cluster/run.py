"""Running code on ranks: a function on every rank, or a cell's code on a selection.

Both wait with a timeout, relay output, and keep the results of the ranks
that finished when others fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..engine import namespace
from ..errors import ClusterError, DistributedTimeout, RankFailure, RemoteError
from .job import Job
from .output import RankOutput
from .rankspec import RankSpec

if TYPE_CHECKING:  # pragma: no cover
    from .core import Cluster

#: Seconds the other ranks have, once a rank died mid-job, to fail by themselves before SIGINT.
SURVIVOR_GRACE_S = 1.0
#: Seconds they then have to stop after SIGINT, before they are restarted.
SIGINT_GRACE_S = 0.5


def run_function(
    cluster: Cluster,
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    timeout: float | None = None,
) -> list[Any]:
    """``fn(*args, **kwargs)`` on every rank; values ordered by rank, else RemoteError.

    Waits up to ``timeout`` seconds (None: until done or Ctrl-C).
    """
    with cluster.activity():
        cluster.transfer.wait_sent()
        job = Job(cluster.client).apply(cluster.engines(), fn, args=args, kwargs=kwargs)
        failures, timed_out, note = _finish(cluster, job, timeout)
    results = job.outcome().results
    if failures:
        _raise(failures, results, note, timeout, timed_out)
    return [results[r] for r in sorted(results)]


def _finish(
    cluster: Cluster, job: Job, timeout: float | None
) -> tuple[dict[int, RankFailure], list[int], str]:
    """Wait for ``job``; deal with overrunning and dead ranks. Returns failures, timed-out ranks, a note.

    A rank whose engine dies ends the wait at once for the ranks that wait on
    it in the process group: they are interrupted (or restarted, when blocked
    in a collective on the dead peer) instead of waiting out the group's
    timeout. The other ranks finish their work, and their results are kept.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    note = ""
    timed_out: list[int] = []
    stuck: list[int] = []
    lost: list[int] = []
    try:
        finished = job.wait(timeout, stop_when=lambda: bool(_lost(cluster, job)))
        lost = _lost(cluster, job) if not finished else []
        if lost:
            stuck, timed_out, note = _stop_survivors(cluster, job, lost, deadline)
        elif not finished:
            timed_out = job.running
            stuck, note = _stop_overrunning(cluster, job, timed_out)
    except KeyboardInterrupt:
        cluster.interrupt(job.running)
        if job.output is not None:
            job.output.close()
        raise
    if job.output is not None:
        job.output.close()
    failures = dict(job.outcome().failures)
    for r in lost:  # its process is gone, though the hub may not have said so yet
        if r not in failures:
            failures[r] = RankFailure(r, "EngineError", "its engine died during the job")
    hosts = cluster.ranks.hosts_to_name()
    note = " ".join(filter(None, [note, _revive_dead(cluster, failures, stuck)]))
    for r in timed_out:
        tb = failures[r].traceback if r in failures else ""
        failures[r] = RankFailure(r, "Timeout", f"did not finish within {timeout:g} s", tb)
    for r, f in failures.items():
        f.host = hosts.get(r)
    return failures, timed_out, note


def _raise(
    failures: dict[int, RankFailure],
    results: dict[int, Any],
    note: str,
    timeout: float | None,
    timed_out: list[int],
) -> None:
    if timed_out:
        raise DistributedTimeout(list(failures.values()), results, note, timeout, timed_out)
    raise RemoteError(list(failures.values()), results, note)


def _lost(cluster: Cluster, job: Job) -> list[int]:
    """Ranks of ``job`` whose engine died: the hub said so, or (on this host) the process is gone."""
    gone = [r for r in job.running if cluster.ranks.process_gone(r)]
    return sorted(set(job.lost()) | set(gone))


def _stop_survivors(
    cluster: Cluster, job: Job, lost: list[int], deadline: float | None
) -> tuple[list[int], list[int], str]:
    """A peer died mid-job: stop the ranks that wait on it; the others finish their work.

    A collective over a closed connection fails by itself (gloo sees the peer's
    socket close). A rank still waiting in torch.distributed after
    :data:`SURVIVOR_GRACE_S`, as its sampler shows, is interrupted, and
    restarted if SIGINT does not free it (blocked on the dead peer). A rank
    busy with anything else is left to finish, so its results are kept, until
    the job's ``deadline``. Returns the ranks to restart, those timed out, and a note.
    """
    died = time.monotonic()
    collector = cluster.collector
    gone = set(lost)  # dead, or blocked on the dead: no longer waited for
    interrupted: list[int] = []
    stuck: list[int] = []

    def survivors() -> list[int]:
        return [r for r in job.running if r not in gone]

    def waiting() -> list[int]:
        if time.monotonic() < died + SURVIVOR_GRACE_S:
            return []
        if collector is None:  # no samples to tell: any survivor may be waiting on the dead
            return survivors()
        # a sample from after the grace: one from before may show a collective since failed
        inside = collector.in_collective(since=died + SURVIVOR_GRACE_S)
        return [r for r in survivors() if r in inside]

    while survivors():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        job.wait(left, stop_when=lambda: not survivors() or bool(waiting()))
        now = waiting()
        if not now:
            continue
        interrupted += now
        cluster.interrupt(now)
        # one blocked in a collective on the dead peer does not wake for SIGINT: do not
        # wait long; it is restarted
        stuck += _wait_for(job, now, min(cluster.interrupt_grace, SIGINT_GRACE_S))
        gone |= set(stuck)
    timed_out = survivors()
    names = ", ".join(f"rank {r}" for r in lost)
    notes = []
    if stuck:
        notes.append(
            f"Rank(s) {stuck} were blocked (e.g. in a collective) on {names}, which died, and "
            "were restarted with it."
        )
    freed = [r for r in interrupted if r not in stuck]
    if freed:
        notes.append(f"Rank(s) {freed} waited in torch.distributed on {names}, which died, "
                     "and were interrupted.")  # fmt: skip
    if timed_out:
        more, note = _stop_overrunning(cluster, job, timed_out)
        stuck += more
        notes.append(note)
    return stuck, timed_out, " ".join(notes)


def _wait_for(job: Job, ranks: list[int], timeout: float) -> list[int]:
    """Wait up to ``timeout`` s for ``ranks`` of ``job`` to reply; those still running."""
    job.wait(timeout, stop_when=lambda: not any(r in job.running for r in ranks))
    return [r for r in ranks if r in job.running]


def _revive_dead(cluster: Cluster, failures: dict[int, RankFailure], stuck: list[int]) -> str:
    """Restart ranks whose engine died during the job, and ``stuck`` ones with them; say so."""
    dead = sorted(r for r, f in failures.items() if f.ename == "EngineError")
    if not dead and not stuck:
        return ""
    ranks = sorted(set(dead) | set(stuck))
    for r in stuck:  # (a timed-out one's failure says so: the caller writes it)
        failures.setdefault(r, RankFailure(r, "Interrupted", "restarted: its peer died mid-job"))
    try:
        cluster.restart_ranks(ranks)
    except ClusterError as e:  # e.g. the dead rank's host does not answer
        command = "%lepton_cluster restart" + (f" {ranks[0]}" if len(ranks) == 1 else "")
        return (
            f"Rank(s) {ranks} could not be restarted ({e}). When their host answers again, "
            f"restart them with: {command}"
        )
    if not dead:
        return ""
    return (
        f"Rank(s) {dead} died (their engine exited) and were restarted; they rejoined the "
        "process group with empty namespaces."
    )


def run_cell(
    cluster: Cluster,
    code: str,
    ranks: RankSpec = None,
    timeout: float | None = None,
    gather: Sequence[str] = (),
    stream: bool = True,
    backend: str | None = None,
) -> dict[str, list[Any]]:
    """Run ``code`` on the selected ranks; return ``{name: [value per rank]}`` for ``gather``."""
    with cluster.activity():
        selected = cluster.select(ranks)
        if backend:
            cluster.use_backend(backend)
        cluster.transfer.wait_sent()  # values pushed without blocking arrive first
        output = RankOutput(stream=stream)
        collector = cluster.collector
        ended = collector.events.started("cell", _cell_name(code)) if collector else None
        try:
            job = Job(cluster.client, output).execute(cluster.engines(selected), code)
            failures, timed_out, note = _finish(cluster, job, timeout)
        except BaseException:
            if ended:
                ended("interrupted")
            raise
        if ended:
            ended(f"failed on rank(s) {sorted(failures)}" if failures else "ended")
        ok = [r for r in selected if r not in failures]
        values = _gather(cluster, ok, list(gather), failures) if gather else {r: {} for r in ok}
    if failures:
        _raise(failures, values, note, timeout, timed_out)
    return {name: [values[r][name] for r in selected] for name in gather}


def _cell_name(code: str) -> str:
    """How the monitor names a cell: its first line that is not blank or a comment."""
    for line in code.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return f"cell `{line[:60]}`"
    return "cell"


def _gather(
    cluster: Cluster, ranks: list[int], names: list[str], failures: dict[int, RankFailure]
) -> dict[int, dict[str, Any]]:
    """Pull ``names`` from each of ``ranks``; a rank missing a name becomes a failure."""
    if not ranks:
        return {}
    job = Job(cluster.client).apply(cluster.engines(ranks), pull_names, args=(names,))
    job.wait(cluster.engine_timeout)
    outcome = job.outcome()
    hosts = cluster.ranks.hosts_to_name()
    for r, f in outcome.failures.items():
        f.host = hosts.get(r)
    failures.update(outcome.failures)
    return dict(outcome.results)


def _stop_overrunning(cluster: Cluster, job: Job, ranks: list[int]) -> tuple[list[int], str]:
    """Interrupt ``ranks``, past their timeout; those that cannot be interrupted are to restart."""
    cluster.interrupt(ranks)
    stuck = _wait_for(job, ranks, cluster.interrupt_grace)
    if not stuck:
        return [], "The ranks that did not finish were interrupted; the cluster is ready."
    return stuck, (
        f"Rank(s) {stuck} could not be interrupted (blocked, e.g. in a collective) and were "
        "restarted; they rejoined the process group with empty namespaces."
    )


def pull_names(names: list[str]) -> dict[str, Any]:
    """On a rank: the values of ``names`` in the user namespace."""
    return namespace.values(names, what="--gather: ")
