"""The rank side of pushes: bind what the notebook sent into the user namespace.

Before a push, :func:`holding` tells the notebook which content each name
still holds intact here, so unchanged values need no message at all. Then
one call per rank that needs anything, carrying a list of operations:

- ``shared``: map a segment copy-on-write and bind it;
- ``bytes``: decompress an array sent from another host and bind it;
- ``unpack``: on the first rank of another host, decompress arrays into one
  shared segment of this host, bind the ones this rank was sent, and answer
  where the segment is, so the host's other ranks map it (``shared``) instead
  of receiving the bytes again; :func:`release` drops the hold afterwards;
- ``object``: bind a plain (pickled) object.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from ..engine import namespace
from . import channel, codec, segment
from .content import ArrayMeta, rebuild

#: seconds before replaced values are dropped (see receive)
RELEASE_DELAY_S = 0.5

# name -> (content key, the bound object, mapping address or None)
_bound: dict[str, tuple[str, Any, int | None]] = {}
# push token -> the segment this rank unpacked for its host's other ranks
_held: dict[str, segment.Segment] = {}


def _namespace() -> dict[str, Any]:
    return namespace.user_namespace()


def holding(names: list[str]) -> dict[str, str | None]:
    """For each name, the content key bound here if this rank neither wrote to it nor rebound it."""
    ns = _namespace()
    return {name: _intact_key(ns, name) for name in names}


def receive(ops: list[tuple], blobs: Any = None) -> dict[str, Any] | None:
    """Apply push operations in order; for an ``unpack``, say where its segment is.

    ``blobs``: the compressed buffers the payloads' chunks index (:func:`codec.detach`), or a
    ticket to fetch them from the notebook with (:mod:`.channel`).
    """
    if isinstance(blobs, dict):
        blobs = channel.fetch(blobs)
    blobs = blobs or []
    ns = _namespace()
    retired: list[Any] = []  # values replaced here; freeing a big mapping takes a while
    answer: dict[str, Any] = {}
    for op in ops:
        kind, name = op[0], op[1]
        if kind == "unpack":
            items = [(i, key, codec.reattach(p, blobs), meta) for i, key, p, meta in op[2]]
            answer[name] = _unpack(items, op[3], ns, retired)
            continue
        if kind == "shared":
            _, _, key, path, offset, meta = op
            flat, m = segment.attach(path, offset, meta.nbytes)
            value = rebuild(flat, meta)
            _bound[name] = (key, value, segment.mapping_address(m) if meta.nbytes else None)
        elif kind == "bytes":
            _, _, key, payload, meta = op
            payload = codec.reattach(payload, blobs)
            value = rebuild(
                codec.decode(payload, meta.dtype, meta.shape).view("u1").reshape(-1), meta
            )
            _bound[name] = (key, value, None)
        else:  # object
            value = op[2]
            _bound.pop(name, None)
        if name in ns:
            retired.append(ns[name])
        ns[name] = value
    if retired:
        # Dropping a large mapping frees its pages while holding the GIL; do it
        # a moment later, so this reply (and the notebook's next step) goes first.
        timer = threading.Timer(RELEASE_DELAY_S, retired.clear)
        timer.daemon = True
        timer.start()
    return answer or None


def _unpack(
    items: list[tuple[str, str, dict[str, Any], ArrayMeta]],
    binds: list[tuple[str, str]],
    ns: dict[str, Any],
    retired: list[Any],
) -> dict[str, Any]:
    """Decompress ``items`` (id, key, payload, meta) into one new segment of this host.

    Binds ``binds`` (name, id) here, keeps the segment open for the host's
    other ranks, and returns its path and each item's offset.
    """
    import numpy as np

    offsets, size = segment.layout([meta.nbytes for _, _, _, meta in items])
    seg = segment.allocate(size)
    assert seg is not None and seg.view is not None
    where: dict[str, int] = {}
    for (item, _key, payload, meta), off in zip(items, offsets):
        if meta.nbytes:
            out = np.frombuffer(seg.view, np.uint8, count=meta.nbytes, offset=off)
            codec.decode_into(payload, meta.dtype, meta.shape, out)
        where[item] = off
    keys = {item: (key, meta) for item, key, _, meta in items}
    for name, item in binds:
        key, meta = keys[item]
        flat, m = segment.attach(seg.path, where[item], meta.nbytes)
        value = rebuild(flat, meta)
        _bound[name] = (key, value, segment.mapping_address(m) if meta.nbytes else None)
        if name in ns:
            retired.append(ns[name])
        ns[name] = value
    seg.view = None  # this rank's own bindings are private mappings of the file
    token = f"{os.getpid()}-{seg.fd}"
    _held[token] = seg
    return {"token": token, "path": seg.path, "offsets": where}


def release(tokens: list[str]) -> None:
    """Drop this rank's hold on segments it unpacked once its host's ranks have mapped them."""
    for token in tokens:
        seg = _held.pop(token, None)
        if seg is not None:
            seg.close()


def _intact_key(ns: dict[str, Any], name: str) -> str | None:
    entry = _bound.get(name)
    if entry is None or ns.get(name) is not entry[1]:
        return None
    key, value, address = entry
    if address is None:  # a private copy (from bytes): was it written? rehash it
        from .content import as_array, content_key

        found = as_array(value)
        return key if found is not None and content_key(*found) == key else None
    return key if segment.pristine(address) is True else None


def is_shared(value: Any) -> bool:
    """Whether a numpy array on this rank is a view of a shared segment (no copy was made)."""
    import mmap

    base = value
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return base is not None


def value_of(name: str) -> Any:
    """The value of ``name`` on this rank, or NameError naming it."""
    ns = _namespace()
    if name not in ns:
        raise NameError(f"name {name!r} is not defined on this rank")
    return ns[name]


__all__ = ["ArrayMeta", "holding", "is_shared", "receive", "release", "value_of"]
