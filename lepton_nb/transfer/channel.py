"""The bulk path for bytes to other hosts: ranks fetch compressed chunks straight from the notebook.

Cells and small messages go through ipyparallel's controller. Compressed
array bytes for another host do not: every hop through the controller costs
a copy and, under CurveZMQ, a decryption and a new encryption. Instead the
notebook binds one ZMQ ``ROUTER`` socket per cluster, on the address the
engines already reach (the controller's), encrypted with CurveZMQ whenever
engines run on other hosts. A push hands each receiving rank a *ticket*
(endpoint, the socket's public key, a random 128-bit token) inside its
signed, encrypted ipyparallel request; the rank connects with the token as
its identity and receives exactly the chunks offered under it, each its own
frame. A token is good for one fetch, and nothing is sent to an identity
that was not offered, so another client that connects gets nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

NOT_FETCHED = "rank(s) {ranks} did not fetch their pushed bytes from {endpoint} within {timeout:.0f} s"


class DataChannel:
    """The notebook's end: offer chunks under fresh tokens, serve them when ranks ask."""

    def __init__(self, ip: str, curve: bool) -> None:
        self._sock: zmq.Socket = zmq.Context.instance().socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.server_key: str | None = None
        if curve:
            public, secret = zmq.curve_keypair()
            self._sock.setsockopt(zmq.CURVE_SERVER, 1)
            self._sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            self.server_key = public.decode("ascii")
        port: int = self._sock.bind_to_random_port(f"tcp://{ip}")
        self.endpoint = f"tcp://{ip}:{port}"
        self._offers: dict[bytes, list[Any]] = {}
        self._lock = threading.Lock()

    def offer(self, chunks: list[Any]) -> dict[str, Any]:
        """A ticket for ``chunks``: what a rank needs to fetch them once."""
        token = os.urandom(16).hex()
        with self._lock:
            self._offers[token.encode()] = list(chunks)
        return {"endpoint": self.endpoint, "server_key": self.server_key, "token": token}

    def serve(
        self,
        tickets: dict[int, list[str]],
        timeout: float,
        still_running: Callable[[], set[int]],
    ) -> None:
        """Answer each rank's fetch of its ``tickets`` (rank -> tokens) until all are served.

        A rank that finished without fetching (it failed) is not waited for;
        TimeoutError, naming the ranks, after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        wanted = {t.encode(): r for r, tokens in tickets.items() for t in tokens}
        with self._lock:
            while wanted:
                if self._sock.poll(50):
                    ident, *_ = self._sock.recv_multipart()
                    if ident in wanted and ident in self._offers:
                        chunks = self._offers.pop(ident)
                        self._sock.send_multipart([ident, *chunks], copy=False)
                        del wanted[ident]
                    continue
                running = still_running()
                for token in [t for t, r in wanted.items() if r not in running]:
                    self._offers.pop(token, None)  # that rank is done (it failed): stop waiting
                    del wanted[token]
                if wanted and time.monotonic() > deadline:
                    for token in wanted:
                        self._offers.pop(token, None)
                    ranks = sorted(set(wanted.values()))
                    raise TimeoutError(NOT_FETCHED.format(ranks=ranks, endpoint=self.endpoint,
                                                          timeout=timeout))  # fmt: skip

    def close(self) -> None:
        """Close the socket; offers not fetched are dropped."""
        with self._lock:
            self._offers.clear()
            self._sock.close(0)


def fetch(ticket: dict[str, Any], timeout: float = 120.0) -> list[memoryview]:
    """On a rank: connect with the ticket's token and receive the chunks offered under it."""
    sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        if ticket["server_key"]:
            public, secret = zmq.curve_keypair()
            sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
            sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
            sock.setsockopt(zmq.CURVE_SERVERKEY, ticket["server_key"].encode("ascii"))
        sock.setsockopt(zmq.ROUTING_ID, ticket["token"].encode())
        sock.connect(ticket["endpoint"])
        sock.send(b"fetch")
        if not sock.poll(int(timeout * 1000)):
            raise TimeoutError(
                f"the notebook at {ticket['endpoint']} did not send the pushed bytes "
                f"within {timeout:g} s"
            )
        return [f.buffer for f in sock.recv_multipart(copy=False)]
    finally:
        sock.close(0)
