"""What a rank's sampler reads: its process, torch's device memory, and NVML.

NVML (nvidia-ml-py) is imported on the first reading that needs it, in the
sampler's thread, never at import time; a machine without it reads ``None``.
Cumulative counters (NVLink bytes) become rates here, between two readings.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psutil

from .. import _nvml

#: NVML's link count upper bound (NVML_NVLINK_MAX_LINKS); missing links answer an error.
_MAX_LINKS = 18
_KIB = 1024

T = TypeVar("T")


def process(proc: psutil.Process) -> dict[str, Any]:
    """RSS in bytes, CPU% since the last call, and the host's total and available memory."""
    with proc.oneshot():
        rss = proc.memory_info().rss
        cpu = proc.cpu_percent(None)
    return {
        "rss": int(rss),
        "cpu_percent": float(cpu),
        "memory_total": _host_total(),
        "memory_available": int(psutil.virtual_memory().available),
    }


_total: list[int] = []


def _host_total() -> int:
    if not _total:
        _total.append(int(psutil.virtual_memory().total))
    return _total[0]


#: Where the process group's Python functions live: a frame there is in a collective (or
#: in a barrier, a send, a store wait): torch.distributed's, and lepton_nb's own.
_DISTRIBUTED = (os.path.join("torch", "distributed", ""), os.path.join("lepton_nb", "collective"))


def collective(thread_id: int | None) -> str | None:
    """The torch.distributed function that thread ``thread_id`` is in now (e.g. "all_reduce").

    The outermost public function there names it (a user's ``all_reduce``, not
    what it calls, nor torch's logging ``wrapper`` around it). None when the
    thread is elsewhere, or gone.
    """
    frame = sys._current_frames().get(thread_id) if thread_id is not None else None
    names = []  # innermost first
    while frame is not None:
        if any(place in frame.f_code.co_filename for place in _DISTRIBUTED):
            names.append(frame.f_code.co_name)
        frame = frame.f_back
    public = [n for n in names if not n.startswith("_") and n not in _WRAPPERS]
    return public[-1] if public else (names[0] if names else None)


#: Decorators' inner functions in torch.distributed: never the name of what waits.
_WRAPPERS = frozenset({"wrapper", "inner", "<lambda>"})


def torch_memory() -> dict[str, int] | None:
    """torch's CUDA ``memory_allocated``/``memory_reserved`` once this process has used CUDA.

    Never initializes CUDA itself: a rank that has not touched the GPU reads None.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_initialized():
            return None
        return {
            "allocated": int(torch.cuda.memory_allocated()),
            "reserved": int(torch.cuda.memory_reserved()),
        }
    except Exception:  # a broken CUDA state must not stop the sampler
        return None


class Nvml:
    """Readings of one physical GPU through NVML; every method answers None without it."""

    def __init__(self, index: int | None) -> None:
        self.index = index
        self._handle: Any = None
        self._nvml: Any = None
        self._failed = index is None
        self._last_nvlink: tuple[float, int, int] | None = None

    def _open(self) -> Any:
        if self._handle is None and not self._failed and self.index is not None:
            self._handle = _nvml.handle(self.index)
            self._nvml = _nvml.module()
            self._failed = self._handle is None  # no driver, no such GPU: readings are unknown
        return self._handle

    def read(self) -> dict[str, Any] | None:
        """Memory used/total, utilization %, NVLink and PCIe bytes/s (None where unknown)."""
        handle = self._open()
        if handle is None:
            return None
        nv = self._nvml
        out: dict[str, Any] = {"index": self.index}
        out.update(_call(lambda: _memory(nv, handle)) or {})
        out["utilization"] = _call(lambda: int(nv.nvmlDeviceGetUtilizationRates(handle).gpu))
        out["pcie"] = _call(lambda: _pcie(nv, handle))
        out["nvlink"] = _call(lambda: self._nvlink_rate(nv, handle))
        return out

    def _nvlink_rate(self, nv: Any, handle: Any) -> dict[str, float] | None:
        now = time.monotonic()
        totals = _nvlink_kib(nv, handle)
        if totals is None:
            return None
        last, self._last_nvlink = self._last_nvlink, (now, *totals)
        if last is None or now <= last[0]:
            return {"tx_bytes_per_s": 0.0, "rx_bytes_per_s": 0.0}
        dt = now - last[0]
        return {
            "tx_bytes_per_s": max(0, totals[0] - last[1]) * _KIB / dt,
            "rx_bytes_per_s": max(0, totals[1] - last[2]) * _KIB / dt,
        }

    def close(self) -> None:
        """Forget the handle (NVML itself stays up for the process: :mod:`lepton_nb._nvml` owns it)."""
        self._nvml = self._handle = None


def _call(fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except Exception:  # one unsupported query leaves the others
        return None


def _memory(nv: Any, handle: Any) -> dict[str, int]:
    info = nv.nvmlDeviceGetMemoryInfo(handle)
    return {"memory_used": int(info.used), "memory_total": int(info.total)}


def _pcie(nv: Any, handle: Any) -> dict[str, float]:
    # NVML answers KB/s over its last 20 ms window
    tx = nv.nvmlDeviceGetPcieThroughput(handle, nv.NVML_PCIE_UTIL_TX_BYTES)
    rx = nv.nvmlDeviceGetPcieThroughput(handle, nv.NVML_PCIE_UTIL_RX_BYTES)
    return {"tx_bytes_per_s": float(tx) * _KIB, "rx_bytes_per_s": float(rx) * _KIB}


def _nvlink_kib(nv: Any, handle: Any) -> tuple[int, int] | None:
    """Cumulative NVLink data KiB sent and received over every link; None without NVLink."""
    fields = []
    for link in range(_MAX_LINKS):
        fields += [
            (nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX, link),
            (nv.NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_RX, link),
        ]
    values = nv.nvmlDeviceGetFieldValues(handle, fields)
    tx = rx = 0
    seen = False
    for i, v in enumerate(values):
        if v.nvmlReturn != nv.NVML_SUCCESS:
            continue
        seen = True
        if i % 2 == 0:
            tx += int(v.value.ullVal)
        else:
            rx += int(v.value.ullVal)
    return (tx, rx) if seen else None
