"""Where the ranks are and how they are linked: a graph of ranks, devices, hosts and links.

Every pair of ranks is joined by a link of one class, fastest first:

=========== ==========================================================================
``nvlink``  two GPUs with an NVLink between them (NVML)
``pcie``    two GPUs under one PCIe host bridge (NVML ``SINGLE``..``HOSTBRIDGE``)
``shm``     two CPU ranks on one socket of one host (shared memory)
``sys``     across sockets of one host (NVML ``NODE``/``SYSTEM``, or two CPU sockets)
``network`` two hosts
=========== ==========================================================================

``discover()`` asks every rank to describe itself; the :class:`Topology`
then orders the ranks in a ring that crosses slow links as rarely as
possible, and :meth:`Topology.plan` says how a collective runs on it: flat
on one host, hierarchical (reduce within each host, exchange across hosts,
broadcast back) when the ranks span hosts, and on which links payloads are
compressed. CPU ranks that all share one host reduce through a shared-memory
segment (:mod:`lepton_nb.shm_allreduce`) unless compressing measured faster
(:attr:`Topology.measured`). NVML (nvidia-ml-py) is imported only when a rank has a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _nvml
from .engine import identity, state

if TYPE_CHECKING:  # pragma: no cover
    from IPython.lib.pretty import PrettyPrinter

    from .cluster.core import Cluster
    from .compress import Compressor

#: Link classes, fastest first.
LINK_CLASSES: tuple[str, ...] = ("nvlink", "pcie", "shm", "sys", "network")

#: Relative cost of one hop on each link class (for ring ordering).
LINK_COST: dict[str, float] = {"nvlink": 1, "pcie": 3, "shm": 3, "sys": 5, "network": 100}

#: Link classes on which a compressor is applied by default. Compression rarely
#: pays on NVLink (Agarwal et al., MLSys 2022); on the others it is measured to
#: (benchmarks/bench_allreduce.py).
COMPRESS_LINKS: frozenset[str] = frozenset({"pcie", "shm", "sys", "network"})

#: The dense allreduce through a shared-memory segment, as measurements and plans name it.
SHARED_MEMORY = "shared memory"

#: The backend's own all_reduce, as measurements name it.
BACKEND = "gloo all_reduce"

#: Bytes of the float32 tensor each path is timed on when the group forms.
PROBE_BYTES = 1 << 22


@dataclass(frozen=True)
class RankInfo:
    """What one rank reports about itself (:func:`describe`).

    Parameters
    ----------
    rank : int
        The rank.
    host : str
        The host it runs on.
    device : str, optional
        ``"cuda:0"`` for a GPU rank, else ``"cpu"`` (the default).
    socket : int or None, optional
        The CPU package (socket) the rank's threads run on, if only one; default None.
    gpu_bus_id : str or None, optional
        The PCI bus id of the rank's GPU; default None (no GPU).
    gpu_links : tuple of (str, str), optional
        One ``(bus id, link class)`` pair per other GPU on this host, from NVML; default
        ``()``.
    shared_memory : bool, optional
        Whether the rank's process group reduces through a shared-memory segment; default
        False.
    measured : tuple of (str, str, float), optional
        ``(link class, path, seconds)`` per path timed when the group formed (the slower
        rank's, so the same on every rank); default ``()``.
    """

    rank: int
    host: str
    device: str = "cpu"
    socket: int | None = None  # CPU package the rank's threads run on, if only one
    gpu_bus_id: str | None = None  # PCI bus id of the rank's GPU
    gpu_links: tuple[tuple[str, str], ...] = ()  # (other GPU's bus id, link class) on this host
    # the group's facts, not the rank's: left out of comparisons (they grow as paths are timed)
    shared_memory: bool = field(default=False, compare=False)
    measured: tuple[tuple[str, str, float], ...] = field(default=(), compare=False)


def describe() -> RankInfo:
    """Describe this process: rank, host (``LEPTON_ENGINE_HOST`` honoured), socket, GPU, and
    what its process group measured (:func:`lepton_nb.collective.group_facts`)."""
    facts = state.current() or {}
    rank = int(facts.get("rank", -1))
    try:
        import torch.distributed as dist

        if dist.is_initialized():
            rank = dist.get_rank()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    device, bus = "cpu", None
    links: tuple[tuple[str, str], ...] = ()
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) != "":
        device, bus, links = _gpu_description()
    shared, measured = _group_facts()
    return RankInfo(rank, identity.host_name(), device, _socket(), bus, links, shared, measured)


def _group_facts() -> tuple[bool, tuple[tuple[str, str, float], ...]]:
    """The current process group's shared-memory facts, if collective is loaded (no import)."""
    import sys

    collective = sys.modules.get(f"{__package__}.collective")
    if collective is None:
        return False, ()
    facts: tuple[bool, tuple[tuple[str, str, float], ...]] = collective.group_facts()
    return facts


def _socket() -> int | None:
    """The CPU package of every CPU this process may run on, or None when it spans several."""
    try:
        cpus = os.sched_getaffinity(0)
        packages = set()
        for cpu in cpus:
            path = f"/sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id"
            with open(path) as f:
                packages.add(int(f.read()))
    except (OSError, ValueError, AttributeError):
        return None
    return packages.pop() if len(packages) == 1 else None


def _gpu_description() -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
    """("cuda:0", bus id, links to the host's other GPUs) from torch and NVML; cpu if no GPU."""
    try:
        import torch

        if not torch.cuda.is_available():
            return "cpu", None, ()
        props = torch.cuda.get_device_properties(0)
        # torch has the pci_* properties (2.4 and later) but its stub does not list them
        domain, bus_id = props.pci_domain_id, props.pci_bus_id  # type: ignore[attr-defined]
        slot = props.pci_device_id  # type: ignore[attr-defined]
        bus = f"{domain:08x}:{bus_id:02x}:{slot:02x}.0"
    except Exception:
        return "cpu", None, ()
    return "cuda:0", bus.upper(), _nvml_links(bus)


def _nvml_links(bus: str) -> tuple[tuple[str, str], ...]:
    """Link class from the GPU at ``bus`` to every other GPU NVML sees on this host."""
    nv = _nvml.module()
    if nv is None:
        return ()
    try:
        mine = nv.nvmlDeviceGetHandleByPciBusId(bus)
        out = []
        for i in range(nv.nvmlDeviceGetCount()):
            other = nv.nvmlDeviceGetHandleByIndex(i)
            other_bus = nv.nvmlDeviceGetPciInfo(other).busId
            other_bus = other_bus.decode() if isinstance(other_bus, bytes) else other_bus
            if other_bus.upper() == bus.upper():
                continue
            out.append((other_bus.upper(), _gpu_link(nv, mine, other)))
        return tuple(out)
    except Exception:
        return ()


def _gpu_link(nv: Any, a: Any, b: Any) -> str:
    try:
        if nv.nvmlDeviceGetP2PStatus(a, b, nv.NVML_P2P_CAPS_INDEX_NVLINK) == nv.NVML_P2P_STATUS_OK:
            return "nvlink"
    except Exception:
        pass
    level = nv.nvmlDeviceGetTopologyCommonAncestor(a, b)
    return "pcie" if level <= nv.NVML_TOPOLOGY_HOSTBRIDGE else "sys"


@dataclass
class Plan:
    """How a collective runs: the ring, the host groups and where it compresses.

    Made by :meth:`Topology.plan`; ``str(plan)`` says it in words.

    Parameters
    ----------
    ring : list of int
        The ranks in ring order (:meth:`Topology.ring`).
    groups : dict of str to list of int
        Each host's ranks, in ring order.
    leaders : list of int
        One rank per host (its first in ring order), in ring order.
    hierarchical : bool
        Whether the ranks span hosts: reduce within each host, exchange between the leaders,
        broadcast back.
    ring_link : str
        The slowest link class on the (flat) ring, or between the leaders.
    compress : bool
        Whether the compressor is applied on ``ring_link``.
    compressor : str or None, optional
        The repr of the compressor asked for; default None (none).
    shared_memory : bool, optional
        Whether an uncompressed reduce goes through the host's shared-memory segment
        (:mod:`lepton_nb.shm_allreduce`); default False.
    measured : dict of str to float, optional
        Seconds per :data:`PROBE_BYTES` allreduce on ``ring_link``, by path
        (:data:`SHARED_MEMORY`, :data:`BACKEND`, the compressor's repr), from which the
        plan chose; default ``{}``.
    reason : str, optional
        Why it compresses or not where the ranks share memory, as ``str(plan)`` says it;
        default ``""``.
    """

    ring: list[int]
    groups: dict[str, list[int]]  # host -> its ranks, in ring order
    leaders: list[int]  # one rank per host, in ring order
    hierarchical: bool
    ring_link: str  # slowest link class on the (flat) ring or between the leaders
    compress: bool  # whether the compressor is applied on ring_link
    compressor: str | None = None  # repr of the compressor asked for
    shared_memory: bool = False  # an uncompressed reduce goes through a shared-memory segment
    measured: dict[str, float] = field(default_factory=dict)  # path -> seconds per probe
    reason: str = ""  # why it compresses or not, where shared memory is there

    @property
    def dense_shared(self) -> bool:
        """Whether the reduce runs dense through the shared-memory segment."""
        return self.shared_memory and not self.compress

    def __str__(self) -> str:
        how = f"compressed with {self.compressor}" if self.compress else "uncompressed"
        if not self.compressor:
            how = "uncompressed (no compressor)"
        how += self.reason
        if self.hierarchical:
            hosts = "; ".join(f"{h}: {r}" for h, r in self.groups.items())
            return (
                f"hierarchical plan over {len(self.groups)} hosts ({hosts}):\n"
                f"  1. reduce within each host to its leader, uncompressed\n"
                f"  2. exchange between leaders {self.leaders} over {self.ring_link}, {how}\n"
                f"  3. broadcast from each leader within its host"
            )
        if self.dense_shared:
            head = (
                f"one host: ranks {self.ring} reduce through a shared-memory segment "
                f"over {self.ring_link}, {how}"
            )
        else:
            head = f"flat ring {self.ring} over {self.ring_link}, {how}"
        if self.measured:
            times = ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in self.measured.items())
            head += (
                f"\n  measured on {self.ring_link} ({PROBE_BYTES / 2**20:.0f} MiB float32, "
                f"slower rank): {times}"
            )
        return head

    def _repr_pretty_(self, p: PrettyPrinter, cycle: bool) -> None:
        p.text(str(self))


