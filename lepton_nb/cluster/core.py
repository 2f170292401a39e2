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
from ..metrics.history import KEEP_S as HISTORY_S
from ..tasks.methods import TaskMethods
from ..topology import Topology
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


class Cluster(TaskMethods, ClusterOptions):
    """A notebook-driven cluster: ``Cluster(n=2, gpus="auto").start()``.

    With GPUs there is one engine per GPU; without, CPU engines. Engines start
    here (``launcher="local"``), in a Slurm job (``"slurm"``) or over SSH
    (``"ssh"``). Every rank joins one process group (NCCL when every rank has
    a GPU, gloo otherwise). Every option is also a ``c.Cluster.<name>`` setting;
    explicit arguments win over configuration. Only ``n`` and ``gpus`` may be
    given by position; every other option is keyword-only.

    Parameters
    ----------
    n : int, optional
        Number of ranks, a positive int. Default (``None``): local: one per GPU of this host,
        else 2; slurm: ``nodes`` x ``ranks_per_node``; ssh: the sum of ``hosts``.
    gpus : str or sequence of int, optional
        ``"auto"`` (the default: one GPU per rank where a host has GPUs, else CPU), ``"none"``
        (CPU ranks everywhere), or GPU indices such as ``[0, 1]`` or ``"0,1"`` (on every host).
        Checked by :meth:`start`.
    launcher : str, optional
        How engines start: ``"local"`` (the default: this host), ``"slurm"`` (a Slurm job),
        ``"ssh"`` (hosts over SSH), or a launcher registered under the ``lepton_nb.launchers``
        entry points.
    nodes : int, optional
        slurm: the number of nodes.
    ranks_per_node : int, optional
        slurm: ranks on each node; default: ``gpus_per_node`` when given, else 1.
    gpus_per_node : int, optional
        slurm: GPUs to ask Slurm for on each node.
    partition : str, optional
        slurm: the partition.
    time : str, optional
        slurm: the job's time limit (``HH:MM:SS``); default ``"1:00:00"``.
    account : str, optional
        slurm: the account to charge.
    slurm_args : list of str, optional
        slurm: more sbatch options, one per item, e.g. ``["--qos=high", "--constraint=a100"]``;
        default none.
    hosts : dict of str to int, optional
        ssh: host -> number of ranks, e.g. ``{"node1": 2, "node2": 2}`` (``"user@host:port"``
        works); default empty.
    python : str, optional
        ssh: the interpreter on the hosts; default: the notebook's own path.
    ssh_args : list of str, optional
        ssh: arguments for ssh and scp, e.g. ``["-F", "~/.ssh/hpc"]``; default none.
    controller_ip : str, optional
        The address the controller (and the metrics channel) listens on; it must be reachable
        from every engine. Default (``""``): loopback for local; for slurm, the address that
        reaches slurmctld; for ssh, the address that reaches the first host.
    max_ranks : int, optional
        Site limit: the most ranks one cluster may have (set in a site-wide config). A user
        can lower a site's limit, never raise it. Default ``None``: no limit.
    max_nodes : int, optional
        Site limit: the most nodes (Slurm) or hosts (SSH) one cluster may span; lowered, never
        raised, like ``max_ranks``. Default ``None``: no limit.
    idle_timeout : float, optional
        Site limit: a cluster with no cell, run, push or pull for this many seconds stops
        itself; lowered, never raised, like ``max_ranks``. Default ``None``: never.
    engine_timeout : float, optional
        Seconds to wait for engines to register and join, a positive number; default 120.
    group_timeout : float, optional
        ``torch.distributed`` timeout in seconds for a collective that never completes;
        default 1800.
    interrupt_grace : float, optional
        Seconds a timed-out rank has to stop after SIGINT before it is restarted; default 3.
    progress : bool, optional
        Show a progress bar while engines start; default ``True``.
    run_timeout : float, optional
        Seconds :meth:`run` waits before interrupting the ranks. Default ``None``: until done
        or Ctrl-C.
    orphan_timeout : float, optional
        Seconds an engine goes on without hearing from the notebook before it exits (the
        kernel was killed, ran out of memory or was culled), a positive number; default 30.
        The controller follows its kernel at once.
    metrics_interval : float, optional
        Seconds between two metrics samples of each rank, a positive number; default 0.5.
    task_timeout : float, optional
        Seconds a task with ``memory=`` waits for a rank with that much free before it fails,
        a positive number; default 300.
    store_limit : str, optional
        Bytes each rank keeps of its tasks' kept values (``keep=True``) in each of GPU and host
        memory, e.g. ``"4GB"`` (the default) or ``"512MiB"``; past it the least recently used
        spill to host memory, then to disk.
    config : traitlets.config.Config, optional
        The configuration to read ``c.Cluster.<name>`` settings from. Default ``None``: that of
        the running IPython shell, else the ``ipython_config.py`` files IPython reads (the
        site's, then the user's profile).

    Raises
    ------
    TypeError
        When an option that is not one of the above is given.
    ClusterError
        When ``n``, ``engine_timeout``, ``metrics_interval``, ``orphan_timeout`` or
        ``task_timeout`` is not positive, or ``store_limit`` is not a size.
    traitlets.TraitError
        When an option's value has the wrong type (e.g. ``n="two"``).

    Examples
    --------
    ::

        with Cluster(n=2) as cluster:  # start() on entry, stop() on exit
            cluster.run(lepton_nb.rank)  # [0, 1]
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

    @property
    def known_topology(self) -> Topology | None:
        """The topology if already discovered for this process group, else None (never discovers)."""
        return self._topology

    def link_bytes(self) -> links.LinkBytes:
        """Bytes moved so far per (source rank, destination rank); the notebook is rank -1."""
        per_rank = self.run(links.local_bytes)
        return links.LinkBytes(links.merge(self.transfer.links.snapshot(), *per_rank))

    def engines(self, ranks: RankSpec = None) -> dict[int, int]:
        """The ipyparallel engine id of each selected rank; refuses ranks whose engine is gone.

        Parameters
        ----------
        ranks : None, str, int or iterable of int, optional
            The ranks, as :meth:`select` reads them; default ``None``: every rank.

        Returns
        -------
        dict of int to int
            Rank -> ipyparallel engine id, for the selected ranks.

        Raises
        ------
        ClusterError
            When the cluster is not running, or ``ranks`` is not a valid selection.
        DeadRankError
            When a selected rank's engine is gone (the hub dropped it, or its process on this
            host has exited); ``err.ranks`` lists those ranks. Nothing is sent then.
        """
        alive = set(self._require().ids)
        chosen = self._table.engine_ids(self.select(ranks))
        # gone: the hub dropped the engine, or (on this host) its process is no more, which
        # the hub hears of a moment later; status shows both as dead (metrics.snapshot)
        dead = [r for r, eid in chosen.items() if eid not in alive or self._table.process_gone(r)]
        if dead:
            raise DeadRankError(DEAD_RANK.format(rank=dead[0]), dead)
        return chosen

    def select(self, ranks: RankSpec) -> list[int]:
        """Validate a rank selection and return the ranks it names.

        Parameters
        ----------
        ranks : None, str, int or iterable of int
            ``None`` or ``"all"`` (every rank), one rank (an int), an iterable of ranks, or a
            string such as ``"0,2"``, ``"1-3"`` or ``"0,2-3"``.

        Returns
        -------
        list of int
            The selected ranks, sorted, each once.

        Raises
        ------
        ClusterError
            When the selection cannot be read (e.g. a bool, an empty list, a range that runs
            backwards) or names a rank the cluster does not have; the message says which.
        """
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

        Does nothing if the cluster is already running.

        Returns
        -------
        Cluster
            This cluster, running.

        Raises
        ------
        ClusterError
            Saying what failed (e.g. ``gpus`` cannot be read or names a GPU this host does not
            have, or a request over a site limit); nothing is left running then.
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
        """Grow or shrink to ``n`` ranks; every rank then rejoins one process group.

        Growing starts the new ranks on the hosts with the fewest ranks; shrinking stops, one
        at a time, the last rank of the fullest host, so hosts stay balanced and each host's
        ranks stay contiguous.

        Parameters
        ----------
        n : int
            The number of ranks to have, at least 1.

        Returns
        -------
        Cluster
            This cluster, with ``n`` ranks.

        Raises
        ------
        ClusterError
            When the cluster is not running, ``n`` is not a positive number of ranks, or ``n``
            is over the site's ``max_ranks`` (a ``LimitError``, also a ``UsageError``).
        """
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

        Parameters
        ----------
        rank : int, optional
            The rank to restart; default ``None``: every rank.

        Returns
        -------
        Cluster
            This cluster.

        Raises
        ------
        ClusterError
            When the cluster is not running, or ``rank`` is not one of its ranks.
        """
        self._require()
        self.restart_ranks(self.select(rank))
        return self

    def restart_ranks(self, ranks: list[int]) -> None:
        """Restart several ranks at once, each on its own host, then re-form the group.

        Their namespaces start empty. Unlike :meth:`restart`, the ranks are not validated:
        pass ranks of this cluster (e.g. from :meth:`select`).

        Parameters
        ----------
        ranks : list of int
            The ranks to restart.

        Raises
        ------
        ClusterError
            When the cluster is not running.
        """
        engines = self._fleet()
        old = [self._table[r] for r in ranks]
        if self._collector is not None:
            for rec in old:
                self._collector.events.restarting(rec.rank, rec.pid, self._table.process_gone(rec))
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
        args, kwargs, timeout)``. Ranks still running then are interrupted (and
        restarted if SIGINT does not free them); on Ctrl-C they are interrupted
        and the ``KeyboardInterrupt`` goes on.

        Parameters
        ----------
        fn : callable
            The function to call on each rank.
        *args
            Positional arguments for ``fn``, the same on every rank.
        **kwargs
            Keyword arguments for ``fn``, the same on every rank.

        Returns
        -------
        list
            ``fn``'s return value on each rank, ordered by rank.

        Raises
        ------
        RemoteError
            Naming each rank that failed; ``err.results`` keeps the others' values.
        DistributedTimeout
            When ranks did not finish within ``run_timeout`` (a ``RemoteError`` too).
        ClusterError
            When the cluster is not running.
        DeadRankError
            When a rank's engine is gone before the call; nothing ran then.
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

        Output is relayed prefixed ``[rank r]``.

        Parameters
        ----------
        code : str
            The code to run on each selected rank, in its namespace.
        ranks : None, str, int or iterable of int, optional
            The ranks, as :meth:`select` reads them; default ``None``: every rank.
        timeout : float, optional
            Seconds to wait before the ranks still running are interrupted. Default ``None``:
            until done or Ctrl-C.
        gather : sequence of str, optional
            Names whose values to bring back from each selected rank after the code ran;
            default none.
        stream : bool, optional
            Relay output as it comes (the default); with ``False``, each rank's output is
            written as a block, in rank order, once the code is done.
        backend : str, optional
            ``"gloo"`` or ``"nccl"``: re-form the process group with it first if it differs
            (see :meth:`use_backend`). Default ``None``: keep the current one.

        Returns
        -------
        dict of str to list
            ``{name: [value per selected rank]}`` for each name in ``gather``.

        Raises
        ------
        RemoteError
            Naming each rank that failed (or lacks a gathered name), with the finished ranks'
            gathered values in ``err.results``.
        DistributedTimeout
            When ranks did not finish within ``timeout`` (a ``RemoteError`` too).
        ClusterError
            When the cluster is not running, ``ranks`` is not a valid selection, or
            ``backend`` cannot be used.
        DeadRankError
            When a selected rank's engine is gone; nothing ran then.
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
        bytes, sent once per host. The ranks' next cells see the values, also
        after a push with ``block=False``.

        Parameters
        ----------
        values : dict of str to object
            Name -> value to bind on each selected rank; every name must be a Python name.
        ranks : None, str, int or iterable of int, optional
            The ranks, as :meth:`select` reads them; default ``None``: every rank.
        block : bool, optional
            Wait until every rank has bound the values (the default); with ``False``, return
            a future at once.
        compression : str, optional
            How arrays are compressed for other hosts: ``"lz4"``, ``"zstd"``, or the lossy
            ``"fp16"`` / ``"int8"``. Default ``None``: lz4.

        Returns
        -------
        PushFuture or None
            With ``block=False``, a future of the push (``done()``, ``wait()``, ``result()``);
            else ``None``.

        Raises
        ------
        ClusterError
            When the cluster is not running, or ``ranks`` is not a valid selection.
        ValueError
            When a name is not a Python name, or ``compression`` is not one of the above.
        TypeError
            When a value cannot be sent to the ranks (it does not pickle).
        RemoteError
            When ranks failed to bind the values (blocking push; else from ``result()``).
        TimeoutError
            When ranks did not bind the values in time (likewise).
        """
        collector = self._collector
        ended = collector.events.started("push", f"push of {', '.join(values)}") if collector else None
        try:
            future = self.transfer.push(values, ranks, block, compression)
        except BaseException:
            if ended:
                ended("failed")
            raise
        if ended and future is None:
            ended("ended")
        elif ended and future is not None:
            future.add_done_callback(lambda f: ended("ended" if f.ok() else "failed"))
        return future

    def pull(self, name: str, rank: int = 0) -> Any:
        """The value of ``name`` on ``rank``.

        Waits first for earlier non-blocking pushes to be sent.

        Parameters
        ----------
        name : str
            The name to read in the rank's namespace.
        rank : int, optional
            The rank to read it from; default 0.

        Returns
        -------
        object
            The value, sent back to the notebook.

        Raises
        ------
        ClusterError
            When the cluster is not running, or ``rank`` is not one of its ranks.
        DeadRankError
            When the rank's engine is gone.
        NameError
            When ``name`` is not defined on the rank.
        TimeoutError
            When the rank did not answer within ``engine_timeout`` seconds.
        RemoteError
            When reading the value failed on the rank otherwise.
        """
        return self.transfer.pull(name, rank)

    def scatter(self, name: str, value: Any, axis: int = 0) -> None:
        """Shard an array or CPU tensor across ranks along ``axis``; rank r gets its slice.

        The slices are as even as ``numpy.array_split`` makes them; waits until every rank
        has bound its slice.

        Parameters
        ----------
        name : str
            The name to bind the slice to on each rank; a Python name.
        value : numpy.ndarray or torch.Tensor
            The array (or CPU tensor) to split.
        axis : int, optional
            The axis to split along; default 0.

        Raises
        ------
        ValueError
            When ``name`` is not a Python name, or ``axis`` is out of range for ``value``.
        TypeError
            When ``value`` is not a numpy array or CPU tensor.
        ClusterError
            When the cluster is not running, or a rank's engine is gone (a ``DeadRankError``).
        RemoteError
            When ranks failed to bind their slice.
        TimeoutError
            When ranks did not bind their slice in time.
        """
        self._require()
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

    def metrics_history(self, seconds: float = 300) -> dict[int, dict[str, list[Any]]]:
        """Each rank's monitor series over the last ``seconds``, from the notebook's collector.

        The same points the monitor's charts show, one per published snapshot
        (every ``metrics_interval``), kept for the last 300 s.

        Parameters
        ----------
        seconds : float, optional
            How far back, in seconds: more than 0 and at most 300; default 300.

        Returns
        -------
        dict of int to dict
            ``{rank: {"time": [...], "memory": [...], "utilization": [...], "sent": [...]}}``:
            epoch seconds; bytes (GPU memory on GPU ranks, else the RSS); % (GPU
            utilization, else CPU); bytes/s sent. A value is None where the rank had
            not reported yet.

        Raises
        ------
        ValueError
            When ``seconds`` is not a number in (0, 300].
        ClusterError
            When the cluster is not running.
        """
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise ValueError(f"seconds must be a number, got {seconds!r}")
        if not 0 < seconds <= HISTORY_S:
            raise ValueError(f"seconds must be more than 0 and at most {HISTORY_S:g}, got {seconds}")
        self._require()
        assert self._collector is not None
        return self._collector.history(float(seconds))

    def status(self) -> StatusTable:
        """A table of every rank: engine, host, pid, device, memory used/total, state."""
        self._require()
        hosts = len(self._table.hosts())
        where = f" on {hosts} hosts" if hosts > 1 else ""
        return StatusTable(rank_rows(self), f"{self.world_size} ranks{where}, {self.backend}")

    def interrupt(self, ranks: list[int]) -> None:
        """Send SIGINT to the engines of ``ranks`` (a KeyboardInterrupt in their running code).

        Does not wait for the ranks to stop.

        Parameters
        ----------
        ranks : list of int
            Ranks of this running cluster (e.g. from :meth:`select`); an empty list does nothing.

        Raises
        ------
        ClusterError
            When the cluster is not running.
        """
        client = self._require()
        if ranks:
            eids = [self._table[r].engine_id for r in ranks]
            client.send_signal(signal.SIGINT, targets=eids, block=False)

    def use_backend(self, backend: str) -> None:
        """Re-form the process group with ``backend`` if it differs from the current one.

        Parameters
        ----------
        backend : str
            ``"gloo"`` or ``"nccl"``; ``""`` and ``"auto"`` keep the current backend.

        Raises
        ------
        ClusterError
            When ``backend`` is ``"nccl"`` and a rank has no GPU, the cluster is not running,
            or the process group does not form again.
        """
        if backend in ("", "auto", self.backend):
            return
        if backend == "nccl" and not self._table.gpu_ranks():
            raise ClusterError("--backend nccl needs a GPU on every rank; use gloo or auto")
        self._join_group(backend)


Cluster.__init__.__signature__ = signature()  # type: ignore[attr-defined]
