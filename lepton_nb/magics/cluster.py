"""The ``%lepton_cluster`` line magic and the ``%%lepton_distributed`` cell magic."""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class, no_var_expand
from IPython.display import display

from .. import _nvml
from ..cluster import NO_CLUSTER, Cluster, get_cluster
from ..cluster.core import idle_stopped
from ..errors import ClusterError
from .args import cluster_args, distributed_args, parse_cluster_line, parse_distributed_line
from .shell import user_namespace

ALREADY_RUNNING = (
    "A cluster is already running ({n} ranks). Resize it with: %lepton_cluster scale N, "
    "or stop it first with: %lepton_cluster stop"
)
NO_CLUSTER_STATUS = "No cluster running. Start one with: %lepton_cluster start -n 2"


def _configured_launcher(shell: Any) -> str:
    """The launcher a start uses unless the line names one: the configuration's, else local."""
    config = getattr(shell, "config", None)
    if config is not None and "Cluster" in config and "launcher" in config.Cluster:
        return str(config.Cluster.launcher).lower()
    return "local"


def running_cluster() -> Cluster:
    """The cluster the magics use, or UsageError saying how to start one (and why it stopped)."""
    cluster = get_cluster()
    if cluster is None or not cluster.running:
        stopped = idle_stopped()
        raise UsageError(stopped.stopped_because if stopped and stopped.stopped_because else NO_CLUSTER)
    return cluster


@magics_class
class LeptonMagics(Magics):
    """Magics that drive a lepton_nb cluster from the notebook."""

    @line_magic
    def lepton_cluster(self, line: str) -> Any:
        cluster = get_cluster()
        running = cluster is not None and cluster.running
        world = cluster.world_size if running else None
        local = "--gpus" in line and _configured_launcher(self.shell) == "local"
        gpus = len(_nvml.host_gpus()) if local else None
        cmd = parse_cluster_line(line, gpus, world)
        if cmd.action == "start":
            if running:
                raise UsageError(ALREADY_RUNNING.format(n=world))
            try:
                cluster = Cluster(**cmd.options)
                label = f"{cmd.n} " if cmd.n else ""
                print(f"Starting {label}ranks (launcher={cluster.launcher}, gpus={cluster.gpus})"
                      " ...", flush=True)  # fmt: skip
                cluster.start()
            except ClusterError as e:
                raise UsageError(f"The cluster did not start: {e}") from None
            display(cluster.status())
            return None
        if not running:
            stopped = idle_stopped()
            if cmd.action in ("status", "stop"):
                print(stopped.stopped_because if stopped else NO_CLUSTER_STATUS)
                return None
            running_cluster()  # raises, saying why and how to start one
        assert cluster is not None
        if cmd.action == "status":
            display(cluster.status())
        elif cmd.action == "stop":
            cluster.stop()
            print(f"Stopped {world} ranks.")
        elif cmd.action == "scale":
            print(f"Scaling from {world} to {cmd.n} ranks ...", flush=True)
            cluster.scale(cmd.n or 1)
            display(cluster.status())
        elif cmd.action == "restart":
            which = "all ranks" if cmd.rank is None else f"rank {cmd.rank}"
            print(f"Restarting {which} ...", flush=True)
            cluster.restart(cmd.rank)
            display(cluster.status())
        return None

    @no_var_expand
    @cell_magic
    def lepton_distributed(self, line: str, cell: str) -> None:
        cluster = running_cluster()
        gpu_ranks = cluster.ranks.gpu_ranks()
        opts = parse_distributed_line(line, cluster.world_size, gpu_ranks)
        gathered = cluster.execute(
            cell,
            ranks=opts.ranks,
            timeout=opts.timeout,
            gather=opts.gather,
            stream=opts.stream,
            backend=opts.backend,
        )
        user_namespace(self.shell).update(gathered)

    lepton_cluster.__doc__ = cluster_args.__doc__
    lepton_distributed.__doc__ = distributed_args.__doc__
