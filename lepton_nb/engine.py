"""What a rank knows about itself, and how its engine joins the group. Runs on the engines.

Inside ``cluster.run(fn)`` or a ``%%lepton_distributed`` cell::

    lepton_nb.rank(), lepton_nb.world_size(), lepton_nb.local_rank(), lepton_nb.get_device()
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

_state: dict[str, Any] = {}

NOT_ON_A_RANK = (
    "This process is not a lepton_nb rank. Call it inside cluster.run(fn) "
    "or a %%lepton_distributed cell."
)


def _get(key: str) -> Any:
    if key not in _state:
        raise RuntimeError(NOT_ON_A_RANK)
    return _state[key]


def rank() -> int:
    """This rank's index in the process group, 0 .. world_size - 1."""
    return int(_get("rank"))


def world_size() -> int:
    """The number of ranks in the process group."""
    return int(_get("world_size"))


def local_rank() -> int:
    """This rank's index among the ranks on the same host."""
    return int(_get("local_rank"))


def get_device() -> Any:
    """This rank's ``torch.device``: ``cuda:0`` (its one visible GPU) or ``cpu``."""
    return _get("device")


def identify() -> dict[str, Any]:
    """Where this engine runs: its rank (from its launch environment), host, address and pid."""
    # LEPTON_ENGINE_HOST: the host name engines report (containers, NAT, tests)
    host = os.environ.get("LEPTON_ENGINE_HOST") or socket.gethostname()
    try:
        addr = socket.gethostbyname(host)
    except OSError:
        addr = "127.0.0.1"
    return {
        "rank": int(os.environ.get("LEPTON_RANK", "-1")),
        "host": host,
        "addr": addr,
        "pid": os.getpid(),
    }


def free_port() -> int:
    """A TCP port that is free on this host now (for the process-group store)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return int(s.getsockname()[1])


def join_group(
    rank: int,
    world_size: int,
    local_rank: int,
    master_addr: str,
    master_port: int,
    backend: str,
    timeout_s: float,
) -> dict[str, Any]:
    """(Re)join the torch.distributed process group and bind the rank names.

    Any earlier group is destroyed first, so this is also how ranks rejoin
    after a restart or a scale.
    """
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    os.environ.update(
        MASTER_ADDR=master_addr,
        MASTER_PORT=str(master_port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(local_rank),
    )
    if backend == "nccl":
        torch.cuda.set_device(0)
        device = torch.device("cuda", 0)
    else:
        device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    dist.init_process_group(
        backend,
        init_method=f"tcp://{master_addr}:{master_port}",
        rank=rank,
        world_size=world_size,
        timeout=timedelta(seconds=timeout_s),
    )
    _state.update(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
    _bind_names()
    return {"backend": dist.get_backend(), "device": str(device)}


def _bind_names() -> None:
    """Bind rank, world_size, local_rank and device in the engine's user namespace."""
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None:
        return
    ip.user_ns.update(
        rank=_state["rank"],
        world_size=_state["world_size"],
        local_rank=_state["local_rank"],
        device=_state["device"],
    )


def leave_group() -> None:
    """Leave the process group, if any (before the engine stops)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _state.clear()
