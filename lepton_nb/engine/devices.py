"""Pinning this engine to its GPU (or to none) before anything initializes CUDA here.

The notebook picks the GPU from every engine's report and calls :func:`pin`
right after registration. It sets ``CUDA_VISIBLE_DEVICES`` to that one GPU, so
the rank's device is always ``cuda:0``, or to the empty string for a CPU rank.
It also shares the host's cores between the host's ranks (``OMP_NUM_THREADS``,
``NUMBA_NUM_THREADS``) and names the interface gloo and NCCL use, unless the
user set those variables. torch may be imported by then (:mod:`.preimport`); CUDA is not
initialized by that, so the GPU can still be chosen.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .. import _nvml
from . import preimport

#: What numpy's BLAS reads when it loads; one set at launch leaves its threads alone.
BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

#: The environment this engine started with, before pin() changed anything.
_launch_env: dict[str, str] = dict(os.environ)

ALREADY_ON_CUDA = (
    "torch has already initialized CUDA in this engine (pid {pid}), so its GPU can no longer "
    "be chosen; restart the rank: %lepton_cluster restart {rank}"
)


def launch_environment() -> dict[str, str]:
    """The environment this engine was launched with (a copy)."""
    return dict(_launch_env)


def usable_gpus() -> tuple[list[int], bool]:
    """(the GPUs this engine may use, whether its launcher bound them with CUDA_VISIBLE_DEVICES)."""
    bound = _nvml.visible_devices(_launch_env)
    if bound is not None:
        return bound, True
    return list(range(_nvml.device_count())), False


def pin(
    gpu: int | None,
    threads: int | None = None,
    ifname: str | None = None,
    rank: int | None = None,
) -> dict[str, Any]:
    """Make ``gpu`` this engine's only GPU (None: no GPU), and set its thread and interface variables.

    Variables the user set at launch are left alone. Raises RuntimeError if
    torch has already initialized CUDA here with another device.
    """
    want = "" if gpu is None else str(gpu)
    preimport.wait()  # torch is then imported in full, or not at all
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized() and os.environ.get(
        "CUDA_VISIBLE_DEVICES"
    ) != want:
        raise RuntimeError(ALREADY_ON_CUDA.format(pid=os.getpid(), rank=rank))
    os.environ["CUDA_VISIBLE_DEVICES"] = want
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
            if var not in _launch_env:
                os.environ[var] = str(threads)
        if torch is not None and "OMP_NUM_THREADS" not in _launch_env:
            torch.set_num_threads(threads)
        if "numpy" in sys.modules and not any(v in _launch_env for v in BLAS_VARIABLES):
            # numpy's BLAS read the variables when it loaded (with torch, before this)
            import threadpoolctl

            threadpoolctl.threadpool_limits(threads, user_api="blas")
    if ifname:
        for var in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
            if var not in _launch_env:
                os.environ[var] = ifname
    return {"pid": os.getpid(), "gpu": gpu, "device": "cpu" if gpu is None else "cuda:0"}
