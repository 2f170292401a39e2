"""Joining and leaving the torch.distributed process group, on each engine."""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any

from . import namespace, state


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

    Any earlier group is destroyed first (its shared-memory segment freed), so this
    is also how ranks rejoin after a restart or a scale. gloo and NCCL use the
    interface that :func:`lepton_nb.engine.devices.pin` named (the one that reaches
    the controller). Once joined, the ranks form the group's route together
    (:mod:`lepton_nb.route`): its topology and, on one host, the shared-memory
    segment of :mod:`lepton_nb.shm_allreduce`, timed against gloo.
    """
    import torch
    import torch.distributed as dist

    from .. import route

    if dist.is_initialized():
        route.release()
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
    state.set_state(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
    _bind_names()
    if backend == "gloo":
        from .. import collective

        collective.topology()  # every rank at once: the segment is made and timed now
    return {"backend": dist.get_backend(), "device": str(device)}


def _bind_names() -> None:
    """Bind rank, world_size, local_rank and device in the engine's user namespace."""
    facts = state.current() or {}
    try:
        ns = namespace.user_namespace()
    except RuntimeError:  # not an engine (a plain process in a test): nothing to bind
        return
    ns.update(facts)


def leave_group() -> None:
    """Leave the process group, if any (before the engine stops)."""
    import torch.distributed as dist

    from .. import route

    route.release()  # the shared-memory segment, if any
    if dist.is_initialized():
        dist.destroy_process_group()
    state.clear()
