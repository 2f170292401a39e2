"""Engines on the notebook's own host, through ipyparallel's local launcher.

Each engine is an engine set of its own, so one rank can be stopped and
started again alone. The launcher's own index of each engine reaches it as
``LEPTON_PROCID`` / ``LEPTON_LOCALID``, which the engine reports like
Slurm's ``SLURM_PROCID`` / ``SLURM_LOCALID``.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, ClassVar

from ...errors import ClusterError
from .base import Launch, Launcher

if TYPE_CHECKING:  # pragma: no cover
    from ..controller import Controller

NOT_LOCAL = "{option} belongs to launcher={launcher!r}; the local launcher starts engines here"


class LocalLauncher(Launcher):
    """Engines on this host (ipyparallel's ``LocalEngineSetLauncher``)."""

    name: ClassVar[str] = "local"
    engines: ClassVar[str] = "local"
    remote: ClassVar[bool] = False

    def validate(self) -> None:
        o = self.options
        for option, owner in (("nodes", "slurm"), ("ranks_per_node", "slurm"),
                              ("gpus_per_node", "slurm"), ("hosts", "ssh")):  # fmt: skip
            if getattr(o, option):
                raise ClusterError(NOT_LOCAL.format(option=option, launcher=owner))

    def world_size(self) -> int:
        return self.options.n or self.options.default_local_ranks()

    def controller_ip(self) -> str:
        return self.options.controller_ip or "127.0.0.1"

    def launch(self, controller: Controller, n: int, env: dict[str, str], seq: int) -> list[Launch]:
        return [self._one(controller, i, env, seq) for i in range(n)]

    def launch_on(
        self, controller: Controller, host: str, count: int, env: dict[str, str], seq: int
    ) -> list[Launch]:
        # always this host (an engine reporting another host through LEPTON_ENGINE_HOST runs here too)
        return self.launch(controller, count, env, seq)

    def _one(self, controller: Controller, index: int, env: dict[str, str], seq: int) -> Launch:
        set_id = f"s{seq}-{index}-{uuid.uuid4().hex[:4]}"
        local_env = dict(env, LEPTON_PROCID=str(index), LEPTON_LOCALID=str(index))
        controller.start_engines(1, set_id, local_env)
        return Launch(set_id, 1, seq)
