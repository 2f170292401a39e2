"""A cluster of ipyparallel engines, one rank each, joined in one torch.distributed group.

Engines start through a launcher (local, slurm, ssh: :mod:`.launchers`), each
engine reports who and where it is, and ranks are placed from those reports
(:mod:`.placement`): contiguous per host, each GPU engine pinned to its own
GPU before torch starts there. Everything else reads the :class:`RankTable`.
"""

from __future__ import annotations

import signal
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from traitlets import Unicode
from traitlets.config import Config

from .. import _nvml, links, topology
from ..errors import ClusterError, DeadRankError, RankState
from ..metrics.collector import Collector
from ..tasks.methods import TaskMethods
from ..transfer.future import PushFuture
from ..transfer.push import Transfer
from . import group, launchers, pinning, run
from .config import site_config
from .controller import Controller
from .engines import Engines
from .idle import IDLE_STOPPED, IdleStop, Usage
from .lease import Lease
from .limits import LIMITS, Limits, in_force
from .options import ClusterOptions, signature, start_line
from .placement import check_gpus_exist, parse_gpus, place, replace_ranks
from .ranks import RankRecord, RankTable
from .rankspec import RankSpec, parse_ranks
from .status import StatusTable, rank_rows

if TYPE_CHECKING:  # pragma: no cover
    import ipyparallel

    from ..tasks.queue import TaskQueue
    from .placement import GpuSpec

NO_CLUSTER = "No cluster running. Start one with: %lepton_cluster start -n 2"

DEAD_RANK = (
    "Rank {rank}'s engine is gone. Restart it with: %lepton_cluster restart {rank} "
    "(or cluster.restart({rank}))"
)
_started: list[Cluster] = []
#: the cluster that last stopped itself for idleness, until a cluster starts or is stopped
_idle_stopped: list[Cluster] = []


def idle_stopped() -> Cluster | None:
    """The cluster that stopped itself for idleness, if nothing was started or stopped since."""
    return _idle_stopped[-1] if _idle_stopped else None


def get_cluster() -> Cluster | None:
    """The cluster that the magics use: the last one started and not stopped, else None."""
    for cluster in reversed(_started):
        if cluster.running:
            return cluster
    return None


