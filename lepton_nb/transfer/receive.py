"""The rank side of pushes: bind what the notebook sent into the user namespace.

One call per rank per push, carrying a list of operations:

- ``shared``: map a segment copy-on-write and bind it;
- ``keep``: the notebook's value is unchanged; keep what is bound if this
  rank has not written to it or rebound the name, else report it stale;
- ``bytes``: decompress an array sent from another host and bind it;
- ``object``: bind a plain (pickled) object.
"""

from __future__ import annotations

import threading
from typing import Any

from . import codec, segment
from .content import ArrayMeta, rebuild

#: seconds before replaced values are dropped (see receive)
RELEASE_DELAY_S = 0.5

# name -> (content key, the bound object, mapping address or None)
_bound: dict[str, tuple[str, Any, int | None]] = {}


def _namespace() -> dict[str, Any]:
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None:  # pragma: no cover - engines always have a shell
        raise RuntimeError("no IPython shell on this engine")
    return ip.user_ns


def receive(ops: list[tuple]) -> list[str]:
    """Apply push operations in order; return the names whose cached value is stale."""
    ns = _namespace()
    stale = []
    retired = []  # values replaced here; freeing a big mapping takes a while
    for op in ops:
        kind, name = op[0], op[1]
        if kind == "keep":
            if not _still_valid(ns, name, op[2]):
                stale.append(name)
            continue
        if kind == "shared":
            _, _, key, path, offset, meta = op
            flat, m = segment.attach(path, offset, meta.nbytes)
            value = rebuild(flat, meta)
            _bound[name] = (key, value, segment.mapping_address(m) if meta.nbytes else None)
        elif kind == "bytes":
            _, _, key, payload, meta = op
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
    return stale


def _still_valid(ns: dict[str, Any], name: str, key: str) -> bool:
    entry = _bound.get(name)
    if entry is None or entry[0] != key or ns.get(name) is not entry[1]:
        return False
    address = entry[2]
    if address is None:  # a private copy (from bytes): was it written? rehash it
        from .content import as_array, content_key

        found = as_array(entry[1])
        return found is not None and content_key(*found) == key
    return segment.pristine(address) is True


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


def forget(names: list[str]) -> None:
    """Drop the cache entries of ``names`` (their values stay bound)."""
    for n in names:
        _bound.pop(n, None)


__all__ = ["ArrayMeta", "forget", "is_shared", "receive", "value_of"]
