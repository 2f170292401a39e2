"""A cluster of ipyparallel engines, one rank each, joined in one torch.distributed group.

Each rank is its own ipyparallel engine set, launched with its own
environment (``LEPTON_RANK``, ``CUDA_VISIBLE_DEVICES``), so one rank can be
restarted alone and each GPU engine sees exactly one GPU before CUDA starts.
"""

from __future__ import annotations

import logging
import signal
import uuid
from collections.abc import Callable
from typing import Any

import ipyparallel as ipp
from traitlets import Any as AnyTrait
from traitlets import Bool, Float, HasTraits, Integer, Unicode, default, validate

from . import cell, group, links, topology
from .errors import ClusterError
from .launch import EngineSets
from .metrics import Collector
from .placement import Slot, backend_for, gpu_count, parse_gpus, plan
from .rankspec import RankSpec, parse_ranks
from .status import StatusTable, rank_rows
from .transfer import PushFuture, Transfer

NO_CLUSTER = "No cluster running. Start one with: %lepton_cluster start -n 2"

DEAD_RANK = (
    "Rank {rank}'s engine is gone. Restart it with: %lepton_cluster restart {rank} "
    "(or cluster.restart({rank}))"
)

_started: list[Cluster] = []


def get_cluster() -> Cluster | None:
    """The cluster that the magics use: the last one started and not stopped, else None."""
    for cluster in reversed(_started):
        if cluster.running:
            return cluster
    return None


