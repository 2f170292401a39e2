"""The sampler each rank runs: a daemon thread that sends a signed sample every interval.

A sample holds the process's RSS and CPU%, torch's device memory, NVML's
readings for the rank's GPU, whether the engine is running a request (and,
if its code waits in torch.distributed, in which function), and the bytes
this rank sent per link (from :data:`lepton_nb.links.counter`) with their
rates. It goes out signed and numbered (``sender``, ``seq``: see
:mod:`.wire`) on a ZMQ PUSH socket straight to the notebook, so it arrives
while a cell runs. Sending never blocks: when the notebook does not keep up,
samples are dropped, and the user's code is never held up.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import psutil
import zmq

from .. import links
from . import probes, wire

if TYPE_CHECKING:  # pragma: no cover
    from ipykernel.kernelbase import Kernel


class Activity:
    """Whether this engine is handling a request, from ipykernel's pre/post handler hooks."""

    def __init__(self) -> None:
        self.busy = False
        self.since = time.time()
        self.requests = 0  # requests begun so far: which one is running, while busy
        self._kernel: Kernel | None = None

    def install(self) -> bool:
        """Hook the engine's kernel once; False where this process runs no kernel."""
        try:
            from ipykernel.kernelbase import Kernel
        except ImportError:  # pragma: no cover - ipykernel is a dependency
            return False
        if not Kernel.initialized():
            return False
        kernel = Kernel.instance()
        if self._kernel is kernel:
            return True
        pre, post = kernel.pre_handler_hook, kernel.post_handler_hook

        def pre_hook() -> None:
            self.begin()
            pre()

        def post_hook() -> None:
            try:
                post()
            finally:
                self.end()

        # ipykernel calls these two hooks around every shell request. They are methods of
        # the class; this instance's own attributes shadow them, wrapping the originals.
        vars(kernel).update(pre_handler_hook=pre_hook, post_handler_hook=post_hook)
        self._kernel = kernel
        return True

    def begin(self) -> None:
        """A request begins (the kernel's pre-handler hook calls this)."""
        self.requests += 1
        self.busy, self.since = True, time.time()

    def end(self) -> None:
        """The request ends (the kernel's post-handler hook calls this)."""
        self.busy, self.since = False, time.time()


class Sampler(threading.Thread):
    """Sends this rank's sample to ``endpoint`` every ``interval`` seconds until stopped."""

    def __init__(
        self,
        endpoint: str,
        key: bytes,
        cluster_id: str,
        rank: int,
        gpu: int | None,
        interval: float,
        activity: Activity,
    ) -> None:
        super().__init__(name=f"lepton-sampler-{rank}", daemon=True)
        self.endpoint, self.key, self.cluster_id = endpoint, key, cluster_id
        self.rank, self.interval, self.activity = rank, interval, activity
        self.nvml = probes.Nvml(gpu)
        self.stopping = threading.Event()
        self.sent = self.dropped = 0
        # replay protection (see wire.Replays): this sampler's id and its samples' numbers
        self.sender = os.urandom(8).hex()
        self._seq = itertools.count(1)
        self._proc = psutil.Process()
        self._links = links.LinkRates(links.counter)
        self._main = threading.main_thread().ident  # where the engine runs the user's code
        # the request that starts this sampler is not the user's work: it never counts as busy
        self._starting = activity.requests if activity.busy else None

    def run(self) -> None:
        """The thread: a sample now, then one every ``interval`` until :attr:`stopping` is set."""
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 8)
        sock.connect(self.endpoint)
        try:
            while True:
                self._send(sock, self.read())
                if self.stopping.wait(self.interval):
                    break
        finally:
            sock.close(0)
            self.nvml.close()

    def _send(self, sock: zmq.Socket[bytes], sample: dict[str, Any]) -> None:
        try:
            sock.send_multipart(wire.sign(self.key, sample), zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1

    def read(self) -> dict[str, Any]:
        """One sample of this rank, as sent."""
        sample: dict[str, Any] = {
            "type": "sample",
            "version": wire.VERSION,
            "sender": self.sender,
            "seq": next(self._seq),
            "cluster": self.cluster_id,
            "rank": self.rank,
            "pid": os.getpid(),
            "time": time.time(),
            "busy": self.activity.busy and self.activity.requests != self._starting,
            "busy_since": self.activity.since,
            "collective": probes.collective(self._main),
        }
        sample.update(probes.process(self._proc))
        sample["torch"] = probes.torch_memory()
        sample["nvml"] = self.nvml.read()
        sample["links"] = self._links.rows()  # [[src, dst, bytes, bytes/s], ...]
        return sample


_activity = Activity()
_current: list[Sampler] = []
_lock = threading.Lock()


def start(
    endpoint: str,
    key: str,
    cluster_id: str,
    rank: int,
    gpu: int | None = None,
    interval: float = 0.5,
) -> dict[str, Any]:
    """On a rank: (re)start this engine's sampler, sending to ``endpoint``.

    ``key`` is the cluster's metrics key (hex). Called again, the old sampler
    stops first, so restarts and re-ranking are safe.
    """
    if interval <= 0:
        raise ValueError(f"the sampling interval must be positive, got {interval!r}")
    with _lock:
        stop()
        _activity.install()
        sampler = Sampler(endpoint, bytes.fromhex(key), cluster_id, rank, gpu, interval, _activity)
        sampler.start()
        _current.append(sampler)
    return {"rank": rank, "pid": os.getpid(), "endpoint": endpoint}


def stop(timeout: float = 2.0) -> None:
    """On a rank: stop its sampler, if any."""
    while _current:
        sampler = _current.pop()
        sampler.stopping.set()
        sampler.join(timeout)


def running() -> Sampler | None:
    """This engine's sampler, if one runs."""
    return _current[-1] if _current and _current[-1].is_alive() else None
