"""The engine's half of the lease: exit once the notebook that started it is gone.

A daemon thread pings the notebook (:mod:`lepton_nb.cluster.lease`) once a
second. When no answer has come for ``orphan_timeout`` seconds, the notebook's
kernel is gone (killed, out of memory, culled), and this engine exits at once,
even while a cell runs in it, so it never holds its GPU for nobody.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import zmq

#: Seconds between two pings.
PING_S = 1.0
#: Exit status of an engine whose notebook is gone.
ORPHANED = 3

_current: list[threading.Event] = []


def start(endpoint: str, server_key: str | None, timeout: float) -> int:
    """Hold the lease of the notebook at ``endpoint``; a second call replaces the first."""
    for stop in _current:
        stop.set()
    _current.clear()
    stop = threading.Event()
    _current.append(stop)
    threading.Thread(target=_hold, args=(endpoint, server_key, timeout, stop),
                     name="lepton-lease", daemon=True).start()  # fmt: skip
    return os.getpid()


def _hold(endpoint: str, server_key: str | None, timeout: float, stop: threading.Event) -> None:
    sock: zmq.Socket = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    if server_key:
        public, secret = zmq.curve_keypair()
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
        sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode("ascii"))
    sock.connect(endpoint)
    heard = time.monotonic()
    try:
        while not stop.is_set():
            try:
                sock.send(b"ping", zmq.NOBLOCK)
            except zmq.Again:
                pass
            deadline = time.monotonic() + PING_S
            while (left := deadline - time.monotonic()) > 0 and not stop.is_set():
                if sock.poll(int(left * 1000) + 1):
                    sock.recv()
                    heard = time.monotonic()
            if time.monotonic() - heard > timeout:
                err = sys.__stderr__  # the engine's own log, not the cell's output
                if err is not None:
                    err.write(f"lepton_nb: the notebook at {endpoint} has not answered for "
                              f"{timeout:g} s (its kernel is gone); this engine exits\n")  # fmt: skip
                    err.flush()
                os._exit(ORPHANED)
    finally:
        sock.close(0)
