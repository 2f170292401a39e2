"""A rank's store of kept task values (``keep=True``), in tiers: GPU memory, host memory, disk.

Runs on the rank. Each tier holds at most the store's limit in bytes; past it
the least recently used values move down a tier (GPU memory to host memory,
host memory to a file in a private folder on the rank's local disk). A value
that moved down comes back to where it was made when it is used again. A value
that does not pickle (one holding a lock, say) never goes to disk.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import shutil
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: Tiers, fastest first.
TIERS = ("gpu", "host", "disk")


@dataclass
class Entry:
    """One kept value: where it is, its size, and the GPU it was made on (if any)."""

    key: str
    tier: str
    nbytes: int
    value: Any = None
    path: str | None = None
    device: str | None = None  # "cuda:0" for a tensor made on a GPU


class Store:
    """Kept values by key, least recently used first."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._folder: str | None = None
        self._lock = threading.Lock()

    # -- values ----------------------------------------------------------------
    def put(self, key: str, value: Any) -> Entry:
        """Keep ``value`` under ``key`` (in GPU memory if it is a CUDA tensor), then spill."""
        device = _cuda_device(value)
        entry = Entry(key, "gpu" if device else "host", nbytes(value), value, device=device)
        with self._lock:
            self._drop(self._entries.pop(key, None))
            self._entries[key] = entry
            self._spill()
        return entry

    def get(self, key: str) -> Any:
        """The value under ``key``, brought back to its own tier; KeyError if not kept here."""
        with self._lock:
            entry = self._entries[key]
            self._entries.move_to_end(key)
            if entry.tier == "disk":
                assert entry.path is not None
                with open(entry.path, "rb") as f:
                    entry.value = pickle.load(f)
                os.unlink(entry.path)
                entry.path, entry.tier = None, "host"
            if entry.tier == "host" and entry.device:
                entry.value, entry.tier = entry.value.to(entry.device), "gpu"
            self._spill()
            return entry.value

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def free(self, keys: list[str]) -> int:
        """Forget ``keys`` (those kept here); the number freed."""
        with self._lock:
            gone = [self._entries.pop(k) for k in keys if k in self._entries]
            for entry in gone:
                self._drop(entry)
        return len(gone)

    def info(self) -> list[dict[str, Any]]:
        """Each kept value's key, tier and size, least recently used first."""
        with self._lock:
            return [{"key": e.key, "tier": e.tier, "nbytes": e.nbytes} for e in self._entries.values()]

    def clear(self) -> None:
        """Forget everything, and remove the spill folder."""
        with self._lock:
            self._entries.clear()
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
                self._folder = None

    # -- tiers -----------------------------------------------------------------
    def _spill(self) -> None:
        for tier, lower in (("gpu", "host"), ("host", "disk")):
            used = sum(e.nbytes for e in self._entries.values() if e.tier == tier)
            for entry in list(self._entries.values()):  # least recently used first
                if used <= self.limit:
                    break
                if entry.tier == tier and self._move(entry, lower):
                    used -= entry.nbytes

    def _move(self, entry: Entry, tier: str) -> bool:
        """Move ``entry`` a tier down; False for a value that cannot go to disk (no pickle)."""
        if tier == "host":
            entry.value = entry.value.to("cpu")
        else:
            path = os.path.join(self._spill_folder(), f"{entry.key}.pickle")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with os.fdopen(fd, "wb") as f:
                    pickle.dump(entry.value, f, protocol=5)
            except Exception as e:  # e.g. it holds a lock: it stays in memory
                os.unlink(path)
                log.debug("kept value %s stays in memory: %s", entry.key, e)
                return False
            entry.value, entry.path = None, path
        entry.tier = tier
        return True

    def _spill_folder(self) -> str:
        if self._folder is None:
            self._folder = tempfile.mkdtemp(prefix=f"lepton-store-{os.getpid()}-")  # 0700
        return self._folder

    @staticmethod
    def _drop(entry: Entry | None) -> None:
        if entry is not None and entry.path is not None:
            try:
                os.unlink(entry.path)
            except OSError:
                pass


def nbytes(value: Any) -> int:
    """What ``value`` takes: an array's or tensor's bytes, else its pickled size."""
    if hasattr(value, "element_size") and hasattr(value, "nelement"):  # a torch tensor
        return int(value.element_size() * value.nelement())
    if hasattr(value, "nbytes") and isinstance(value.nbytes, int):  # numpy
        return int(value.nbytes)
    try:
        return len(pickle.dumps(value, protocol=5))
    except Exception:  # it does not pickle: what Python says it takes
        return sys.getsizeof(value)


def _cuda_device(value: Any) -> str | None:
    device = getattr(value, "device", None)
    if device is not None and getattr(device, "type", None) == "cuda" and hasattr(value, "to"):
        return str(device)
    return None


_store: list[Store] = []


def store(limit: int | None = None) -> Store:
    """This rank's store (made on first use); ``limit`` updates its tier limit."""
    if not _store:
        _store.append(Store(limit if limit is not None else 4 * 10**9))
        atexit.register(_store[0].clear)
    if limit is not None:
        _store[0].limit = limit
    return _store[0]
