"""The one module that talks to NVML (nvidia-ml-py), on whichever host it runs.

NVML is imported and initialised on first use, once per process, never at
import time. A machine with no library, no driver or no GPU is a normal case:
:func:`state` says which, and every reading answers 0, an empty list or None.
``CUDA_VISIBLE_DEVICES`` is parsed here too (indices, ``GPU-`` UUIDs and
``MIG-`` instances), since only NVML can map it to physical devices.
"""

from __future__ import annotations

import enum
import os
import threading
from typing import Any


class NvmlState(enum.Enum):
    """Where this process stands with NVML."""

    UNINITIALIZED = "uninitialized"
    RUNNING = "running"
    DISABLED_LIBRARY_NOT_FOUND = "library not found"
    DISABLED_NO_DEVICE = "no driver or no device"


_lock = threading.Lock()
_state = NvmlState.UNINITIALIZED
_module: Any = None


def _init() -> Any:
    """The initialised ``pynvml`` module, or None where NVML cannot run here."""
    global _state, _module
    with _lock:
        if _state is NvmlState.UNINITIALIZED:
            try:
                import pynvml
            except ImportError:
                _state = NvmlState.DISABLED_LIBRARY_NOT_FOUND
                return None
            try:
                pynvml.nvmlInit()
            except Exception:  # NVMLError: no driver, no device, insufficient permissions
                _state = NvmlState.DISABLED_NO_DEVICE
                return None
            _module, _state = pynvml, NvmlState.RUNNING
        return _module


def state() -> NvmlState:
    """NVML's state in this process (initialising it if needed)."""
    _init()
    return _state


def module() -> Any:
    """The initialised ``pynvml`` module for readings this module does not wrap; None without NVML."""
    return _init()


def device_count() -> int:
    """The number of GPUs NVML sees on this host; 0 without NVML."""
    nv = _init()
    if nv is None:
        return 0
    try:
        return int(nv.nvmlDeviceGetCount())
    except Exception:
        return 0


def handle(index: int) -> Any:
    """NVML's handle of the physical GPU ``index``; None when there is none."""
    nv = _init()
    if nv is None:
        return None
    try:
        return nv.nvmlDeviceGetHandleByIndex(index)
    except Exception:
        return None


def memory(index: int) -> tuple[int, int] | None:
    """(used, total) bytes of physical GPU ``index``; None where unknown."""
    h = handle(index)
    if h is None:
        return None
    try:
        info = _module.nvmlDeviceGetMemoryInfo(h)
        return int(info.used), int(info.total)
    except Exception:
        return None


def visible_devices(environ: dict[str, str] | None = None) -> list[int] | None:
    """The physical GPU indices ``CUDA_VISIBLE_DEVICES`` selects; None when it is not set.

    An empty value selects no GPU. UUIDs (``GPU-...``, ``MIG-...``) are mapped to
    indices through NVML; one that NVML does not know ends the list there, as CUDA does.
    """
    env = os.environ if environ is None else environ
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    out: list[int] = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            break
        if part.lstrip("-").isdigit():
            index = int(part)
            if index < 0:
                break
            out.append(index)
            continue
        index_of = _uuid_index(part)
        if index_of is None:
            break
        out.append(index_of)
    return out


def _uuid_index(uuid: str) -> int | None:
    nv = _init()
    if nv is None:
        return None
    for i in range(device_count()):
        try:
            h = nv.nvmlDeviceGetHandleByIndex(i)
            own = nv.nvmlDeviceGetUUID(h)
            own = own.decode() if isinstance(own, bytes) else own
            if own == uuid or (uuid.startswith("MIG-") and _has_mig(nv, h, uuid)):
                return i
        except Exception:
            continue
    return None


def _has_mig(nv: Any, h: Any, uuid: str) -> bool:
    try:
        for j in range(int(nv.nvmlDeviceGetMaxMigDeviceCount(h))):
            mig = nv.nvmlDeviceGetMigDeviceHandleByIndex(h, j)
            own = nv.nvmlDeviceGetUUID(mig)
            if (own.decode() if isinstance(own, bytes) else own) == uuid:
                return True
    except Exception:
        return False
    return False


def host_gpus(environ: dict[str, str] | None = None) -> list[int]:
    """The GPUs this process may use: those ``CUDA_VISIBLE_DEVICES`` selects, else every GPU."""
    visible = visible_devices(environ)
    return visible if visible is not None else list(range(device_count()))


__all__ = [
    "NvmlState",
    "device_count",
    "handle",
    "host_gpus",
    "memory",
    "module",
    "state",
    "visible_devices",
]