@dataclass
class Topology:
    """The ranks and the class of the link between every pair of them.

    Made by :func:`discover` or :meth:`from_ranks`.

    Parameters
    ----------
    ranks : list of RankInfo
        What every rank reports, ordered by rank.
    links : dict of (int, int) to str, optional
        The link class (one of :data:`LINK_CLASSES`) of every pair of ranks ``(a, b)`` with
        ``a < b``; default ``{}``.
    shared_memory : bool, optional
        Whether the ranks (all on one host) have a shared-memory segment to reduce through;
        default False.
    measured : dict of str to dict of str to float, optional
        link class -> path -> seconds per :data:`PROBE_BYTES` allreduce, timed when the
        group formed (the compressed paths at their first allreduce); default ``{}``.
    """

    ranks: list[RankInfo]
    links: dict[tuple[int, int], str] = field(default_factory=dict)
    shared_memory: bool = False
    measured: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_ranks(cls, infos: list[RankInfo]) -> Topology:
        """Build the graph from every rank's :class:`RankInfo`.

        Parameters
        ----------
        infos : list of RankInfo
            One per rank, in any order.

        Returns
        -------
        Topology
            The ranks, ordered by rank, the link class of every pair, and what their
            process group measured (rank 0's report: the same on every rank).
        """
        infos = sorted(infos, key=lambda i: i.rank)
        links = {}
        for a in infos:
            for b in infos:
                if a.rank < b.rank:
                    links[(a.rank, b.rank)] = _classify(a, b)
        shared = len(infos) > 1 and all(i.shared_memory for i in infos)
        measured: dict[str, dict[str, float]] = {}
        for link, path, seconds in infos[0].measured if infos else ():
            measured.setdefault(link, {})[path] = seconds
        return cls(infos, links, shared, measured)

    @property
    def world_size(self) -> int:
        """The number of ranks."""
        return len(self.ranks)

    def link(self, a: int, b: int) -> str:
        """The link class between ranks ``a`` and ``b``.

        Parameters
        ----------
        a : int
            One rank.
        b : int
            Another rank (the order does not matter).

        Returns
        -------
        str
            One of :data:`LINK_CLASSES`.

        Raises
        ------
        ValueError
            If ``a`` and ``b`` are the same rank.
        """
        if a == b:
            raise ValueError(f"rank {a} has no link to itself")
        return self.links[(min(a, b), max(a, b))]

    def hosts(self) -> dict[str, list[int]]:
        """host -> its ranks, hosts in order of their lowest rank."""
        out: dict[str, list[int]] = {}
        for info in self.ranks:
            out.setdefault(info.host, []).append(info.rank)
        return out

    def ring(self) -> list[int]:
        """Ranks in a ring order that keeps slow links to a minimum.

        Hosts stay contiguous, so the ring crosses the network once per host
        (twice in all for two hosts); within a host, a greedy walk takes the
        fastest next link (NVLink before PCIe before SYS).
        """
        order: list[int] = []
        for members in self.hosts().values():
            left = list(members)
            current = left.pop(0)
            order.append(current)
            while left:
                current = min(left, key=lambda r: (LINK_COST[self.link(current, r)], r))
                left.remove(current)
                order.append(current)
        return order

    def ring_cost(self, order: list[int]) -> float:
        """Sum of the link costs around a ring.

        Parameters
        ----------
        order : list of int
            The ranks in ring order; the last is linked back to the first.

        Returns
        -------
        float
            The sum of :data:`LINK_COST` over the ring's hops; 0.0 for fewer than two ranks.
        """
        n = len(order)
        if n < 2:
            return 0.0
        return sum(LINK_COST[self.link(order[i], order[(i + 1) % n])] for i in range(n))

    def slowest(self, order: list[int]) -> str:
        """The slowest link class around a ring (``shm`` for a single rank).

        Parameters
        ----------
        order : list of int
            The ranks in ring order; the last is linked back to the first.

        Returns
        -------
        str
            The slowest of the ring's link classes, in the order of :data:`LINK_CLASSES`.
        """
        n = len(order)
        classes = [self.link(order[i], order[(i + 1) % n]) for i in range(n)] if n > 1 else []
        return max(classes, key=LINK_CLASSES.index) if classes else "shm"

    def plan(
        self, compressor: Compressor | None = None, compress_links: frozenset[str] | None = None
    ) -> Plan:
        """How an allreduce runs here: flat or hierarchical, compressed on which link.

        Flat around :meth:`ring` on one host; hierarchical when the ranks span hosts. The
        plan compresses when there is a compressor and the slowest link of its ring (or
        between the hosts' leaders) is in ``compress_links``. Where the ranks share a
        shared-memory segment (:attr:`shared_memory`) and ``compress_links`` is left to
        its default, it compresses only if that measured faster (:attr:`measured`) than the
        dense reduce through the segment; until it is measured, the plan says so. A
        compressor that carries the optimizer's momentum is never skipped (:func:`skippable`).

        Parameters
        ----------
        compressor : Compressor or None, optional
            The compressor the allreduce would use; only named in the plan (its repr).
            Default None: no compression.
        compress_links : frozenset of str or None, optional
            The link classes on which the compressor is applied; default None:
            :data:`COMPRESS_LINKS`, on shared memory where it measured faster.

        Returns
        -------
        Plan
            The ring, the host groups and their leaders, whether it compresses, and whether
            it goes through shared memory.
        """
        by_measurement = compress_links is None and compressor is not None and skippable(compressor)
        compress_links = COMPRESS_LINKS if compress_links is None else frozenset(compress_links)
        ring = self.ring()
        groups = {h: [r for r in ring if r in members] for h, members in self.hosts().items()}
        leaders = [members[0] for members in groups.values()]
        hierarchical = len(groups) > 1
        link = self.slowest(leaders if hierarchical else ring)
        shared = self.shared_memory and not hierarchical
        name = None if compressor is None else repr(compressor)
        compress = compressor is not None and link in compress_links
        times = self.measured.get(link, {}) if shared else {}
        wanted = (SHARED_MEMORY, BACKEND) + ((name,) if compress else ())
        measured = {k: times[k] for k in wanted if k in times}
        reason = ""
        if shared and compressor is not None:
            mine, dense = measured.get(name or ""), measured.get(SHARED_MEMORY)
            if not compress:
                reason = f": not on {link} (compress_links)"
            elif not skippable(compressor):
                reason = " (it carries the optimizer's momentum: never skipped)"
            elif not by_measurement:
                reason = " (compress_links)"
            elif mine is None or dense is None:
                reason = f" (to be measured against {SHARED_MEMORY} at its first allreduce)"
            elif mine < dense:
                reason = f" (measured faster than {SHARED_MEMORY})"
            else:
                compress = False
                reason = f": {SHARED_MEMORY} measured faster than compressing with {name}"
        return Plan(
            ring=ring,
            groups=groups,
            leaders=leaders,
            hierarchical=hierarchical,
            ring_link=link,
            compress=compress,
            compressor=name,
            shared_memory=shared,
            measured=measured,
            reason=reason,
        )

    def __str__(self) -> str:
        lines = [f"{self.world_size} ranks on {len(self.hosts())} host(s)"]
        for info in self.ranks:
            where = f"socket {info.socket}" if info.socket is not None else "any socket"
            lines.append(f"  rank {info.rank}: {info.host}, {info.device}, {where}")
        for (a, b), cls in sorted(self.links.items()):
            lines.append(f"  {a} <-> {b}: {cls}")
        lines.append(f"  ring: {self.ring()}")
        return "\n".join(lines)

    def _repr_pretty_(self, p: PrettyPrinter, cycle: bool) -> None:
        p.text(str(self))


