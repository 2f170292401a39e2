"""Device inventory and the rank -> device plan.

Discovery is lazy: NVML (nvidia-ml-py) and torch are imported only when a
cluster is planned, never at import time. A machine with no GPU and no NVML
is a normal case: it gets CPU engines.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Union

GpuSpec = Union[str, Sequence[int]]


def gpu_count() -> int:
    """The number of GPUs this host can see; 0 when there is none or no driver."""
    try:
        import pynvml  # nvidia-ml-py

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no library, no driver, no device: all mean "no GPU here"
        pass
    try:
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:
        return 0


def parse_gpus(spec: GpuSpec, available: int) -> list[int] | None:
    """Turn ``"auto" | "none" | [0, 1] | "0,1"`` into GPU indices.

    Returns None for CPU engines. Raises ValueError naming a GPU that is not there.
    """
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "none":
            return None
        if text == "auto":
            return list(range(available)) or None
        try:
            spec = [int(p) for p in text.split(",")]
        except ValueError:
            raise ValueError(
                f"--gpus must be auto, none or a list like 0,1; got {spec!r}"
            ) from None
    indices = [int(i) for i in spec]
    if not indices:
        raise ValueError("--gpus needs at least one GPU index, or auto / none")
    missing = [i for i in indices if i < 0 or i >= available]
    if missing:
        have = f"GPUs 0-{available - 1}" if available else "no GPU"
        raise ValueError(
            f"GPU {missing[0]} is not there: this machine has {have}. "
            "Use --gpus auto, or --gpus none for CPU engines."
        )
    if len(set(indices)) != len(indices):
        raise ValueError(f"--gpus lists a GPU twice: {spec!r}")
    return indices


@dataclass
class Slot:
    """Where one rank runs: its device and the environment its engine starts with."""

    rank: int
    device: str  # "cuda:0" (as the engine sees it) or "cpu"
    gpu: int | None  # physical GPU index, None for CPU
    env: dict[str, str] = field(default_factory=dict)


def plan(n: int, gpus: list[int] | None, cpu_total: int | None = None) -> list[Slot]:
    """One slot per rank. With GPUs, rank r gets GPU ``gpus[r % len(gpus)]``.

    Each GPU engine sees exactly one GPU (``CUDA_VISIBLE_DEVICES``), so its
    device is always ``cuda:0``. CPU engines share the cores evenly through
    ``OMP_NUM_THREADS`` and ``NUMBA_NUM_THREADS`` unless the user set them.
    """
    cpu_total = cpu_total or os.cpu_count() or 1
    threads = str(max(1, cpu_total // max(1, n)))
    slots = []
    for r in range(n):
        env = {"LEPTON_RANK": str(r)}
        for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
            if var not in os.environ:
                env[var] = threads
        if gpus:
            gpu = gpus[r % len(gpus)]
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
            slots.append(Slot(r, "cuda:0", gpu, env))
        else:
            env["CUDA_VISIBLE_DEVICES"] = ""
            slots.append(Slot(r, "cpu", None, env))
    return slots


def backend_for(slots: Sequence[Slot]) -> str:
    """NCCL when every rank has a GPU, gloo otherwise."""
    return "nccl" if slots and all(s.gpu is not None for s in slots) else "gloo"
