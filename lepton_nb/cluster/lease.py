"""The notebook's half of the lease that keeps engines from outliving their kernel.

Every engine pings the notebook once a second (:mod:`lepton_nb.engine.lease`);
a daemon thread here answers. When the kernel is gone (SIGKILL, the OOM
killer, a culled server), nothing answers, and each engine exits once it has
heard nothing for ``orphan_timeout`` seconds, even in the middle of a cell,
on every host, under every launcher. The socket listens only where the
engines reach this host, CurveZMQ-encrypted whenever they may run elsewhere.
"""

from __future__ import annotations

import logging
import threading

import zmq

log = logging.getLogger(__name__)


class Lease(threading.Thread):
    """Answers every engine's ping with a pong, until closed."""

    def __init__(self, ip: str, curve: bool) -> None:
        super().__init__(name="lepton-lease", daemon=True)
        self._sock: zmq.Socket = zmq.Context.instance().socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self.server_key: str | None = None
        if curve:
            public, secret = zmq.curve_keypair()
            self._sock.setsockopt(zmq.CURVE_SERVER, 1)
            self._sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            self.server_key = public.decode("ascii")
        port: int = self._sock.bind_to_random_port(f"tcp://{ip}")
        self.endpoint = f"tcp://{ip}:{port}"
        self._stopping = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._sock.poll(200):
                    frames = self._sock.recv_multipart()
                    if len(frames) == 2 and frames[1] == b"ping":
                        self._sock.send_multipart([frames[0], b"pong"], zmq.NOBLOCK)
        except zmq.ZMQError as e:  # closed under us at stop
            if not self._stopping.is_set():
                log.warning("the engines' lease stopped: %s", e)
        finally:
            self._sock.close(0)

    def ticket(self, timeout: float) -> tuple[str, str | None, float]:
        """What an engine needs to hold the lease: (endpoint, server key, orphan timeout)."""
        return self.endpoint, self.server_key, timeout

    def close(self) -> None:
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(2)
