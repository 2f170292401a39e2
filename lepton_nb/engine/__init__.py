"""The engine side: what a rank knows about itself, reports, pins and joins. Runs on the engines.

Inside ``cluster.run(fn)`` or a ``%%lepton_distributed`` cell::

    lepton_nb.rank(), lepton_nb.world_size(), lepton_nb.local_rank(), lepton_nb.get_device()

- :mod:`.identity`: what an engine reports when it registers (host, address,
  launcher indices, GPUs, versions);
- :mod:`.preimport`: importing torch while the engine registers;
- :mod:`.devices`: pinning this engine's GPU before anything initializes CUDA;
- :mod:`.group`: joining and leaving the torch.distributed process group;
- :mod:`.namespace`: the rank's user namespace;
- :mod:`.state`: this rank's rank, world size, local rank and device.

Nothing here imports what only the notebook needs (widgets, the server, the monitor).
"""

from __future__ import annotations

from .group import free_port, join_group, leave_group
from .state import NOT_ON_A_RANK, get_device, local_rank, rank, world_size

__all__ = [
    "NOT_ON_A_RANK",
    "free_port",
    "get_device",
    "join_group",
    "leave_group",
    "local_rank",
    "rank",
    "world_size",
]