def skippable(compressor: Compressor) -> bool:
    """Whether a plan may reduce dense instead of applying ``compressor`` (where that is faster).

    Every compressor but one that carries the optimizer's momentum
    (:class:`~lepton_nb.compress.MomentumCorrection`, which has ``velocities``): skipping a
    codec or error feedback only leaves a residual untouched, skipping that one drops momentum.

    Parameters
    ----------
    compressor : Compressor
        The compressor asked for.

    Returns
    -------
    bool
        True unless ``compressor`` keeps velocities.
    """
    return not hasattr(compressor, "velocities")


def _classify(a: RankInfo, b: RankInfo) -> str:
    if a.host != b.host:
        return "network"
    if a.gpu_bus_id and b.gpu_bus_id:
        for bus, cls in a.gpu_links:
            if bus == b.gpu_bus_id:
                return cls
        return "pcie" if a.gpu_bus_id != b.gpu_bus_id else "nvlink"
    if a.socket is not None and b.socket is not None and a.socket != b.socket:
        return "sys"
    return "shm"


def discover(cluster: Cluster | None = None) -> Topology:
    """The topology of a cluster's ranks.

    In the notebook: of ``cluster`` (default: the running cluster). On a rank,
    inside ``%%lepton_distributed``: of the process group (every rank must call
    it, as with any collective). Elsewhere: of this one process.

    Parameters
    ----------
    cluster : Cluster or None, optional
        The cluster whose ranks describe themselves; default None: inside a process group,
        that group; else the running cluster, if any; else this one process.

    Returns
    -------
    Topology
        Every rank's :class:`RankInfo` and the link class of every pair of ranks.
    """
    import torch.distributed as dist

    if cluster is None and not dist.is_initialized():
        from .cluster import get_cluster

        cluster = get_cluster()
    if cluster is not None:
        return Topology.from_ranks(cluster.run(describe))
    if dist.is_initialized():
        infos: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(infos, describe())
        return Topology.from_ranks(infos)
    return Topology.from_ranks([describe()])
