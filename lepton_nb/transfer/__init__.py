"""Data movement between the notebook and the ranks.

- :mod:`.content`: what a value is and its content key (xxh3-128);
- :mod:`.segment`: shared-memory segments, mapped copy-on-write on the ranks;
- :mod:`.spare`: segments reused once the ranks let go, and one spare kept populated;
- :mod:`.fill`, :mod:`.local`: one pass that hashes and copies a push's new arrays in;
- :mod:`.codec`: compressed bytes between hosts;
- :mod:`.push`: push, scatter, pull and the per-rank cache (notebook side);
- :mod:`.messages`: a push's requests to the ranks;
- :mod:`.receive`: binding on the rank.

Engines import :mod:`.receive` only, so the notebook side is loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .future import PushFuture
from .segment import NoRoomError, SpillWarning

__all__ = ["DEFAULT_THRESHOLD", "NoRoomError", "PushFuture", "SpillWarning", "Transfer"]


def __getattr__(name: str) -> Any:
    if name in ("Transfer", "DEFAULT_THRESHOLD"):
        from . import push

        return getattr(push, name)
    raise AttributeError(f"module 'lepton_nb.transfer' has no attribute {name!r}")