class Cluster(HasTraits):
    """A notebook-driven cluster: ``Cluster(n=2, gpus="auto").start()``.

    With GPUs there is one engine per GPU; without, CPU engines. Every rank
    joins one process group (NCCL when every rank has a GPU, gloo otherwise).
    """

    n = Integer(None, allow_none=True, help="Number of ranks; default: the number of GPUs, else 2.")
    gpus = AnyTrait("auto", help='"auto", "none", or a list of GPU indices such as [0, 1].')
    engine_timeout = Float(120.0, help="Seconds to wait for engines to register and join.")
    group_timeout = Float(
        1800.0, help="torch.distributed timeout in seconds for a collective that never completes."
    )
    interrupt_grace = Float(
        3.0, help="Seconds a timed-out rank has to stop after SIGINT before it is restarted."
    )
    progress = Bool(True, help="Show a progress bar while engines start.")
    run_timeout = Float(
        None,
        allow_none=True,
        help="Seconds cluster.run waits before interrupting the ranks (None: until done or Ctrl-C).",
    )
    backend = Unicode("", help="Process-group backend in use: nccl or gloo (set by start).")
    metrics_interval = Float(0.5, help="Seconds between two metrics samples of each rank.")

    def __init__(
        self,
        n: int | None = None,
        gpus: Any = "auto",
        *,
        engine_timeout: float = 120.0,
        group_timeout: float = 1800.0,
        interrupt_grace: float = 3.0,
        progress: bool = True,
        run_timeout: float | None = None,
    ) -> None:
        super().__init__(
            n=n,
            gpus=gpus,
            engine_timeout=engine_timeout,
            group_timeout=group_timeout,
            interrupt_grace=interrupt_grace,
            progress=progress,
            run_timeout=run_timeout,
        )
        self._ipp: ipp.Cluster | None = None
        self._sets: EngineSets | None = None
        self._client: ipp.Client | None = None
        self._slots: list[Slot] = []
        self._gpu_list: list[int] | None = None
        self._engines: dict[int, dict[str, Any]] = {}  # rank -> engine_id, set, host, addr, pid
        self._token = uuid.uuid4().hex[:8]
        self.transfer = Transfer(self)
        self._topology: topology.Topology | None = None
        self._collector: Collector | None = None

    @validate("n")
    def _check_n(self, proposal: Any) -> Any:
        value = proposal["value"]
        if value is not None and (isinstance(value, bool) or int(value) < 1):
            raise ClusterError(f"n must be a positive number of ranks, got {value!r}")
        return value

    @default("n")
    def _default_n(self) -> None:
        return None

    # -- properties -----------------------------------------------------------
    @property
    def running(self) -> bool:
        """True between a successful start() and stop()."""
        return self._client is not None

    @property
    def client(self) -> ipp.Client:
        """The underlying ipyparallel Client, for power users."""
        return self._require()

    @property
    def world_size(self) -> int:
        """Number of ranks."""
        return len(self._slots)

    @property
    def slots(self) -> list[Slot]:
        """Each rank's slot: device, physical GPU and launch environment."""
        return list(self._slots)

    @property
    def placement(self) -> list[dict[str, Any]]:
        """One dict per rank: rank, engine_id, host, pid, device."""
        return [
            {
                "rank": s.rank,
                "engine_id": self._engines[s.rank]["engine_id"],
                "host": self._engines[s.rank]["host"],
                "pid": self._engines[s.rank]["pid"],
                "device": s.device,
            }
            for s in self._slots
            if s.rank in self._engines
        ]

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
        chosen = {r: self._engines[r]["engine_id"] for r in self.select(ranks)}
        dead = [r for r, eid in chosen.items() if eid not in alive]
        if dead:
            raise ClusterError(DEAD_RANK.format(rank=dead[0]))
        return chosen

    def select(self, ranks: RankSpec) -> list[int]:
        """Validate a rank selection (``None``, ``"all"``, ``"0,2"``, ``"1-3"``, ints)."""
        try:
            return parse_ranks(ranks, self.world_size)
        except ValueError as e:
            raise ClusterError(str(e)) from None

    def _require(self) -> ipp.Client:
        if self._client is None:
            raise ClusterError(NO_CLUSTER)
        return self._client

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> Cluster:
        """Start the engines and the process group; blocks until both are up.

        Returns self. Raises ClusterError saying what failed.
        """
        if self.running:
            return self
        try:
            self._gpu_list = parse_gpus(self.gpus, gpu_count() if self.gpus != "none" else 0)
        except ValueError as e:
            raise ClusterError(str(e)) from None
        n = self.n or (len(self._gpu_list) if self._gpu_list else 2)
        self._slots = plan(n, self._gpu_list)
        self.backend = backend_for(self._slots)
        self._ipp = ipp.Cluster(
            n=0,
            cluster_id=f"lepton-{self._token}",
            log_level=logging.ERROR,  # our own errors name dead ranks; no engine-log dumps on stop
            engine_timeout=int(self.engine_timeout),
        )
        try:
            self._ipp.start_controller_sync()
            self._client = self._ipp.connect_client_sync()
            self._collector = Collector(self, self.metrics_interval).open()
            self._sets = EngineSets(
                self._ipp, self._client, self._engines, self.engine_timeout, self.progress
            )
            self._sets.launch(self._slots)
            self._join_group()
        except BaseException:
            self.stop()
            raise
        _started.append(self)
        return self

    def stop(self) -> None:
        """Stop every engine and the controller. Safe to call twice."""
        if self in _started:
            _started.remove(self)
        self.transfer.close()
        collector, self._collector = self._collector, None
        if collector is not None:
            collector.close()
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:
                pass
        if self._ipp is not None:
            if self._sets is not None:
                self._sets.kill(list(self._engines))
            try:
                self._ipp.stop_cluster_sync()
            except Exception as e:  # the cluster is going away regardless
                logging.getLogger(__name__).debug("stopping cluster: %s", e)
            if self._sets is not None:
                self._sets.remove_runtime_files()
            self._ipp = None
            self._sets = None
        self._engines.clear()

    def scale(self, n: int) -> Cluster:
        """Grow or shrink to ``n`` ranks; every rank then rejoins one process group."""
        self._require()
        if isinstance(n, bool) or int(n) < 1:
            raise ClusterError(f"scale needs a positive number of ranks, got {n!r}")
        n = int(n)
        current = self.world_size
        if n > current:
            new = plan(n, self._gpu_list)[current:]
            self._slots += new
            self._sets.launch(new)
        elif n < current:
            gone = list(range(n, current))
            for r in gone:
                self.transfer.forget_rank(r)
            self._sets.kill(gone)
            self._slots = self._slots[:n]
        for s in self._slots:
            s.env.pop("OMP_NUM_THREADS", None)
            s.env.pop("NUMBA_NUM_THREADS", None)
        self.n = n
        self._join_group()
        return self

    def restart(self, rank: int | None = None) -> Cluster:
        """Restart one rank (or all, with ``rank=None``); its namespace starts empty.

        Every rank then rejoins the process group.
        """
        self._require()
        self.restart_ranks(self.select(rank))
        return self

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"{self.world_size} ranks, {self.backend}" if self.running else "not running"
        return f"<lepton_nb.Cluster {state}>"

    def _join_group(self, backend: str | None = None) -> None:
        """(Re)form the process group over every rank, on a fresh port."""
        self._require()
        backend = backend or self.backend
        self._topology = None
        group.form(self, backend)
        self.backend = backend
        if self._collector is not None:
            self._collector.start_samplers(self.engine_timeout)

    # -- running work ---------------------------------------------------------
    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        """Call ``fn(*args, **kwargs)`` on every rank; return the values ordered by rank.

        Raises RemoteError naming each failed rank; ``err.results`` keeps the others.
        """
        return cell.run_function(self, fn, args, kwargs)

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
        return cell.run_cell(self, code, ranks, timeout, gather, stream, backend)

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
        bytes (lz4; ``compression="zstd"``, or lossy ``"fp16"`` / ``"int8"``).
        ``block=False`` returns a future; the ranks' next cells see the values.
        """
        return self.transfer.push(values, ranks, block, compression)

    def pull(self, name: str, rank: int = 0) -> Any:
        """The value of ``name`` on ``rank``."""
        return self.transfer.pull(name, rank)

    def scatter(self, name: str, value: Any, axis: int = 0) -> None:
        """Shard an array or CPU tensor across ranks along ``axis``; rank r gets its slice."""
        self.transfer.scatter(name, value, axis)

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
        return StatusTable(rank_rows(self), f"{self.world_size} ranks, {self.backend}")

    def interrupt(self, ranks: list[int]) -> None:
        """Send SIGINT to the engines of ``ranks`` (a KeyboardInterrupt in their running code)."""
        if ranks:
            eids = [self._engines[r]["engine_id"] for r in ranks]
            self._require().send_signal(signal.SIGINT, targets=eids, block=False)

    def restart_ranks(self, ranks: list[int]) -> None:
        """Restart several ranks at once, then re-form the group."""
        for r in ranks:
            self.transfer.forget_rank(r)
        self._sets.kill(ranks)
        self._sets.launch([self._slots[r] for r in ranks])
        self._join_group()

    def use_backend(self, backend: str) -> None:
        """Re-form the process group with ``backend`` ("gloo" or "nccl") if it differs."""
        if backend in ("", "auto", self.backend):
            return
        if backend == "nccl" and backend_for(self._slots) != "nccl":
            raise ClusterError("--backend nccl needs a GPU on every rank; use gloo or auto")
        self._join_group(backend)
