"""Kept values moving rank to rank, never through the notebook.

A task that reads a value kept on another rank gets it from that rank:

- :func:`offer`, on the rank that holds it, pickles the value (protocol 5, its
  buffers out of band) and makes it ready for one reader:

  - on the same host, in one shared-memory segment
    (:mod:`lepton_nb.transfer.segment`), which the reader maps copy-on-write;
  - on another host, as compressed chunks (:mod:`lepton_nb.transfer.codec`)
    served once from a socket of its own (:mod:`lepton_nb.transfer.channel`),
    under a one-time token, with CurveZMQ whenever the ranks span hosts;

  and answers a :class:`Ticket`. Only the ticket goes through the notebook,
  inside ipyparallel's signed messages.
- The task's argument is a :class:`Moving`; :func:`take`, on the reader,
  maps or fetches the bytes and unpickles the value.
- :func:`withdraw` drops the offer once the task is done; an offer nobody
  took is dropped after its timeout anyway.

The holder counts what it sent on its link counter (:mod:`lepton_nb.links`):
the mapped bytes on one host, the compressed bytes between hosts.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import links
from ..transfer import channel, codec, segment
from . import store as _store
from .rank import Kept, my_rank

#: Codec for the bytes between hosts.
CODEC = "lz4"

# token -> what holds an offer's bytes until it is taken or withdrawn
_offers: dict[str, Any] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Ticket:
    """What a reader needs to get one offered value: where, how, and the parts' sizes."""

    token: str
    holder: int  # the rank that offered it
    kind: str  # "shared" (a segment on this host) or "channel" (compressed, from another host)
    sizes: tuple[int, ...]  # each part's bytes: the pickle, then each out-of-band buffer
    path: str = ""  # shared: the segment to map
    offsets: tuple[int, ...] = ()  # shared: where each part starts
    chunks: tuple[int, ...] = ()  # channel: how many compressed chunks each part has
    channel: dict[str, Any] | None = None  # channel: endpoint, server key, token


@dataclass(frozen=True)
class Moving:
    """A task argument: a kept value that comes from another rank through ``ticket``."""

    kept: Kept
    ticket: Ticket


def offer(key: str, reader: int, same_host: bool, ip: str, curve: bool, timeout: float) -> Ticket:
    """On the holding rank: make the value kept under ``key`` ready for rank ``reader``."""
    value = _store.store().get(key)
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(value, protocol=5, buffer_callback=buffers.append)
    parts = [np.frombuffer(head, np.uint8)] + [
        np.frombuffer(b.raw(), np.uint8) for b in buffers
    ]
    sizes = tuple(int(p.nbytes) for p in parts)
    token = os.urandom(16).hex()
    me = my_rank()
    if same_host:
        offsets, size = segment.layout(list(sizes))
        seg = segment.allocate(size)
        assert seg is not None  # (allocate spills rather than answer None)
        segment.write(seg, parts, offsets)
        seg.view = None  # the reader maps the file: the writable mapping is not needed
        _hold(token, seg.close, timeout)
        links.count(me, reader, sum(sizes))
        return Ticket(token, me, "shared", sizes, path=seg.path, offsets=tuple(offsets))
    payloads = [codec.encode(p, CODEC) for p in parts]
    frames = [c for p in payloads for c in p["chunks"]]
    server = channel.DataChannel(ip, curve)
    ticket = server.offer(frames)
    # closed when withdrawn (the reader has it all), not once served: a close then would drop
    # what the socket has queued but not yet sent
    _hold(token, server.close, timeout)
    threading.Thread(
        target=_serve, args=(server, token, ticket["token"], timeout), name="lepton-move",
        daemon=True,
    ).start()
    links.count(me, reader, sum(codec.payload_bytes(p) for p in payloads))
    counts = tuple(len(p["chunks"]) for p in payloads)
    return Ticket(token, me, "channel", sizes, chunks=counts, channel=ticket)


def take(moving: Moving, timeout: float = 120.0) -> Any:
    """On the reading rank: the offered value, mapped (one host) or fetched (another host)."""
    t = moving.ticket
    if t.kind == "shared":
        parts = []
        for off, n in zip(t.offsets, t.sizes):
            arr, _mapping = segment.attach(t.path, off, n)  # the array keeps the mapping
            parts.append(arr)
    else:
        assert t.channel is not None
        frames = channel.fetch(t.channel, timeout)
        parts, at = [], 0
        for n, count in zip(t.sizes, t.chunks):
            payload = {"codec": CODEC, "chunks": frames[at : at + count]}
            parts.append(codec.decode(payload, "uint8", (n,)))
            at += count
    return pickle.loads(parts[0].tobytes(), buffers=parts[1:])


def withdraw(tokens: list[str]) -> int:
    """On the holding rank: drop offers (their task is done); how many were still held."""
    return sum(_drop(t) for t in tokens)


def held() -> int:
    """On a rank: how many offers it still holds."""
    with _lock:
        return len(_offers)


def _hold(token: str, close: Callable[[], None], timeout: float) -> None:
    with _lock:
        _offers[token] = close
    timer = threading.Timer(timeout, _drop, args=(token,))
    timer.daemon = True
    timer.start()


def _drop(token: str) -> bool:
    with _lock:
        close = _offers.pop(token, None)
    if close is None:
        return False
    close()
    return True


def _serve(server: channel.DataChannel, token: str, fetch_token: str, timeout: float) -> None:
    """Serve one fetch, until it came, the offer was withdrawn, or ``timeout``."""
    try:
        server.serve({0: [fetch_token]}, timeout, lambda: {0} if token in _offers else set())
    except TimeoutError:
        _drop(token)  # nobody came for it
