"""The clusters a Jupyter server knows: found through runtime files, followed over ZMQ.

Every ``poll_interval`` seconds the server lists ``lepton-cluster-*.json`` in
the Jupyter runtime directory. For each new file whose kernel is one of this
server's (unless ``own_kernels_only`` is off) and whose process is alive, it
subscribes to the cluster's snapshot endpoint; snapshots are checked against
the file's key and kept, latest only, and passed on to listeners (the
WebSocket handlers). A file that goes away, or whose process died, drops its
cluster.

What the server reads is refused unless shown good: a runtime file by
:func:`lepton_nb.metrics.runtime.load` (once per version of the file), a
snapshot unless signed, at most :data:`~lepton_nb.metrics.wire.MAX_SNAPSHOT_BYTES`,
of that cluster, and newer than the last (:class:`~lepton_nb.metrics.wire.Replays`).
Each channel's refusals, the WebSocket's too (:attr:`Clusters.bad_requests`),
are counted and logged once per flood.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import partial
from typing import Any

import psutil
import zmq
from tornado.ioloop import PeriodicCallback
from zmq.eventloop.zmqstream import ZMQStream

from ..metrics import runtime, wire
from ..metrics.refusals import Refusals

Listener = Callable[[dict[str, Any]], None]


class Clusters:
    """Latest snapshot of every cluster started from this server's kernels."""

    def __init__(
        self,
        log: logging.Logger,
        kernel_files: Callable[[], set[str]] | None,
        folder: str | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.log = log
        self.kernel_files = kernel_files  # None: every cluster of this user
        self.folder = folder
        self.poll_interval = poll_interval
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.info: dict[str, dict[str, Any]] = {}
        #: runtime files found unusable, snapshots dropped, WebSocket messages ignored
        self.bad_files = Refusals(log, "lepton: ignoring cluster files")
        self.bad_snapshots = Refusals(log, "lepton: dropped a message from cluster")
        self.bad_requests = Refusals(log, "lepton: ignored a malformed WebSocket message")
        self._streams: dict[str, ZMQStream] = {}
        self._replays = wire.Replays()  # by cluster id, forgotten when its stream ends
        self._listeners: list[Listener] = []
        self._refused: dict[str, float] = {}  # path -> mtime of a file already found unusable
        self._poll: PeriodicCallback | None = None

    @property
    def rejected(self) -> int:
        """Snapshots dropped so far."""
        return self.bad_snapshots.count

    def start(self) -> None:
        """Scan now and then every ``poll_interval`` seconds."""
        self.scan()
        self._poll = PeriodicCallback(self.scan, self.poll_interval * 1000)
        self._poll.start()

    def stop(self) -> None:
        """Stop scanning and close every subscription."""
        if self._poll is not None:
            self._poll.stop()
        for cid in list(self._streams):
            self._drop(cid)

    # -- listeners -------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(message)`` with each snapshot and each ``gone`` message."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _tell(self, message: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(message)
            except Exception:  # one broken listener must not starve the others
                self.log.exception("lepton: a metrics listener failed")

    # -- discovery -------------------------------------------------------
    def scan(self) -> None:
        """Follow new cluster files; drop clusters whose file or process is gone."""
        for refusals in (self.bad_files, self.bad_snapshots, self.bad_requests):
            refusals.flush()
        try:
            paths = runtime.find(self.folder)
        except OSError as e:
            self.log.warning("lepton: cannot list the runtime directory: %s", e)
            return
        wanted = self.kernel_files() if self.kernel_files is not None else None
        seen = set()
        for path in paths:
            info = self._usable(path, wanted)
            if info is None:
                continue
            cid = info["cluster"]
            seen.add(cid)
            if cid not in self._streams:
                self._follow(cid, info)
        for cid in [c for c in self._streams if c not in seen]:
            self._drop(cid)
        listed = set(paths)
        for path in [p for p in self._refused if p not in listed]:
            del self._refused[path]  # the file is gone: forget it

    def _usable(self, path: str, wanted: set[str] | None) -> dict[str, Any] | None:
        try:
            mtime = os.lstat(path).st_mtime_ns
        except OSError:
            return None
        if self._refused.get(path) == mtime:
            return None  # refused already, unchanged since
        try:
            info = runtime.load(path)
        except FileNotFoundError:
            return None
        except runtime.Unusable as e:
            self._refused[path] = mtime
            self.bad_files.refuse(e)
            return None
        if wanted is not None and info.get("kernel") not in wanted:
            return None  # another server's or a script's cluster
        if not psutil.pid_exists(info["pid"]):
            return None
        info["key_bytes"] = bytes.fromhex(info["key"])
        return info

    def _follow(self, cid: str, info: dict[str, Any]) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_SNAPSHOT_BYTES)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            sock.connect(str(info["endpoint"]))
        except zmq.ZMQError as e:
            self.log.warning("lepton: cannot follow cluster %s at %s: %s", cid, info["endpoint"], e)
            sock.close(0)
            return
        stream = ZMQStream(sock)
        stream.on_recv(partial(self._received, cid, info["key_bytes"]))
        self._streams[cid] = stream
        self._replays.forget(cid)  # a new collector numbers its snapshots from 1
        self.info[cid] = {k: info.get(k) for k in ("cluster", "kernel", "pid", "started")}
        self.log.info("lepton: following cluster %s (kernel %s)", cid, info.get("kernel"))

    def _drop(self, cid: str) -> None:
        stream = self._streams.pop(cid, None)
        if stream is not None:
            stream.close(linger=0)
        self._replays.forget(cid)
        self.info.pop(cid, None)
        if self.snapshots.pop(cid, None) is not None:
            self._tell({"type": "gone", "cluster": cid})

    def _received(self, cid: str, key: bytes, frames: list[bytes]) -> None:
        try:
            snap = wire.verify(key, frames, wire.MAX_SNAPSHOT_BYTES)
            if snap.get("type") != "snapshot" or snap.get("cluster") != cid:
                raise wire.BadMessage(f"not a snapshot of cluster {cid}")
            self._replays.admit(cid, snap.get("seq"))
        except wire.BadMessage as e:
            self.bad_snapshots.refuse(f"{cid}: {e}")
            return
        self.snapshots[cid] = snap
        self._tell(snap)

    # -- reading ---------------------------------------------------------
    def subscription(self, cid: str) -> zmq.Socket[bytes] | None:
        """The SUB socket following cluster ``cid``'s snapshots; None when not followed."""
        stream = self._streams.get(cid)
        return None if stream is None else stream.socket

    def describe(self) -> list[dict[str, Any]]:
        """What ``GET /lepton/api/clusters`` answers: each cluster and its ranks."""
        out = []
        for cid, info in sorted(self.info.items()):
            snap = self.snapshots.get(cid) or {}
            ranks = [
                {k: r.get(k) for k in ("rank", "host", "pid", "device", "gpu", "state", "memory")}
                for r in snap.get("ranks", [])
            ]
            out.append(
                dict(
                    info,
                    world_size=snap.get("world_size"),
                    backend=snap.get("backend"),
                    updated=snap.get("time"),
                    ranks=ranks,
                )
            )
        return out
