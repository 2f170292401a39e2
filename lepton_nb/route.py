"""How one process group's collectives travel: its topology, subgroups and shared memory.

Runs on a rank. A :class:`Route` is formed once per process group, by every
rank together, at the group's first :mod:`lepton_nb.collective` call (an engine
forms it as it joins): it discovers the :class:`~lepton_nb.topology.Topology`,
makes the subgroups a hierarchical plan needs, and, when every rank is a gloo
rank on one host, the shared-memory segments of :mod:`lepton_nb.shm_allreduce`.
It then times a :data:`~lepton_nb.topology.PROBE_BYTES` allreduce through the
segment and through gloo, and later each compressor at its first use, so that
:meth:`Route.plan` chooses from measurements, the same on every rank (each
figure is the slower rank's).

The segment is freed by :func:`release` (which an engine calls before it leaves
or rejoins the group), when the group is destroyed and garbage-collected, or
with the process.
"""

from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from . import shm_allreduce
from .topology import (
    BACKEND,
    COMPRESS_LINKS,
    PROBE_BYTES,
    SHARED_MEMORY,
    Plan,
    Topology,
    discover,
    skippable,
)

if TYPE_CHECKING:  # pragma: no cover
    from .compress import Compressor

#: Timed runs of each path (after one untimed run); the median counts.
PROBE_RUNS = 3

#: ``probe(t, codec, ring, link)``: one compressed allreduce of ``t``, its bytes not counted.
CompressedProbe = Callable[[torch.Tensor, Any, list[int], str], None]

_current: list[Route] = []


class Route:
    """One process group's topology, subgroups, shared-memory segment and plans.

    Made by :meth:`form`.

    Parameters
    ----------
    topology : Topology
        The group's ranks and links.
    group : torch.distributed.ProcessGroup
        The default process group the route belongs to.
    probe : callable
        ``probe(t, codec, ring, link)``: one compressed allreduce of ``t`` (to time it).
    """

    def __init__(self, topology: Topology, group: dist.ProcessGroup, probe: CompressedProbe) -> None:
        self.topology = topology
        self.shared: shm_allreduce.SharedGroup | None = None
        self.host_groups: dict[str, dist.ProcessGroup | None] = {}
        self.leader_group: dist.ProcessGroup | None = None
        self.plans: dict[tuple[str | None, frozenset[str] | None], Plan] = {}
        self._probe = probe
        self._group = _reference(group)

    @classmethod
    def form(cls, probe: CompressedProbe) -> Route:
        """Form the route of the current default process group (a collective).

        Parameters
        ----------
        probe : callable
            ``probe(t, codec, ring, link)``: one compressed allreduce of ``t``, its bytes
            not counted (for timing a compressor at its first use).

        Returns
        -------
        Route
            The route, now the current one (:func:`current`); any earlier one is released.
        """
        release()
        group = dist.group.WORLD
        assert group is not None
        route = cls(discover(), group, probe)
        topo = route.topology
        hosts = topo.hosts()
        if len(hosts) > 1:  # every rank creates every subgroup, in the same order
            for host, members in hosts.items():
                route.host_groups[host] = dist.new_group(sorted(members))
            route.leader_group = dist.new_group(sorted(topo.plan().leaders))
        elif topo.world_size > 1 and "gloo" in str(dist.get_backend()):
            route.shared = shm_allreduce.form(group_timeout_s())
            if route.shared is not None:
                topo.shared_memory = True
                route._measure_dense()
        _current.append(route)
        try:
            weakref.finalize(group, _forget, id(route))
        except TypeError:  # not weak-referenceable: released by release() or at exit
            pass
        return route

    def alive(self) -> bool:
        """Whether the route's group is the current default process group."""
        if not dist.is_initialized():
            return False
        group = self._group()
        return group is not None and group is dist.group.WORLD

    def plan(self, compressor: Compressor | None, compress_links: frozenset[str] | None) -> Plan:
        """The plan of an allreduce with ``compressor`` (a collective the first time).

        The first time a compressor is asked for where the ranks share memory, every rank
        times it on a probe (:attr:`Topology.measured`), so that the plan chooses.

        Parameters
        ----------
        compressor : Compressor or None
            The compressor asked for, or None.
        compress_links : frozenset of str or None
            The link classes to compress on, or None (the default, measured choice).

        Returns
        -------
        Plan
            The plan, kept for the next call with the same arguments.
        """
        key = (None if compressor is None else repr(compressor), compress_links)
        plan = self.plans.get(key)
        if plan is None:
            measured = compressor is not None and compress_links is None and skippable(compressor)
            if measured and self.shared is not None:
                assert compressor is not None
                self._measure_compressed(compressor, key[0] or "")
            plan = self.plans[key] = self.topology.plan(compressor, compress_links)
        return plan

    def close(self) -> None:
        """Unmap the shared-memory segments (the subgroups go with the group)."""
        if self.shared is not None:
            self.shared.close()

    def _link(self) -> str:
        return self.topology.slowest(self.topology.ring())

    def _measure_dense(self) -> None:
        shared = self.shared
        assert shared is not None
        probe = torch.ones(PROBE_BYTES // 4)
        dense = _timed(lambda: shared.allreduce(probe, "sum"))
        backend = _timed(lambda: dist.all_reduce(probe))
        dense, backend = _slower_rank([dense, backend])
        self.topology.measured[self._link()] = {SHARED_MEMORY: dense, BACKEND: backend}

    def _measure_compressed(self, compressor: Compressor, name: str) -> None:
        link = self._link()
        times = self.topology.measured.setdefault(link, {})
        if name in times or link not in COMPRESS_LINKS:
            return
        # the codec inside ErrorFeedback or MomentumCorrection: no residual is kept
        codec = getattr(compressor, "compressor", compressor)
        gen = torch.Generator().manual_seed(dist.get_rank())
        grad = torch.randn(PROBE_BYTES // 4, generator=gen)
        work = torch.empty_like(grad)
        ring = self.topology.ring()

        def once() -> None:
            work.copy_(grad)
            self._probe(work, codec, ring, link)

        (times[name],) = _slower_rank([_timed(once)])


def _reference(group: dist.ProcessGroup) -> Callable[[], dist.ProcessGroup | None]:
    try:
        return weakref.ref(group)
    except TypeError:
        return lambda: group


def _timed(fn: Callable[[], object]) -> float:
    """Median seconds of :data:`PROBE_RUNS` runs of ``fn`` after an untimed one."""
    fn()
    runs = []
    for _ in range(PROBE_RUNS):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def _slower_rank(seconds: list[float]) -> list[float]:
    """Each figure's largest value over the ranks: the same list on every rank."""
    t = torch.tensor(seconds, dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [float(v) for v in t.tolist()]


def group_timeout_s() -> float:
    """The default process group's timeout, in seconds (torch's default if unknown)."""
    try:
        backend = dist.group.WORLD._get_backend(torch.device("cpu"))  # type: ignore[union-attr]
        return float(backend.options._timeout.total_seconds())
    except Exception:
        return float(dist.default_pg_timeout.total_seconds())


def current() -> Route | None:
    """The route of the current default process group, if formed."""
    if _current and _current[-1].alive():
        return _current[-1]
    return None


def release() -> None:
    """Forget every route and unmap its shared-memory segments (before leaving a group)."""
    while _current:
        _current.pop().close()


def _forget(route_id: int) -> None:
    """Release the route ``route_id`` once its group is gone (a weakref finalizer)."""
    for route in list(_current):
        if id(route) == route_id:
            _current.remove(route)
            route.close()
