"""What an engine reports when it registers: who and where it is, what it may use, what it runs.

The notebook numbers the ranks and picks each engine's GPU from these reports
alone, so the same code serves engines started by the local launcher, by
Slurm (one job, one environment for every task) and over SSH. Reading the
report imports neither torch nor CUDA, so the engine can still be pinned to
its GPU afterwards (:mod:`.devices`).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

#: Launcher environments, in the order they are tried: (launcher, process index, local index).
LAUNCH_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("slurm", "SLURM_PROCID", "SLURM_LOCALID"),
    ("mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK"),
    ("mpi", "PMI_RANK", "MPI_LOCALRANKID"),
    ("local", "LEPTON_PROCID", "LEPTON_LOCALID"),
)


@dataclass(frozen=True)
class LaunchIndex:
    """Where the launcher put this engine: its process index and its index on its host."""

    launcher: str  # slurm | mpi | local | unknown
    proc_index: int | None
    local_index: int | None
    job_id: str | None = None


@dataclass(frozen=True)
class EngineReport:
    """One engine's report, as the notebook receives it."""

    host: str
    addr: str  # the address this engine reaches the controller from
    ifname: str | None  # the interface that address is on
    pid: int
    launch: LaunchIndex
    gpus: tuple[int, ...]  # the physical GPUs this engine may use
    bound: bool  # CUDA_VISIBLE_DEVICES was set for it at launch (a binding to respect)
    cpus: int
    python: str
    torch: str | None
    lepton: str
    engine_set: str | None = None  # the engine set it was launched in (LEPTON_ENGINE_SET)
    env_set: tuple[str, ...] = field(default=())  # thread and interface variables the user set

    def versions(self) -> dict[str, str | None]:
        """What must match the notebook: Python (major.minor), torch and lepton_nb."""
        return {
            "python": ".".join(self.python.split(".")[:2]),
            "torch": self.torch,
            "lepton_nb": self.lepton,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def launch_index(environ: dict[str, str] | None = None) -> LaunchIndex:
    """This engine's process and local index, from whichever launcher started it."""
    env = os.environ if environ is None else environ
    for launcher, proc, local in LAUNCH_VARIABLES:
        if proc in env:
            return LaunchIndex(
                launcher, _int(env.get(proc)), _int(env.get(local)), env.get("SLURM_JOB_ID")
            )
    return LaunchIndex("unknown", None, None)


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def host_name() -> str:
    """This engine's host name (``LEPTON_ENGINE_HOST`` overrides it: containers, NAT)."""
    return os.environ.get("LEPTON_ENGINE_HOST") or socket.gethostname()


def controller_address(environ: dict[str, str] | None = None) -> str | None:
    """The controller's address from the connection info ipyparallel passes in the environment."""
    env = os.environ if environ is None else environ
    try:
        info = json.loads(env.get("IPP_CONNECTION_INFO") or "null")
    except ValueError:
        return None
    if not isinstance(info, dict):
        return None
    host = str(info.get("interface") or "").rpartition("/")[2]
    if host in ("", "*", "0.0.0.0"):
        host = str(info.get("location") or "")
    return host or None


def route_to(peer: str | None) -> tuple[str, str | None]:
    """(local address, interface) this host uses to reach ``peer``; loopback when peer is None."""
    addr = "127.0.0.1"
    if peer:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect((socket.gethostbyname(peer), 9))  # UDP: no packet is sent
                addr = s.getsockname()[0]
        except OSError:
            addr = "127.0.0.1"
    return addr, interface_of(addr)


def interface_of(addr: str) -> str | None:
    """The name of the interface that holds ``addr``; None where it is not found."""
    import psutil

    for name, addrs in psutil.net_if_addrs().items():
        if any(a.family == socket.AF_INET and a.address == addr for a in addrs):
            return name
    return None


def _torch_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


USER_VARIABLES = (
    "OMP_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "GLOO_SOCKET_IFNAME",
    "NCCL_SOCKET_IFNAME",
)


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # pragma: no cover - not Linux


def report() -> EngineReport:
    """This engine's report (imports neither torch nor CUDA)."""
    from .. import __version__
    from . import devices

    addr, ifname = route_to(controller_address())
    gpus, bound = devices.usable_gpus()
    return EngineReport(
        host=host_name(),
        addr=addr,
        ifname=ifname,
        pid=os.getpid(),
        launch=launch_index(),
        gpus=tuple(gpus),
        bound=bound,
        cpus=_cpus(),
        python=".".join(str(v) for v in sys.version_info[:3]),
        torch=_torch_version(),
        lepton=__version__,
        engine_set=os.environ.get("LEPTON_ENGINE_SET"),
        env_set=tuple(v for v in USER_VARIABLES if v in devices.launch_environment()),
    )


__all__ = ["EngineReport", "LaunchIndex", "controller_address", "launch_index", "report", "route_to"]
