"""The notebook's side: receive every rank's samples while cells run, keep the latest.

A :class:`Collector` binds a ZMQ PULL socket that every rank's sampler pushes
to, and a PUB socket on loopback where it republishes the cluster's snapshot
each interval for the Jupyter server (found through a runtime file). Both are
served by one daemon thread, so samples arrive while the notebook's main
thread waits on a ``%%lepton_distributed`` cell.

The PULL socket is reachable from the engines' network, so everything on it
is treated as hostile until shown otherwise: ZMQ itself drops a frame over
:data:`~.wire.MAX_SAMPLE_BYTES` (and the connection that sent it), a message
keeps at most three frames, and a sample is kept only when it is signed
(:func:`.wire.verify`), well formed (:func:`.snapshot.check_sample`), of
this cluster, and newer than the last one from its sender (:class:`.wire.Replays`).
Everything refused is counted and logged once per flood (:class:`.refusals.Refusals`).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

import zmq

from ..cluster.job import Job
from ..links import LinkRates, LinkRow
from . import runtime, sampler, snapshot, wire
from .events import Events
from .history import History, RankHistory
from .refusals import Refusals
from .snapshot import HubView, Sample, Snapshot

if TYPE_CHECKING:  # pragma: no cover
    from ..cluster import Cluster

log = logging.getLogger(__name__)

#: Seconds a remote rank may stay silent before it counts as dead.
DEAD_AFTER_S = 10.0
#: Seconds start and restart wait for each new sampler's first sample (at least 5 intervals).
FIRST_SAMPLE_S = 10.0
#: Messages a sender may have waiting before ZMQ holds it back (a few seconds of samples).
RECEIVE_QUEUE = 64


class Collector(threading.Thread):
    """Samples from every rank of ``cluster``; the snapshot; the runtime file for the server."""

    def __init__(self, cluster: Cluster, interval: float) -> None:
        super().__init__(name="lepton-metrics", daemon=True)
        self._cluster = weakref.ref(cluster)
        self.cluster_id = cluster.cluster_id
        self.interval = interval
        self.key = os.urandom(32)
        self.received = 0
        #: the messages refused so far (``refused.count``), logged once per flood
        self.refused = Refusals(log, "dropped a malformed metrics message")
        #: what happened (cells, pushes, deaths, restarts), sent with each snapshot
        self.events = Events()
        self._history = History(interval)
        #: the last snapshot published (with its ``seq`` and ``events``), None before the first
        self.published: Snapshot | None = None
        self._replays = wire.Replays()
        self._published = itertools.count(1)  # the seq of each snapshot published
        self._samples: dict[int, tuple[float, Sample]] = {}
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # notified with each sample kept
        self._stopping = threading.Event()
        self._links = LinkRates(cluster.transfer.links)  # what the notebook pushed, per rank
        self._notebook_rows: list[LinkRow] = []
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        self._pull = ctx.socket(zmq.PULL)
        self._pub = ctx.socket(zmq.PUB)
        for s in (self._pull, self._pub):
            s.setsockopt(zmq.LINGER, 0)
        self._pull.setsockopt(zmq.MAXMSGSIZE, wire.MAX_SAMPLE_BYTES)
        self._pull.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
        ip = cluster.controller_address  # where the engines reach this host; nowhere else
        self.endpoint = f"tcp://{ip}:{self._pull.bind_to_random_port(f'tcp://{ip}')}"
        self.publish_endpoint = (
            f"tcp://127.0.0.1:{self._pub.bind_to_random_port('tcp://127.0.0.1')}"
        )
        self.runtime_file: str | None = None

    # -- lifecycle -------------------------------------------------------
    def open(self) -> Collector:
        """Start the thread and write the runtime file."""
        self.start()
        info = {
            "cluster": self.cluster_id,
            "endpoint": self.publish_endpoint,
            "key": self.key.hex(),
            "pid": os.getpid(),
            "kernel": runtime.kernel_connection_file(),
            "started": time.time(),
        }
        try:
            self.runtime_file = runtime.write(info)
        except OSError as e:
            log.warning("no runtime file for the Jupyter server: %s", e)
        atexit.register(self.close)
        return self

    def close(self, timeout: float = 2.0) -> None:
        """Stop the thread and remove the runtime file. Safe to call twice."""
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
        runtime.remove(self.runtime_file)
        self.runtime_file = None
        atexit.unregister(self.close)

    @property
    def rejected(self) -> int:
        """How many messages were refused so far."""
        return self.refused.count

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._stopping.is_set()

    def start_samplers(self, timeout: float) -> None:
        """Start (or restart) the sampler on every rank, pointed at this collector."""
        cluster = self._cluster()
        if cluster is None:
            return
        engines = cluster.engines()
        table = cluster.ranks
        args = {
            r: (self.endpoint, self.key.hex(), self.cluster_id, r, table[r].gpu, self.interval)
            for r in engines
        }
        job = Job(cluster.client).apply(engines, sampler.start, args_by_rank=args)
        if not job.wait(timeout):
            log.warning("rank(s) %s did not start their metrics sampler", job.running)
        outcome = job.outcome()
        for r, failure in outcome.failures.items():
            log.warning("rank %s: metrics sampler did not start: %s", r, failure.summary())
        # each sampler sends a sample as it starts: once that is here, no rank reads
        # "restarting" for want of one (status, the widget and the panel agree at once)
        started = {r: answer["pid"] for r, answer in outcome.results.items()}
        silent = self.wait_for_samples(started, max(FIRST_SAMPLE_S, 5 * self.interval))
        if silent:
            log.warning("no metrics sample yet from rank(s) %s (%s)", silent, self.endpoint)

    def wait_for_samples(self, pids: dict[int, int], timeout: float) -> list[int]:
        """Wait until each rank in ``pids`` sent a sample from that engine; the ranks still silent."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                silent = [
                    r for r, pid in sorted(pids.items())
                    if r not in self._samples or self._samples[r][1].get("pid") != pid
                ]  # fmt: skip
                left = deadline - time.monotonic()
                if not silent or left <= 0:
                    return silent
                self._arrived.wait(left)

    def latest(self) -> dict[int, Sample]:
        """Each rank's latest sample."""
        with self._lock:
            return {r: msg for r, (_, msg) in self._samples.items()}

    def in_collective(self, since: float) -> dict[int, str]:
        """Ranks whose latest sample, received after ``since`` (time.monotonic()), shows them
        waiting in torch.distributed; each with the function it is in."""
        with self._lock:
            samples = dict(self._samples)
        return {
            r: msg["collective"]
            for r, (received, msg) in samples.items()
            if received > since and msg.get("collective")
        }

    def wait_for_new_samples(self, ranks: list[int], since: float, timeout: float) -> list[int]:
        """Wait until each of ``ranks`` sent a sample received after ``since`` (time.monotonic());
        the ranks still without one."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                old = [r for r in ranks if r not in self._samples or self._samples[r][0] <= since]
                left = deadline - time.monotonic()
                if not old or left <= 0:
                    return old
                self._arrived.wait(left)

    # -- the thread ------------------------------------------------------
    def run(self) -> None:
        """The thread: receive samples, publish the snapshot every ``interval``, until closed."""
        poller = zmq.Poller()
        poller.register(self._pull, zmq.POLLIN)
        next_publish = time.monotonic()
        try:
            while not self._stopping.is_set():
                wait = max(0.0, min(0.2, next_publish - time.monotonic()))
                if poller.poll(math.ceil(wait * 1000)):  # whole ms, never short of the publish
                    self._drain()
                if time.monotonic() >= next_publish:
                    self._publish()
                    next_publish = time.monotonic() + self.interval
                    self.refused.flush()
        except Exception:  # the thread must say why it stopped
            log.exception("the metrics collector stopped")
        finally:
            self._pull.close(0)
            self._pub.close(0)

    def _drain(self) -> None:
        while True:
            try:
                frames = [self._pull.recv(zmq.NOBLOCK)]
            except zmq.Again:
                return
            while self._pull.getsockopt(zmq.RCVMORE):  # the rest of a message is already here
                frame = self._pull.recv()
                if len(frames) < 3:  # enough to refuse it; a million frames are not kept
                    frames.append(frame)
            self.receive(frames)

    def receive(self, frames: list[bytes]) -> bool:
        """Keep a rank's sample if signed, well formed and new; else count and drop it."""
        try:
            msg = wire.verify(self.key, frames)
            if msg["type"] != "sample" or msg.get("cluster") != self.cluster_id:
                raise wire.BadMessage(f"not a sample of cluster {self.cluster_id}")
            snapshot.check_sample(msg)
            with self._lock:
                self._replays.admit(msg["sender"], msg["seq"])
        except wire.BadMessage as e:
            self.refused.refuse(e)
            return False
        rank = msg["rank"]
        with self._arrived:
            self._samples[rank] = (time.monotonic(), msg)
            self._arrived.notify_all()
        self.received += 1
        return True

    def _publish(self) -> None:
        self._notebook_rows = self._links.rows()  # rates over one interval, in this thread
        snap = self.snapshot()
        if snap is not None:
            self.events.track(snap["ranks"])
            self._history.add(snap)
            snap.update(
                sender=self.cluster_id, seq=next(self._published), events=self.events.recent()
            )
            self._pub.send_multipart(wire.sign(self.key, snap))
            self.published = snap

    def history(self, seconds: float) -> dict[int, RankHistory]:
        """Each rank's series over the last ``seconds`` of published snapshots
        (see :class:`.history.History`)."""
        return self._history.read(seconds)

    # -- reading ---------------------------------------------------------
    def snapshot(self, hub: HubView | None = None) -> Snapshot | None:
        """The cluster's snapshot now (None once the cluster is gone). Any thread may call it.

        ``hub`` adds what the ipyparallel hub says of the engines (see
        :class:`~.snapshot.HubView`); only the notebook's main thread can ask it.
        """
        cluster = self._cluster()
        if cluster is None:
            return None
        with self._lock:
            samples = dict(self._samples)
        return snapshot.build(
            self.cluster_id,
            cluster.ranks,
            samples,
            self._notebook_rows,
            max(DEAD_AFTER_S, 10 * self.interval),
            {"backend": cluster.backend, "interval": self.interval, "running": cluster.running},
            hub,
            cluster.known_topology,
        )

    def ranks(self, wait: float = 0.0, hub: HubView | None = None) -> list[dict[str, Any]]:
        """Each rank's row of the snapshot, waiting up to ``wait`` s for each live rank's sample."""
        deadline = time.monotonic() + wait
        while True:
            snap = self.snapshot(hub)
            rows: list[dict[str, Any]] = snap["ranks"] if snap else []
            if (
                all("time" in r or r["state"] == "dead" for r in rows)
                or time.monotonic() >= deadline
            ):
                return rows
            time.sleep(0.05)
