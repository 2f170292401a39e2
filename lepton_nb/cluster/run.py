"""Running code on ranks: a function on every rank, or a cell's code on a selection.

Both wait with a timeout, relay output, and keep the results of the ranks
that finished when others fail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..engine import namespace
from ..errors import DistributedTimeout, RankFailure, RemoteError
from .job import Job
from .output import RankOutput
from .rankspec import RankSpec

if TYPE_CHECKING:  # pragma: no cover
    from .core import Cluster


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
    """Wait for ``job``; deal with overrunning and dead ranks. Returns failures, timed-out ranks, a note."""
    try:
        finished = job.wait(timeout)
    except KeyboardInterrupt:
        cluster.interrupt(job.running)
        if job.output is not None:
            job.output.close()
        raise
    note = ""
    timed_out: list[int] = []
    if not finished:
        timed_out = job.running
        note = _stop_overrunning(cluster, job)
    if job.output is not None:
        job.output.close()
    failures = dict(job.outcome().failures)
    hosts = cluster.ranks.hosts_to_name()
    note = " ".join(filter(None, [note, _revive_dead(cluster, failures)]))
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


def _revive_dead(cluster: Cluster, failures: dict[int, RankFailure]) -> str:
    """Restart ranks whose engine died during the job; say so."""
    dead = sorted(r for r, f in failures.items() if f.ename == "EngineError")
    if not dead:
        return ""
    cluster.restart_ranks(dead)
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
        job = Job(cluster.client, output).execute(cluster.engines(selected), code)
        failures, timed_out, note = _finish(cluster, job, timeout)
        ok = [r for r in selected if r not in failures]
        values = _gather(cluster, ok, list(gather), failures) if gather else {r: {} for r in ok}
    if failures:
        _raise(failures, values, note, timeout, timed_out)
    return {name: [values[r][name] for r in selected] for name in gather}


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


def _stop_overrunning(cluster: Cluster, job: Job) -> str:
    """Interrupt ranks past their timeout; restart those that cannot be interrupted."""
    cluster.interrupt(job.running)
    job.wait(cluster.interrupt_grace)
    stuck = job.running
    if not stuck:
        return "The ranks that did not finish were interrupted; the cluster is ready."
    cluster.restart_ranks(stuck)
    return (
        f"Rank(s) {stuck} could not be interrupted (blocked, e.g. in a collective) and were "
        "restarted; they rejoined the process group with empty namespaces."
    )


def pull_names(names: list[str]) -> dict[str, Any]:
    """On a rank: the values of ``names`` in the user namespace."""
    return namespace.values(names, what="--gather: ")