class Cluster(ClusterOptions, TaskMethods):
    """A notebook-driven cluster: ``Cluster(n=2, gpus="auto").start()``.

    With GPUs there is one engine per GPU; without, CPU engines. Engines start
    here (``launcher="local"``), in a Slurm job (``"slurm"``) or over SSH
    (``"ssh"``). Every rank joins one process group (NCCL when every rank has
    a GPU, gloo otherwise). Every option is also a ``c.Cluster.<name>`` setting;
    explicit arguments win over configuration.
    """

    backend = Unicode("", help="Process-group backend in use: nccl or gloo (set by start).")

    def __init__(self, n: int | None = None, gpus: GpuSpec | None = None, **kwargs: Any) -> None:
        if n is not None:
            kwargs["n"] = n
        if gpus is not None:
            kwargs["gpus"] = gpus
        unknown = sorted(k for k in kwargs if k != "config" and not self.has_trait(k))
        if unknown:
            raise TypeError(f"Cluster() got unknown option(s): {', '.join(unknown)}")
        if kwargs.get("config") is None:
            kwargs["config"] = site_config()
        super().__init__(**kwargs)
        self._given = {k: v for k, v in kwargs.items() if k != "config"}
        self._token = uuid.uuid4().hex[:8]
        self._usage = Usage()
        self._idle: IdleStop | None = None
        self._stopped_because: str | None = None
        self._controller: Controller | None = None
        self._client: ipyparallel.Client | None = None
        self._engines: Engines | None = None
        self._launcher: launchers.Launcher | None = None
        self._table = RankTable()
        self._gpus: list[int] | str = "auto"
        self._limits = Limits()
        self.transfer = Transfer(self)
        self._topology: topology.Topology | None = None
        self._collector: Collector | None = None
        self._tasks: TaskQueue | None = None
        self._lease: Lease | None = None

    # -- properties -----------------------------------------------------------
    @property
    def running(self) -> bool:
        """True between a successful start() and stop()."""
        return self._client is not None

    @property
    def client(self) -> ipyparallel.Client:
        """The underlying ipyparallel Client, for power users."""
        return self._require()

    @property
    def cluster_id(self) -> str:
        """This cluster's id (in its runtime file and its metrics)."""
        return self._token

    @property
    def collector(self) -> Collector | None:
        """The metrics collector receiving every rank's samples (None when not running)."""
        return self._collector

    @property
    def controller_address(self) -> str:
        """The address the controller and the metrics channel listen on for the engines."""
        if self._launcher is None:
            return "127.0.0.1"
        return self._launcher.controller_ip()

    @property
    def runtime_files(self) -> list[str]:
        """The cluster's files (connection info, logs, batch scripts), all 0600; removed on stop."""
        return self._controller.runtime_files() if self._controller is not None else []

    @property
    def world_size(self) -> int:
        """Number of ranks."""
        return len(self._table)

    @property
    def ranks(self) -> RankTable:
        """The rank table: one :class:`RankRecord` per rank (host, addr, local_rank, device, ...)."""
        return self._table

    @property
    def placement(self) -> list[dict[str, Any]]:
        """One dict per rank: rank, engine_id, host, addr, local_rank, pid, device, gpu."""
        return self._table.placement()

    @property
    def topology(self) -> topology.Topology:
        """The ranks, hosts, devices and link classes (discovered once per process group).

        ``cluster.topology.plan(compressor)`` shows how a compressed allreduce runs.
        """
        if self._topology is None:
            self._topology = topology.discover(self)
        return self._topology

    def link_bytes(self) -> links.LinkBytes:
        """Bytes moved so far per (source rank, destination rank); the notebook is rank -1."""
        per_rank = self.run(links.local_bytes)
        return links.LinkBytes(links.merge(self.transfer.links.snapshot(), *per_rank))

    def engines(self, ranks: RankSpec = None) -> dict[int, int]:
        """rank -> ipyparallel engine id, for the selected ranks; refuses ranks whose engine is gone."""
        alive = set(self._require().ids)
        chosen = self._table.engine_ids(self.select(ranks))
        # gone: the hub dropped the engine, or (on this host) its process is no more, which
        # the hub hears of a moment later; status shows both as dead (metrics.snapshot)
        dead = [r for r, eid in chosen.items() if eid not in alive or self._table.process_gone(r)]
        if dead:
            raise DeadRankError(DEAD_RANK.format(rank=dead[0]), dead)
        return chosen

    def select(self, ranks: RankSpec) -> list[int]:
        """Validate a rank selection (``None``, ``"all"``, ``"0,2"``, ``"1-3"``, ints)."""
        try:
            return parse_ranks(ranks, self.world_size)
        except ValueError as e:
            raise ClusterError(str(e)) from None

    def _require(self) -> ipyparallel.Client:
        if self._client is None:
            raise ClusterError(self._stopped_because or NO_CLUSTER)
        return self._client

    @property
    def stopped_because(self) -> str | None:
        """Why the cluster stopped itself (idle too long), with the command to start it again."""
        return self._stopped_because

    def activity(self) -> AbstractContextManager[None]:
        """Mark one operation (cell, run, push, pull) in flight: the cluster is in use meanwhile."""
        return self._usage.active()

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> Cluster:
        """Start the engines and the process group; blocks until both are up.

        Returns self. Raises ClusterError saying what failed; nothing is left running then.
        """
        if self.running:
            return self
        launcher = launchers.find(self.launcher)(self)
        launcher.validate()
        limits = in_force({name: getattr(self, name) for name in LIMITS})
        limits.check_ranks(launcher.world_size())
        limits.check_nodes(launcher.node_count())
        self._limits = limits
        try:
            self._gpus = parse_gpus(self.gpus)
            if not launcher.remote:
                check_gpus_exist(self._gpus, socket.gethostname(), _nvml.host_gpus())
        except ValueError as e:
            raise ClusterError(str(e)) from None
        n = launcher.world_size()
        config = Config()
        config.merge(self.config)
        launcher.configure(config)
        self._launcher = launcher
        try:
            self._controller = Controller(
                f"lepton-{self._token}", launcher.engines, launcher.controller_ip(),
                launcher.remote, config, self.engine_timeout,
            )  # fmt: skip
            self._client = self._controller.start()
            self._lease = Lease(launcher.controller_ip(), launcher.remote)
            self._lease.start()
            self.transfer.open(launcher.controller_ip(), launcher.remote)
            self._collector = Collector(self, self.metrics_interval).open()
            self._engines = Engines(self._controller, self._client, launcher,
                                    self.engine_timeout, self.progress)  # fmt: skip
            new = self._engines.start(n)
            self._set_table(place([], new, self._gpus))
            self._pin(list(self._table))
            self._join_group()
        except BaseException:
            self.stop()
            raise
        self._stopped_because = None
        _idle_stopped.clear()
        self._usage = Usage()
        if limits.idle_timeout:
            self._idle = IdleStop(self._usage, limits.idle_timeout, self._stop_idle)
            self._idle.start()
        _started.append(self)
        return self

    def _stop_idle(self) -> None:
        assert self._limits.idle_timeout is not None
        # said before the cluster stops, so whoever sees it stopped also sees why
        self._stopped_because = IDLE_STOPPED.format(
            timeout=self._limits.idle_timeout, command=start_line(self._given)
        )
        _idle_stopped[:] = [self]
        self._teardown()

    def stop(self) -> None:
        """Stop every engine on every host, the jobs and the controller. Safe to call twice."""
        _idle_stopped.clear()
        self._teardown()

    def _teardown(self) -> None:
        if self in _started:
            _started.remove(self)
        idle, self._idle = self._idle, None
        if idle is not None:
            idle.close()
        tasks, self._tasks = self._tasks, None
        if tasks is not None:
            tasks.close()
        self.transfer.close()
        collector, self._collector = self._collector, None
        if collector is not None:
            collector.close()
        client, self._client = self._client, None
        controller, self._controller = self._controller, None
        if self._engines is not None and len(self._table):
            self._engines.kill([r for r in self._table if self._table.is_local(r)], self._table)
        if client is not None:
            try:
                client.close()
            except Exception:
                pass
        if controller is not None:
            controller.stop()
        lease, self._lease = self._lease, None
        if lease is not None:  # after the engines are gone: none of them must see it go first
            lease.close()
        if self._engines is not None and self._launcher is not None:
            self._launcher.settle(self._engines.history, timeout=30.0)
        self._engines = None
        self._table = RankTable()

    def scale(self, n: int) -> Cluster:
        """Grow or shrink to ``n`` ranks; every rank then rejoins one process group."""
        self._require()
        if isinstance(n, bool) or int(n) < 1:
            raise ClusterError(f"scale needs a positive number of ranks, got {n!r}")
        n, current = int(n), self.world_size
        self._limits.check_ranks(n)
        engines = self._fleet()
        if n > current:
            per_target = Counter(engines.target(r) for r in self._table)
            where = engines.launcher.hosts_for(n - current, dict(per_target))
            new = engines.start_on(where)
            before = {r.engine_id for r in self._table}
            self._set_table(place(list(self._table), new, self._gpus))
            self._pin([r for r in self._table if r.engine_id not in before])
        elif n < current:
            gone = self._table.shrink_to(n)
            engines.kill(gone, self._table)
            keep = [r for r in self._table if r not in gone]
            self._set_table(place(keep, [], self._gpus))
        self.n = n
        self._join_group()
        return self

    def restart(self, rank: int | None = None) -> Cluster:
        """Restart one rank (or all, with ``rank=None``) on its own host; its namespace starts empty.

        Every rank then rejoins the process group.
        """
        self._require()
        self.restart_ranks(self.select(rank))
        return self

    def restart_ranks(self, ranks: list[int]) -> None:
        """Restart several ranks at once, each on its own host, then re-form the group."""
        engines = self._fleet()
        old = [self._table[r] for r in ranks]
        self._table = self._table.with_state(ranks, RankState.RESTARTING)
        engines.kill(old, self._table)
        new = engines.start_on(dict(Counter(engines.target(r) for r in old)))
        self._set_table(replace_ranks(list(self._table), ranks, new))
        self._pin([self._table[r] for r in ranks])
        self._join_group()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        if not self.running:
            return "<lepton_nb.Cluster not running>"
        hosts = len(self._table.hosts())
        where = f" on {hosts} hosts" if hosts > 1 else ""
        return f"<lepton_nb.Cluster {self.world_size} ranks{where}, {self.backend}>"

    def _fleet(self) -> Engines:
        if self._engines is None:
            raise ClusterError(NO_CLUSTER)
        return self._engines

    def _set_table(self, records: list[RankRecord]) -> None:
        """Install new rank records; a rank now held by another engine has nothing cached."""
        old = {r.rank: r.engine_id for r in self._table}
        self._table = RankTable(records)
        for r in self._table:
            if old.get(r.rank) != r.engine_id:
                self.transfer.forget_rank(r.rank)

    def _pin(self, records: list[RankRecord]) -> None:
        """Pin each new engine to its device and threads; each then holds the notebook's lease."""
        ticket = self._lease.ticket(self.orphan_timeout) if self._lease is not None else None
        pinning.pin(self._require(), records, self.engine_timeout, ticket)

    def _join_group(self, backend: str | None = None) -> None:
        """(Re)form the process group over every rank, on a fresh port."""
        self._require()
        backend = backend or self.backend or self._table.backend()
        self._topology = None
        group.form(self, backend)
        self.backend = backend
        if self._collector is not None:
            self._collector.start_samplers(self.engine_timeout)

    # -- running work ---------------------------------------------------------
    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        """Call ``fn(*args, **kwargs)`` on every rank; return the values ordered by rank.

        Waits up to ``run_timeout`` seconds (None: until done or Ctrl-C); for
        another limit, call ``lepton_nb.cluster.run.run_function(cluster, fn,
        args, kwargs, timeout)``. Raises RemoteError naming each failed rank;
        ``err.results`` keeps the others.
        """
        return run.run_function(self, fn, args, kwargs, self.run_timeout)

    def execute(
        self,
        code: str,
        ranks: RankSpec = None,
        timeout: float | None = None,
        gather: tuple[str, ...] | list[str] = (),
        stream: bool = True,
        backend: str | None = None,
    ) -> dict[str, list[Any]]:
        """Run a cell's code on the selected ranks; what ``%%lepton_distributed`` calls.

        Output is relayed prefixed ``[rank r]``. Returns ``{name: [value per
        selected rank]}`` for each name in ``gather``. Raises RemoteError (or
        DistributedTimeout) with the finished ranks' gathered values in ``results``.
        """
        return run.run_cell(self, code, ranks, timeout, gather, stream, backend)

    # -- data movement --------------------------------------------------------
    def push(
        self,
        values: dict[str, Any],
        ranks: RankSpec = None,
        block: bool = True,
        compression: str | None = None,
    ) -> PushFuture | None:
        """Bind ``values`` (name -> value) on the ranks; unchanged arrays send only their hash.

        Same host: large arrays are shared copy-on-write. Other hosts: compressed
        bytes (lz4; ``compression="zstd"``, or lossy ``"fp16"`` / ``"int8"``),
        sent once per host. ``block=False`` returns a future; the ranks' next
        cells see the values.
        """
        return self.transfer.push(values, ranks, block, compression)

    def pull(self, name: str, rank: int = 0) -> Any:
        """The value of ``name`` on ``rank``."""
        return self.transfer.pull(name, rank)

    def scatter(self, name: str, value: Any, axis: int = 0) -> None:
        """Shard an array or CPU tensor across ranks along ``axis``; rank r gets its slice."""
        self.transfer.scatter(name, value, axis)

    def task_queue(self) -> TaskQueue:
        """The cluster's tasks (``submit``, ``map``), with a client of their own; made on first use."""
        from ..tasks.queue import TaskQueue

        self._require()
        if self._tasks is None:
            assert self._controller is not None
            self._tasks = TaskQueue(self, self._controller.connect_client())
        return self._tasks

    def cache_info(self) -> dict[str, int]:
        """Push cache figures: hits, misses, bytes_sent, bytes_saved, shared_bytes."""
        return self.transfer.cache_info()

    def metrics(self) -> list[dict[str, Any]]:
        """The latest sample of every rank, ordered by rank (see ``lepton_nb.metrics``).

        Each has rank, host, pid, device, state (idle/busy/dead/restarting), rss,
        cpu_percent, memory, torch, nvml and links (bytes and bytes/s per link).
        """
        self._require()
        assert self._collector is not None
        return self._collector.ranks(wait=2 * self.metrics_interval + 2.0)

    def status(self) -> StatusTable:
        """A table of every rank: engine, host, pid, device, memory used/total, state."""
        self._require()
        hosts = len(self._table.hosts())
        where = f" on {hosts} hosts" if hosts > 1 else ""
        return StatusTable(rank_rows(self), f"{self.world_size} ranks{where}, {self.backend}")

    def interrupt(self, ranks: list[int]) -> None:
        """Send SIGINT to the engines of ``ranks`` (a KeyboardInterrupt in their running code)."""
        if ranks:
            eids = [self._table[r].engine_id for r in ranks]
            self._require().send_signal(signal.SIGINT, targets=eids, block=False)

    def use_backend(self, backend: str) -> None:
        """Re-form the process group with ``backend`` ("gloo" or "nccl") if it differs."""
        if backend in ("", "auto", self.backend):
            return
        if backend == "nccl" and not self._table.gpu_ranks():
            raise ClusterError("--backend nccl needs a GPU on every rank; use gloo or auto")
        self._join_group(backend)


Cluster.__init__.__signature__ = signature()  # type: ignore[attr-defined]
